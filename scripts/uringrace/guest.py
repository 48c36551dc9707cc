"""What every guest run needs: the cached kernel, the artifacts, one boot
with its report, and a fresh run directory."""

import hashlib
import os
import time

from . import artifacts, expect, initramfs, kbuild, qemu, report, tree
from .common import REPO, cache_dir, log


def kernel_for(args, arch):
    rec = args.arch_config(arch)
    src, identity = tree.resolve(args.ksrc, args.kver)
    ver = tree.check_tree(src, rec)
    log(f"tree {src} (linux {ver}, {identity})")
    info = kbuild.build(src, identity, rec, keep=args.keep_a)
    if args.patches:
        # B = that tree + the patches, built from its finished build
        src, identity = tree.patched(src, identity, args.patches)
        ver = tree.check_tree(src, rec)
        info = kbuild.build_patched(src, identity, rec, info, keep=args.keep_b)
    info.version = ver
    return rec, info


def guest_parts(args, arch):
    """Kernel + everything the guest needs for one arch (all cached)."""
    rec, kinfo = kernel_for(args, arch)
    # one work dir per checkout too: make judges the driver's and the tests'
    # objects by mtime, and another checkout's sources may be older
    tag = hashlib.sha1(os.path.realpath(REPO).encode()).hexdigest()[:8]
    work = os.path.join(cache_dir(), "work", f"{arch}-{kinfo.key}-{tag}")
    os.makedirs(work, exist_ok=True)
    ko = artifacts.build_kmod(kinfo, rec, work)
    # the driver does not depend on the kernel: one per arch and checkout
    drv = artifacts.build_driver(rec, os.path.join(cache_dir(), "work", f"{arch}-user-{tag}"))
    artifacts.build_selftests(kinfo, rec, work)
    # the guest runs the installed collection with the kernel's own
    # run_kselftest.sh, as a lab would (guest/init)
    files, tests = artifacts.install_collection(kinfo, rec, work, drv, ko)
    # and the driver and the module where a CMD= run finds them
    files["lib/modules/uringrace.ko"] = ko
    files["usr/bin/uringrace"] = drv
    if args.expect:
        # the selftests read it before the version's own file
        files["etc/uringrace/expect"] = expect.path_for(None, args.expect)
    return rec, kinfo, work, files, tests


def boot_once(args, rec, kinfo, work, files, tests, outdir, cmd=None, timeout=None,
              echo=True):
    """Pack the initramfs for this run, boot it, write the report; return it."""
    os.makedirs(outdir, exist_ok=True)
    busybox = artifacts.busybox_for(rec)
    init = os.path.join(REPO, "guest", "init")
    initrd = initramfs.pack(os.path.join(outdir, "initramfs.cpio"), busybox, init, files,
                            tests, cmd=cmd)
    accel = qemu.pick_accel(rec, args.accel, kinfo.image, work, lambda: initramfs.pack(
        os.path.join(work, "probe.cpio"), busybox, init, {}, [], cmd="true"))
    res = qemu.boot(rec, kinfo.image, initrd, outdir, smp=args.smp, mem=args.mem,
                    accel=accel, timeout=timeout or args.timeout,
                    extra_append=args.kcsan_args, echo=echo)
    rep = report.build(outdir, res, kinfo)
    os.unlink(initrd)  # large and rebuilt in a second from cached parts
    return rep


def run_dir(args, what):
    root = os.path.abspath(args.out)
    rd = os.path.join(root, f"{what}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(rd, exist_ok=True)
    latest = os.path.join(root, f"{what}-latest")
    if os.path.islink(latest) or os.path.exists(latest):
        os.unlink(latest)
    os.symlink(os.path.basename(rd), latest)
    return rd
