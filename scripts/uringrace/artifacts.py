"""Step 4: build what goes into the guest for one arch: uringrace.ko against
the kernel build, the static selftests, and find busybox of the guest's arch."""

import os
import shutil

from . import kbuild
from .common import REPO, PipelineError, cache_dir, jobs, run


def busybox_for(rec):
    if rec.arch == "x86_64":
        path = "/bin/busybox"
    else:
        path = os.path.join(cache_dir(), "deb", rec.deb_arch, "bin", "busybox")
    if not os.path.isfile(path):
        raise PipelineError(f"no {rec.arch} busybox at {path}: run 'make deps'")
    return path


def kmod_path(workdir):
    """Where build_kmod leaves uringrace.ko for this work dir."""
    return os.path.join(workdir, "src", "kmod", "uringrace.ko")


SOURCE_SUFFIXES = (".c", ".h", "Makefile", "Kbuild")


def sync_sources(src, dst):
    """Make dst's source files (SOURCE_SUFFIXES) those of src: a file whose
    content differs is rewritten (a new mtime, so kbuild rebuilds it, whatever
    the checkout's own mtimes), one src no longer has is removed (kmod/Makefile
    builds every sc_*.c it finds); build outputs are left alone. Returns the
    paths written or removed."""
    changed = []
    want = set()
    for root, _, names in os.walk(src):
        for n in names:
            if not n.endswith(SOURCE_SUFFIXES):
                continue
            rel = os.path.relpath(os.path.join(root, n), src)
            want.add(rel)
            with open(os.path.join(src, rel), "rb") as f:
                data = f.read()
            out = os.path.join(dst, rel)
            old = None
            if os.path.exists(out):
                with open(out, "rb") as f:
                    old = f.read()
            if old != data:
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with open(out, "wb") as f:
                    f.write(data)
                changed.append(rel)
    for root, _, names in os.walk(dst):
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), dst)
            if n.endswith(SOURCE_SUFFIXES) and rel not in want and not n.endswith(".mod.c"):
                os.unlink(os.path.join(dst, rel))
                changed.append(rel)
    return changed


def build_kmod(kinfo, rec, workdir):
    """Copy kmod/ and include/ next to each other under workdir (one copy per
    arch and kernel, so builds for two arches never share objects)."""
    src = os.path.join(workdir, "src")
    for sub in ("kmod", "include"):
        sync_sources(os.path.join(REPO, sub), os.path.join(src, sub))
    cmd = ["make", "-C", kinfo.make_objdir, f"M={os.path.join(src, 'kmod')}",
           f"ARCH={rec.karch}", "W=1", f"-j{jobs()}", "modules"]
    if rec.cross_compile:
        cmd.append(f"CROSS_COMPILE={rec.cross_compile}")
    logf = os.path.join(workdir, "kmod-build.log")
    open(logf, "w").close()
    run(kbuild.in_place_of(kinfo.binds, cmd), logfile=logf)
    with open(logf, encoding="utf-8", errors="replace") as f:
        warnings = [line.rstrip() for line in f if "warning:" in line]
    if warnings:
        raise PipelineError("uringrace.ko built with warnings:\n  " + "\n  ".join(warnings))
    ko = kmod_path(workdir)
    if not os.path.isfile(ko):
        raise PipelineError(f"kbuild did not produce {ko}")
    return ko


def build_selftests(kinfo, rec, workdir):
    """The static selftests for the guest's arch; returns their build dir."""
    out = os.path.join(workdir, "selftests")
    ksft = os.path.join(kinfo.src, "tools", "testing", "selftests")
    if not os.path.isfile(os.path.join(ksft, "kselftest_harness.h")):
        raise PipelineError(f"{ksft}/kselftest_harness.h missing in the kernel tree")
    if not shutil.which(rec.cc):
        raise PipelineError(f"{rec.cc} not found: run 'make deps'")
    run(["make", "-s", "-C", os.path.join(REPO, "selftests"), f"KSFT_DIR={ksft}",
         f"OUTPUT={out}", f"CC={rec.cc}", f"-j{jobs()}", "all"])
    return out


def build_driver(rec, workdir):
    """The C++ driver, static, for the guest's arch."""
    out = os.path.join(workdir, "user")
    if not shutil.which(rec.cxx):
        raise PipelineError(f"{rec.cxx} not found: run 'make deps'")
    run(["make", "-s", "-C", os.path.join(REPO, "user"), f"CXX={rec.cxx}",
         f"OUTPUT={out}", f"-j{jobs()}", "static"])
    return os.path.join(out, "uringrace")


def build_host_driver():
    """The driver for this host (the benches' host runs); returns its path."""
    out = os.path.join(cache_dir(), "work", "host-user")
    drv = os.path.join(out, "uringrace")
    run(["make", "-s", "-C", os.path.join(REPO, "user"), f"OUTPUT={out}", drv])
    return drv


COLLECTION = "opt/kselftest"


def install_collection(kinfo, rec, workdir, driver=None, ko=None):
    """'make -C selftests install' as a lab runs it (with the driver and the
    module in the collection when given); returns ({guest path under
    COLLECTION: host path}, [test names in the runner's order])."""
    out = os.path.join(workdir, "ksft-install" + ("" if ko else "-bare"))
    shutil.rmtree(out, ignore_errors=True)
    ksft = os.path.join(kinfo.src, "tools", "testing", "selftests")
    run(["make", "-s", "-C", os.path.join(REPO, "selftests"), f"KSFT_DIR={ksft}",
         f"OUTPUT={os.path.join(workdir, 'selftests')}", f"CC={rec.cc}",
         f"INSTALL_PATH={out}"] + ([f"DRIVER={driver}"] if driver else []) +
        ([f"KO={ko}"] if ko else []) + ["install"])
    files = {}
    for root, _, names in os.walk(out):
        for n in names:
            host = os.path.join(root, n)
            files[f"{COLLECTION}/" + os.path.relpath(host, out)] = host
    with open(os.path.join(out, "kselftest-list.txt"), encoding="utf-8") as f:
        tests = [line.strip().split(":", 1)[1] for line in f if line.strip()]
    return files, tests
