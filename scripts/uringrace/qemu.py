"""Step 6: boot the guest under QEMU with a host-side timeout and tell apart
pass, fail, panic/oops, hang and boot failure. Only an arrived 0 is a pass."""

import os
import re
import shutil
import subprocess
import threading
import time

from .common import PipelineError, cache_dir, log
from .records import BootResult, Outcome

INIT_MARK = "uringrace: init started"
PANIC_RE = re.compile(r"Kernel panic - not syncing|\bOops\b|BUG: (?!KCSAN)|"
                      r"general protection fault|Unable to handle kernel")
WARN_RE = re.compile(r"WARNING: CPU: \d+ PID: \d+")

def classify(console, status, timed_out):
    """Return (Outcome, status int or None, reason)."""
    init_seen = INIT_MARK in console
    after = console.split(INIT_MARK, 1)[1] if init_seen else ""
    code = None
    if status is not None and status.strip().lstrip("-").isdigit():
        code = int(status.strip())
    panic = PANIC_RE.search(console)
    if panic:  # the reason: the whole line the match is on
        end = console.find("\n", panic.start())
        return Outcome.PANIC, code, console[panic.start():end if end >= 0 else None].strip()
    if not init_seen:
        return (Outcome.HANG if timed_out else Outcome.BOOT_FAILURE), code, \
            "the guest never reached /init"
    if code is None:
        if timed_out:
            return Outcome.HANG, None, "timeout with no exit status"
        return Outcome.NO_STATUS, None, "QEMU exited without an exit status from the guest"
    warn = WARN_RE.search(after)
    if code == 0 and warn:
        return Outcome.FAIL, code, "kernel WARNING during the tests: " + warn.group(0)
    if code == 0:
        return Outcome.PASS, 0, "exit status 0"
    return Outcome.FAIL, code, f"exit status {code}"


# a guest still running this long before its limit prints the stacks of its
# blocked tasks and of its CPUs (guest/init), the evidence of a hang
HANG_DUMP_MARGIN = 30
HANG_DUMP_MARK = "uringrace: still running after"


def kernel_append(rec, accel, extra="", timeout=None):
    """The guest kernel's command line: every boot's, a lab job's too.
    log_buf_len: the whole run's log must stay readable in the guest (a
    check run's console is about 270 KB; the tests fail on a lost record);
    panic=-1 with QEMU's -no-reboot: a panic ends the run at once;
    uringrace.dump_after: when guest/init dumps the stacks of a run that
    has not ended, HANG_DUMP_MARGIN seconds before the run's limit."""
    dump = f"uringrace.dump_after={timeout - HANG_DUMP_MARGIN} " \
        if timeout and timeout > 2 * HANG_DUMP_MARGIN else ""
    return (f"console={rec.console} panic=-1 oops=panic printk.devkmsg=on log_buf_len=4M "
            f"rdinit=/init uringrace.accel={accel} {dump}{extra}").strip()


def machine_args(rec, smp, accel):
    """QEMU's machine, CPU, vCPUs, accelerator and no-reboot, as
    (option, value) pairs: every boot's, a lab job's too."""
    return [("-M", rec.machine), ("-cpu", rec.cpu if accel != "kvm" else "host"),
            ("-smp", str(smp)), ("-accel", "tcg,thread=multi" if accel == "tcg" else "kvm"),
            ("-no-reboot", None)]


def qemu_cmd(rec, kernel, initrd, outdir, smp, mem, accel, append):
    qemu = rec.qemu
    if not shutil.which(qemu):
        raise PipelineError(f"{qemu} not found: run 'make deps'")
    cmd = [qemu, "-nodefaults", "-no-user-config", "-display", "none"]
    for opt, val in machine_args(rec, smp, accel):
        cmd += [opt] + ([val] if val is not None else [])
    cmd += ["-m", str(mem), "-kernel", kernel, "-initrd", initrd, "-append", append,
            "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
            "-device", f"{rec.virtio_serial},id=vser"]
    for name, fname in (("status", "status"), ("ktap", "ktap.txt")):
        cmd += ["-chardev", f"file,id=ur{name},path={os.path.join(outdir, fname)}",
                "-device", f"virtserialport,bus=vser.0,chardev=ur{name},"
                f"name=org.uringrace.{name}"]
    return cmd


def boot(rec, kernel, initrd, outdir, smp=2, mem=2048, accel="tcg", timeout=900,
         extra_append="", echo=True):
    """Boot once; return a BootResult and write console.log into outdir."""
    os.makedirs(outdir, exist_ok=True)
    for f in ("status", "ktap.txt"):
        path = os.path.join(outdir, f)
        if os.path.exists(path):
            os.unlink(path)
    append = kernel_append(rec, accel, extra_append, timeout)
    cmd = qemu_cmd(rec, kernel, initrd, outdir, smp, mem, accel, append)
    with open(os.path.join(outdir, "qemu.cmd"), "w", encoding="utf-8") as f:
        f.write(" ".join(cmd) + "\n")
    log(f"booting {rec.arch} guest ({accel}, {smp} vCPUs, timeout {timeout} s)")
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    lines = []
    marks = {}

    def reader():
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").replace("\r", "")
            lines.append(line)
            if INIT_MARK in line and "init" not in marks:
                marks["init"] = time.time() - t0
            if echo and ("uringrace:" in line or "BUG:" in line or "panic" in line):
                print("  | " + line.rstrip(), flush=True)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        proc.wait()
    th.join(timeout=5)
    elapsed = time.time() - t0
    console = "".join(lines)
    with open(os.path.join(outdir, "console.log"), "w", encoding="utf-8") as f:
        f.write(console)
    spath = os.path.join(outdir, "status")
    status = open(spath, encoding="utf-8").read() if os.path.exists(spath) else None
    outcome, code, reason = classify(console, status, timed_out)
    res = BootResult(arch=rec.arch, accel=accel, smp=smp, outcome=outcome, status=code,
                     reason=reason, seconds=round(elapsed, 1), qemu_rc=proc.returncode,
                     to_init_s=round(marks["init"], 2) if "init" in marks else None,
                     cmdline=append)
    log(f"guest {rec.arch}: {outcome} ({reason}); {res.seconds} s, "
        f"/init after {res.to_init_s} s")
    return res


def pick_accel(rec, want, kernel, workdir, make_probe_initrd):
    """ACCEL=tcg|kvm|auto. auto probes KVM once per host boot: it must boot the
    guest to /init and back within 30 s, or TCG is used. make_probe_initrd()
    packs the probe's initramfs, only when a probe actually runs."""
    if want in ("tcg", "kvm"):
        return want
    import platform
    host = platform.machine()
    if not (rec.arch == "x86_64" and host == "x86_64" and os.access("/dev/kvm", os.W_OK)):
        return "tcg"
    try:
        boot_id = open("/proc/sys/kernel/random/boot_id", encoding="utf-8").read().strip()
    except OSError:
        boot_id = "unknown"
    memo = os.path.join(cache_dir(), f"kvm-probe-{boot_id}")
    if os.path.exists(memo):
        return open(memo, encoding="utf-8").read().strip()
    res = boot(rec, kernel, make_probe_initrd(), os.path.join(workdir, "kvm-probe"), accel="kvm",
               timeout=30, echo=False)
    got = "kvm" if res.outcome in (Outcome.PASS, Outcome.FAIL) else "tcg"
    log(f"KVM probe: {res.outcome} -> using {got}")
    with open(memo, "w", encoding="utf-8") as f:
        f.write(got + "\n")
    return got
