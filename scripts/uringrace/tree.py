"""Step 1: find the kernel tree (Debian's linux-source-X or KSRC) and check it."""

import hashlib
import os
import re
import shutil
import subprocess

from .common import KEY, PipelineError, cache_dir, log
from .config import DEFAULT_KVER

def _deb_version(pkg):
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                             capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def debian_tree(kver):
    """Extract /usr/src/linux-source-<kver>.tar.xz once into the cache."""
    if not re.fullmatch(r"\d+\.\d+", kver):
        raise PipelineError(f"KVER='{kver}' is not a version like 6.12 or 6.1")
    pkg = f"linux-source-{kver}"
    tarball = f"/usr/src/{pkg}.tar.xz"
    if not os.path.exists(tarball):
        raise PipelineError(
            f"{tarball} is missing: install it with 'apt-get install {pkg}' "
            f"(make deps does), or point KSRC= at a kernel tree")
    ver = _deb_version(pkg) or str(int(os.stat(tarball).st_mtime))
    name = f"debian-{pkg}-{re.sub(r'[^A-Za-z0-9.+-]', '_', ver)}"
    dest = os.path.join(cache_dir(), "src", name)
    if not os.path.isfile(os.path.join(dest, "Makefile")):
        tmp = dest + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        log(f"extracting {tarball} into {dest} (once, about 20 s)")
        subprocess.run(["tar", "-C", tmp, "-xf", tarball], check=True)
        inner = os.path.join(tmp, pkg)
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(inner, dest)
        shutil.rmtree(tmp, ignore_errors=True)
    return dest, f"debian:{pkg}:{ver}"


def kernel_version(src):
    vals = {}
    with open(os.path.join(src, "Makefile"), encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(\S*)", line)
            if m:
                vals[m.group(1)] = m.group(2)
            if len(vals) == 4:
                break
    if "VERSION" not in vals or "PATCHLEVEL" not in vals:
        return None
    return "{VERSION}.{PATCHLEVEL}.{SUBLEVEL}{EXTRAVERSION}".format(
        **{"SUBLEVEL": "0", "EXTRAVERSION": "", **vals})


def check_tree(src, arch_rec):
    """Fail before any build if src is not a usable kernel tree for this arch."""
    if not os.path.exists(src):
        raise PipelineError(f"KSRC={src}: no such directory")
    if not os.path.isdir(src):
        raise PipelineError(f"KSRC={src}: not a directory")
    for need in ("Makefile", "Kconfig", "scripts/kconfig", "arch", "kernel"):
        if not os.path.exists(os.path.join(src, need)):
            raise PipelineError(f"KSRC={src}: not a kernel tree (no {need})")
    ver = kernel_version(src)
    if not ver:
        raise PipelineError(f"KSRC={src}: top Makefile has no VERSION/PATCHLEVEL")
    karch_dir = "x86" if arch_rec.karch == "x86_64" else arch_rec.karch
    akconfig = os.path.join(src, "arch", karch_dir, "Kconfig")
    if not os.path.exists(akconfig):
        raise PipelineError(f"KSRC={src}: no arch/{karch_dir}/Kconfig")
    with open(akconfig, encoding="utf-8", errors="replace") as f:
        if "HAVE_ARCH_KCSAN" not in f.read():
            raise PipelineError(
                f"kernel {ver} has no KCSAN support on {arch_rec.arch} "
                f"(arch/{karch_dir}/Kconfig does not select HAVE_ARCH_KCSAN)")
    if os.path.exists(os.path.join(src, ".config")) or \
            os.path.isdir(os.path.join(src, "include", "config")):
        raise PipelineError(
            f"KSRC={src} has an in-tree build (.config): uringrace builds out of "
            f"tree; run 'make -C {src} mrproper' first")
    return ver


def check_patches(patches):
    """Every PATCH= file must be there: said before any build or guest."""
    for p in patches:
        if not os.path.isfile(p):
            raise PipelineError(f"PATCH={p}: no such file")


def patched(src, identity, patches):
    """Tree A (src) plus the patches, in order, as a tree of its own in the
    cache: hard links to A's files (patch replaces each file it changes
    with a new one, so A is never touched), keyed by A and the patches'
    contents. A patch that does not apply stops before anything is kept,
    naming the patch and patch's own complaint. Returns (dir, identity)."""
    check_patches(patches)
    texts = []
    for p in patches:
        with open(p, "rb") as f:
            texts.append(f.read())
    key = hashlib.sha256(b"\0".join([identity.encode()] + texts)).hexdigest()[:12]
    dest = f"{src.rstrip('/')}+p{key}"
    if not os.path.isdir(os.path.join(dest, "kernel")):
        _make_patched(src, identity, patches, dest)
    # used now: kbuild.evict_patched removes trees long unused (and a new
    # one has A's mtime from cp -a)
    os.utime(dest)
    return dest, f"{identity}+patch:{key}"


def made_by_patched(path):
    """Whether path is a tree patched() made (or left half made)."""
    return re.search(rf"\+p{KEY}(\.partial)?$", path) is not None


def _make_patched(src, identity, patches, dest):
    tmp = dest + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"tree B: {src} + {', '.join(patches)} (hard links, then patch)")
    subprocess.run(["cp", "-al", src, tmp], check=True)
    try:
        for p in patches:
            res = subprocess.run(["patch", "-p1", "--forward", "--batch", "-d", tmp,
                                  "-i", os.path.abspath(p)], capture_output=True, text=True,
                                 check=False)
            if res.returncode != 0:
                said = [ln for ln in res.stdout.splitlines() if ln.strip()]
                raise PipelineError(f"PATCH {p} does not apply to {identity}:\n  "
                                    + "\n  ".join(said[-8:]))
        os.rename(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def changed_files(b, a):
    """The files of tree B (made by patched()) that are not A's: the ones a
    patch replaced or added (hard links share A's inode)."""
    out = []
    for root, _, files in os.walk(b):
        there = os.path.join(a, os.path.relpath(root, b))
        for f in files:
            mine = os.path.join(root, f)
            try:
                same = os.lstat(mine).st_ino == os.lstat(os.path.join(there, f)).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                out.append(mine)
    return out


def resolve(ksrc, kver):
    """Return (source dir, identity string, version)."""
    if ksrc:
        src = os.path.realpath(ksrc)
        return src, f"path:{src}"
    return debian_tree(kver or DEFAULT_KVER)


def _git(tree, *args):
    res = subprocess.run(["git", "-C", tree] + list(args), capture_output=True, check=False)
    return res.returncode, res.stdout


def diff_as_patch(a, b, outdir):
    """Tree B as a patch on tree A, when both are git trees of one history:
    git's diff of B's working tree against A's commit (untracked files of B
    as new files), so that B can be built from A's build (the patch loop).
    Returns (patch path, None), or (None, why not) for a cold build of B."""
    code, head = _git(a, "rev-parse", "--verify", "HEAD")
    if code:
        return None, f"{a} is not a git tree"
    head = head.decode().strip()
    code, dirty = _git(a, "status", "--porcelain", "--untracked-files=no")
    if code or dirty.strip():
        return None, f"{a} has uncommitted changes (B is compared with A's commit)"
    if _git(b, "cat-file", "-e", f"{head}^{{commit}}")[0]:
        return None, f"{b} is not a git tree that holds A's commit {head[:12]}"
    code, diff = _git(b, "diff", "--binary", "--no-color", "--no-ext-diff", head, "--")
    if code:
        return None, f"git diff in {b} failed"
    _, untracked = _git(b, "ls-files", "--others", "--exclude-standard", "-z")
    for name in filter(None, untracked.decode().split("\0")):
        code, new = _git(b, "diff", "--binary", "--no-color", "--no-index", "--", "/dev/null",
                         name)
        diff += new  # --no-index exits 1 when the files differ
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, f"B-on-{head[:12]}.patch")
    with open(path, "wb") as f:
        f.write(diff)
    log(f"tree B ({b}) is A's commit {head[:12]} plus {diff.count(b'diff --git')} changed "
        f"file(s): built from A's build ({path})")
    return path, None
