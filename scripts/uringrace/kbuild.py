"""Steps 2-3: configure (tinyconfig + fragments, validated) and build the kernel
out of tree into a cache directory keyed by tree, arch and config inputs."""

import dataclasses
import fcntl
import json
import os
import re
import subprocess
import time

from .common import PipelineError, cache_dir, digest, jobs, log, read, run
from .records import KernelBuild

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


def _make(src, obj, rec, targets, logfile):
    cmd = ["make", "-C", src, f"O={obj}", f"ARCH={rec.karch}", f"-j{jobs()}"]
    if rec.cross_compile:
        cmd.append(f"CROSS_COMPILE={rec.cross_compile}")
    run(cmd + targets, logfile=logfile)


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


def build(src, identity, rec):
    """Configure and build; return the KernelBuild."""
    key = build_key(identity, rec)
    obj = objdir_for(identity, rec)
    fresh = not os.path.exists(os.path.join(obj, "vmlinux"))
    os.makedirs(obj, exist_ok=True)
    with open(os.path.join(obj, ".lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        t0 = time.time()
        configure(src, obj, rec, key)
        logf = os.path.join(obj, "build.log")
        open(logf, "w").close()
        log(f"building {identity} for {rec.arch} in {obj} (cold: about 9-10 min)")
        _make(src, obj, rec, list(rec.ktargets), logf)
        compiled = sum(1 for line in read(logf).splitlines()
                       if re.match(r"\s+(CC|AS|LD|CC \[M\])\s", line))
        info = KernelBuild(src=src, identity=identity, arch=rec.arch, key=key, objdir=obj,
                           image=os.path.join(obj, rec.kimage),
                           vmlinux=os.path.join(obj, "vmlinux"),
                           seconds=round(time.time() - t0, 1), compiled=compiled)
        jpath = os.path.join(obj, "uringrace-build.json")
        if fresh:
            info.cold_seconds = info.seconds
        elif os.path.exists(jpath):
            with open(jpath, encoding="utf-8") as f:
                info.cold_seconds = json.load(f).get("cold_seconds")
        with open(jpath, "w", encoding="utf-8") as f:
            json.dump(dataclasses.asdict(info), f, indent=1)
    log(f"kernel ready: {info.image} ({info.seconds} s, {compiled} objects compiled)")
    return info
