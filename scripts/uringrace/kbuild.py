"""Steps 2-3: configure (tinyconfig + fragments, validated) and build the kernel
out of tree into a cache directory keyed by tree, arch and config inputs."""

import dataclasses
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import time

from .common import KEY, PipelineError, cache_dir, digest, jobs, log, read, run
from .records import KernelBuild
from .tree import changed_files, made_by_patched

BASE = "tinyconfig"


def _cc_version(rec):
    cc = rec.cross_compile + "gcc"
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise PipelineError(f"{cc} not found: run 'make deps'") from exc
    return out.stdout.splitlines()[0] if out.stdout else cc


def build_key(identity, rec):
    parts = [identity, rec.arch, BASE, _cc_version(rec)]
    parts += [read(f) for f in rec.fragments]
    return digest(*parts)


def objdir_for(identity, rec):
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", identity.split(":", 1)[-1])[-40:].strip("_")
    return os.path.join(cache_dir(), "kbuild", f"{rec.arch}-{slug}-{build_key(identity, rec)}")


def wanted_lines(rec):
    """(symbol, value) pairs the fragments ask for; value 'n' for 'is not set'."""
    want = []
    for path in rec.fragments:
        for n, line in enumerate(read(path).splitlines(), 1):
            line = line.strip()
            m = re.fullmatch(r"(CONFIG_\w+)=(.*)", line)
            m2 = re.fullmatch(r"# (CONFIG_\w+) is not set", line)
            if m:
                want.append((m.group(1), m.group(2), f"{os.path.basename(path)}:{n}"))
            elif m2:
                want.append((m2.group(1), "n", f"{os.path.basename(path)}:{n}"))
    return want


def validate_config(config_path, rec):
    """Return the fragment lines that olddefconfig dropped or changed."""
    have = {}
    for line in read(config_path).splitlines():
        m = re.fullmatch(r"(CONFIG_\w+)=(.*)", line)
        if m:
            have[m.group(1)] = m.group(2)
    lost = []
    for sym, val, where in wanted_lines(rec):
        got = have.get(sym, "n")
        if got != val:
            lost.append(f"{where}: {sym}={val} (got {sym}={got if got != 'n' else 'is not set'})")
    return lost


def in_place_of(binds, cmd):
    """cmd run in a private mount namespace where each (new, old) of binds
    shows new's content at old's path: a patched tree and its copied
    objects seen at tree A's paths, so kbuild finds A's command lines
    unchanged and recompiles only the files the patch touched."""
    if not binds:
        return cmd
    mounts = " && ".join(f"mount --bind {shlex.quote(new)} {shlex.quote(old)}"
                         for new, old in binds)
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            mounts + ' && exec "$@"', "sh"] + cmd


def _make(src, obj, rec, targets, logfile, binds=()):
    cmd = ["make", "-C", src, f"O={obj}", f"ARCH={rec.karch}", f"-j{jobs()}"]
    if rec.cross_compile:
        cmd.append(f"CROSS_COMPILE={rec.cross_compile}")
    try:
        run(in_place_of(binds, cmd + targets), logfile=logfile)
    except PipelineError as exc:
        errors = [ln.strip() for ln in read(logfile).splitlines()
                  if " error: " in ln or ln.startswith("make") and "Error" in ln]
        raise PipelineError(f"{exc}\n  " + "\n  ".join(errors[:6])) from exc


def configure(src, obj, rec, key):
    stamp = os.path.join(obj, ".uringrace-config")
    cfg = os.path.join(obj, ".config")
    if os.path.exists(cfg) and os.path.exists(stamp) and read(stamp).strip() == key:
        lost = validate_config(cfg, rec)
        if not lost:
            return
    logf = os.path.join(obj, "config.log")
    open(logf, "w").close()
    _make(src, obj, rec, [BASE], logf)
    run(["sh", os.path.join(src, "scripts/kconfig/merge_config.sh"), "-m", "-O", obj, cfg]
        + list(rec.fragments), logfile=logf,
        env={**os.environ, "ARCH": rec.karch, "CROSS_COMPILE": rec.cross_compile})
    _make(src, obj, rec, ["olddefconfig"], logf)
    lost = validate_config(cfg, rec)
    if lost:
        raise PipelineError("these fragment lines did not survive olddefconfig "
                            f"(.config in {obj}):\n  " + "\n  ".join(lost))
    with open(stamp, "w", encoding="utf-8") as f:
        f.write(key + "\n")


PATCHED = "+patch_"  # in the object directory of every tree B (objdir_for)


def tree_bytes(path):
    """The bytes path's files take on disk (hard links counted once)."""
    seen, total = set(), 0
    for root, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(root, f))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


SRC_NOTE = "uringrace-src"  # in a tree B's objects: the patched tree they were built from
_held = {}  # lock file -> its open file: a tree B this process still uses (in_use)


def _last_used(lock):
    """When a build was last used: its lock file's mtime (opened "w" by
    each use), 0 without one."""
    return os.path.getmtime(lock) if os.path.exists(lock) else 0.0


def _let_go(lock):
    """End this process's own hold on a lock (in_use), if it has one."""
    f = _held.pop(lock, None)
    if f:
        f.close()


def _remove_unless_held(lock, paths):
    """Remove paths unless another run holds `lock` (flock): True if removed."""
    with open(lock, "a") as f:  # "a": looking is not using (the mtime stays)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
        return True


def _orphan_work():
    """Remove the module and selftest builds (guest.guest_parts:
    work/<arch>-<key>-<checkout>, 19 MB each) whose kernel build
    (kbuild/<arch>-<tree>-<key>) is gone. Returns the paths removed."""
    root = os.path.join(cache_dir(), "work")
    if not os.path.isdir(root):
        return []
    builds = {(n.split("-", 1)[0], n.rsplit("-", 1)[-1])
              for n in os.listdir(os.path.join(cache_dir(), "kbuild"))}
    gone = []
    for n in os.listdir(root):
        m = re.fullmatch(rf"([^-]+)-({KEY})-[0-9a-f]+", n)
        if m and (m.group(1), m.group(2)) not in builds:
            shutil.rmtree(os.path.join(root, n), ignore_errors=True)
            gone.append(os.path.join(root, n))
    return gone


def _patched_sources(copies):
    """The patched trees the given tree B object copies were built from."""
    out = set()
    for path in copies:
        note = os.path.join(path, SRC_NOTE)
        if os.path.exists(note):
            out.add(read(note).strip())
    return out


def evict_patched(keep, spare="", idle=3600):
    """Tree B object copies (each a copy of its tree A's objects, 0.3-0.5 GB)
    beyond the `keep` used last are removed, oldest first, and so is what an
    interrupted copy left (.partial); `spare` (the one about to be used) is
    never removed, nor is one another run holds (building it, or booting
    and symbolizing it: in_use). Their lock files' mtimes say when each was
    last used. What was made for a removed copy goes with it: its module
    and selftest builds (_orphan_work), and its patched source tree
    (tree.patched, about 24 MB of hard links) once no copy left was built
    from it and nobody used it for `idle` seconds; so does any patched
    source tree of the cache that no copy names (a patch that built
    nothing, an interrupted run).
    Returns the paths removed."""
    root = os.path.join(cache_dir(), "kbuild")
    if not os.path.isdir(root):
        return []
    halves, trees = [], []
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if PATCHED not in name or not os.path.isdir(path) or path == spare:
            continue
        if name.endswith(".partial"):
            halves.append(path)
        else:
            trees.append((_last_used(path + ".lock"), path))
    trees.sort(reverse=True)
    doomed = halves + [p for _, p in trees[max(0, keep - (1 if spare else 0)):]]
    sources = _patched_sources(doomed)
    gone = [p for p in doomed if _remove_unless_held(p.removesuffix(".partial") + ".lock", [p])]
    named = _patched_sources([p for _, p in trees if p not in gone] + ([spare] if spare else []))
    srcroot = os.path.join(cache_dir(), "src")
    if os.path.isdir(srcroot):
        sources |= {os.path.join(srcroot, n) for n in os.listdir(srcroot)}
    for path in sorted(sources - named):
        # only what tree.patched made (a note could name anything), which
        # it marks used (its mtime) each time it hands it out
        if made_by_patched(path) and os.path.isdir(path) \
                and time.time() - os.path.getmtime(path) > idle:
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path)
    return gone + _orphan_work()


def in_use(info, held=True):
    """Say that this process uses tree B `info` (its guest is booted, its
    module built, its reports symbolized) so that no other run's
    evict_patched removes it meanwhile: a shared lock on its lock file,
    until in_use(info, False) or the process ends. A tree A: nothing."""
    if not info.binds:
        return
    lock = info.objdir + ".lock"
    _let_go(lock)
    if held:
        f = open(lock, "w")  # and its mtime says it was used now
        fcntl.flock(f, fcntl.LOCK_SH)
        _held[lock] = f


def evict_configs(obj, keep):
    """Tree A builds of obj's tree and arch for other configurations (a
    Kconfig fragment changed, LOCKDEP=1, an older checkout's fragments),
    0.5 GB each: all but the `keep` used last (obj among them) are removed,
    with their module and selftest builds (_orphan_work); one another run
    holds (building it) stays. Returns the paths removed."""
    root, name = os.path.split(obj)
    group = name.rsplit("-", 1)[0] + "-"
    others = []
    for n in os.listdir(root):
        path = os.path.join(root, n)
        if n.startswith(group) and PATCHED not in n and path != obj and \
                re.fullmatch(KEY, n[len(group):]) and os.path.isdir(path):
            others.append((_last_used(os.path.join(path, ".lock")), path))
    gone = []
    for _, path in sorted(others, reverse=True)[max(0, keep - 1):]:
        if _remove_unless_held(os.path.join(path, ".lock"), [path]):
            gone.append(path)
    return gone + _orphan_work()


def room_for(path, need, what):
    """Stop with the reason before a copy that the disk cannot hold: a copy
    cut short by a full disk takes everything else on it down too."""
    os.makedirs(path, exist_ok=True)
    free = shutil.disk_usage(path).free
    margin = 1 << 30  # the build, the guest's logs and the initramfs after it
    if free < need + margin:
        raise PipelineError(f"{what} needs {need >> 20} MiB and 1 GiB to spare, but "
                            f"{free >> 20} MiB are free in {path}: free some space (KEEP_B "
                            "keeps fewer tree B copies) and run again; nothing was copied")


def build_patched(src, identity, rec, base, keep=8):
    """Tree B (A plus patches, tree.patched) built from A's finished build:
    A's objects copied once, then B's sources and objects bound at A's
    paths (in_place_of), so only what the patch touched is recompiled.
    Nothing of A is written. At most `keep` tree B copies stay in the cache
    (evict_patched), and a copy the disk cannot hold is refused before it
    starts (room_for). Returns B's KernelBuild."""
    key = build_key(identity, rec)
    obj = objdir_for(identity, rec)
    binds = ((src, base.src), (obj, base.objdir))
    for path in evict_patched(keep, spare=obj):
        log(f"removed (KEEP_B={keep} tree B copies kept, the newest used): {path}")
    t0 = time.time()  # B's build, not the cache's upkeep (77.9 s once, for 55 removals)
    _let_go(obj + ".lock")  # this process's own use of an earlier build of B (bench-patch)
    # one builder of B at a time, the copy included (a sibling lock file)
    with open(obj + ".lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        own = []  # B's own sources (not A's), when its objects are a fresh copy of A's
        if not os.path.exists(os.path.join(obj, "vmlinux")):
            tmp = obj + ".partial"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(obj, ignore_errors=True)
            room_for(os.path.dirname(obj), tree_bytes(base.objdir),
                     f"tree B's copy of A's objects ({base.objdir})")
            log(f"tree B's objects: a copy of A's ({base.objdir})")
            try:
                run(["cp", "-a", base.objdir, tmp])
            except PipelineError:
                shutil.rmtree(tmp, ignore_errors=True)  # no half copy left behind
                raise
            # make goes by mtimes: B's patched sources may be older than A's
            # objects (a tree B kept from before A was rebuilt), and then
            # nothing would recompile and B would be A. Newer than the copy:
            own = changed_files(src, base.src)
            for path in own:
                os.utime(path)
            os.rename(tmp, obj)
        with open(os.path.join(obj, SRC_NOTE), "w", encoding="utf-8") as f:
            f.write(src + "\n")
        logf = os.path.join(obj, "build.log")
        open(logf, "w").close()
        _make(base.src, base.objdir, rec, ["olddefconfig"], logf, binds)
        lost = validate_config(os.path.join(obj, ".config"), rec)
        if lost:
            raise PipelineError("the patch changed the kernel configuration:\n  "
                                + "\n  ".join(lost))
        log(f"building {identity} for {rec.arch} from A's build (only what the patch touched)")
        _make(base.src, base.objdir, rec, list(rec.ktargets), logf, binds)
        compiled = [line.split()[-1] for line in read(logf).splitlines()
                    if re.match(r"\s+(CC|AS|CC \[M\])\s", line)]
        if own and not compiled and any(p.endswith((".c", ".h", ".S")) for p in own):
            shutil.rmtree(obj, ignore_errors=True)  # B would be A: keep nothing of it
            raise PipelineError(f"tree B built from A's objects compiled nothing, though the "
                                f"patch changed {', '.join(own[:4])}: B would be A")
    info = KernelBuild(src=src, identity=identity, arch=rec.arch, key=key, objdir=obj,
                       image=os.path.join(obj, rec.kimage), vmlinux=os.path.join(obj, "vmlinux"),
                       seconds=round(time.time() - t0, 1), compiled=len(compiled), binds=binds)
    in_use(info)
    log(f"kernel B ready: {info.image} ({info.seconds} s; compiled: "
        f"{', '.join(compiled[:8]) or 'nothing'}{' ...' if len(compiled) > 8 else ''})")
    return info


def _finished(identity, old, key):
    """The KernelBuild of a finished build (its record `old`) of an unpacked
    Debian tree (which nothing edits: its sources are the package's), or
    None. make's own no-change pass costs about 10 s per arch, for every side
    and every mutant; a KSRC tree may change under us, so it always gets that
    pass."""
    if not identity.startswith("debian:") or not old or old.get("key") != key \
            or not os.path.exists(old.get("image", "")):
        return None
    return KernelBuild(**dict(old, binds=(), seconds=0.0, compiled=0))


def build(src, identity, rec, keep=3):
    """Configure and build; return the KernelBuild. Of the builds of the
    same tree and arch for other configurations, the `keep` - 1 used last
    stay (evict_configs)."""
    key = build_key(identity, rec)
    obj = objdir_for(identity, rec)
    fresh = not os.path.exists(os.path.join(obj, "vmlinux"))
    os.makedirs(obj, exist_ok=True)
    with open(os.path.join(obj, ".lock"), "w") as lockf:  # "w": its mtime says used now
        fcntl.flock(lockf, fcntl.LOCK_EX)
        for path in evict_configs(obj, keep):
            log(f"removed (KEEP_A={keep} builds of {os.path.basename(src)} for {rec.arch} kept, "
                f"the newest used): {path}")
        jpath = os.path.join(obj, "uringrace-build.json")
        old = None
        if os.path.exists(jpath):
            with open(jpath, encoding="utf-8") as f:
                old = json.load(f)
        done = _finished(identity, old, key)
        if done:
            log(f"kernel ready: {done.image} (a finished build of an unpacked Debian tree)")
            return done
        if old is not None:
            os.unlink(jpath)  # kept only across a make that succeeds
        t0 = time.time()
        configure(src, obj, rec, key)
        logf = os.path.join(obj, "build.log")
        open(logf, "w").close()
        log(f"building {identity} for {rec.arch} in {obj}"
            + (" (cold: 5-10 min on 2 cores)" if fresh else " (cached: only what changed)"))
        _make(src, obj, rec, list(rec.ktargets), logf)
        compiled = sum(1 for line in read(logf).splitlines()
                       if re.match(r"\s+(CC|AS|LD|CC \[M\])\s", line))
        info = KernelBuild(src=src, identity=identity, arch=rec.arch, key=key, objdir=obj,
                           image=os.path.join(obj, rec.kimage),
                           vmlinux=os.path.join(obj, "vmlinux"),
                           seconds=round(time.time() - t0, 1), compiled=compiled)
        if fresh:
            info.cold_seconds = info.seconds
        elif old:
            info.cold_seconds = old.get("cold_seconds")
        with open(jpath, "w", encoding="utf-8") as f:
            json.dump(dataclasses.asdict(info), f, indent=1)
    log(f"kernel ready: {info.image} ({info.seconds} s, {compiled} objects compiled)")
    return info
