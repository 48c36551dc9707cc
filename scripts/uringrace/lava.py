"""uringrace as a LAVA job: the job definitions a lab submits (make lava),
and their proof with LAVA's own dispatcher here (make check-lava).

A job boots the kernel uringrace built (or one a lab supplies by URL) with
the same initramfs `make run` boots, on LAVA's `qemu` device type; the guest
finds no uringrace virtio ports there and writes its KTAP stream to the
console (guest/init), where a `monitors` test action turns each KTAP result
line, nested ones too, into a LAVA test case. The kernel command line, the
QEMU machine and the timeout are read from the same functions and settings
as the local run's; the expected verdicts are inside the image (the
selftests' own tables)."""

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import time

from . import artifacts, initramfs, parse, qemu
from .common import REPO, PipelineError, cache_dir, log
from .guest import boot_once, guest_parts, run_dir

DEVICE_DICT = os.path.join(REPO, "lava", "qemu-uringrace.jinja2")
# the guest's console lines the job waits on (guest/init, qemu.INIT_MARK)
START, END = "TAP version 13", "uringrace: exit status"
# One KTAP result line, at any depth. The result group captures "ok " (with
# its space) when the line ends in a SKIP directive: LAVA maps the captured
# text through fixupdict and has no other way to tell a skip apart. LAVA's
# pexpect searches the console as it arrives, so the pattern matches only a
# whole line (its end looked at, not taken: the next match starts at it);
# else a name cut by a read ("selftes") or a SKIP not yet arrived is taken.
# A line ends in "\r\r\n" there: the guest's tty and LAVA's pty each add a
# "\r" (a pattern wanting "\r?\n" matched nothing in a whole run).
PATTERN = (r"\n[ \t]*(?P<result>not ok|ok(?= +\d+ [^\r\n]*# SKIP) |ok) *\d+ "
           r"(?P<test_case_id>[^#\r\n]*[^#\s])(?=[^\r\n]*\r*\n)")
FIXUP = {"ok": "pass", "not ok": "fail", "ok ": "skip"}
DEPLOY_MIN, BOOT_MIN = 5, 3


def case_id(name):
    """A test's name as LAVA records it (lava_dispatcher's monitor)."""
    return re.sub(r"\W+", "_", name.strip().lower())


def ktap_cases(text):
    """[(case id, pass|fail|skip)] of every result line of a KTAP stream,
    nested ones before their parent, in the order they were printed."""
    out = []

    def walk(results):
        for r in results:
            walk(r["subtests"])
            verdict = "skip" if r["directive"] == "SKIP" else "pass" if r["ok"] else "fail"
            out.append((case_id(r["name"]), verdict))
    walk(parse.parse_ktap(text)["subtests"])
    return out


def to_yaml(obj, indent=0):
    """Block YAML of dicts, lists, strings, numbers and booleans; every
    string double-quoted as JSON writes it (valid YAML), so no value is
    read back as another type."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            k = k if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", k) else json.dumps(k)
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 2))
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
    else:
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                inner = to_yaml(v, indent + 2).splitlines()
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines += inner[1:]
            else:
                lines.append(f"{pad}- {_scalar(v)}")
    return "\n".join(lines)


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (dict, list)):
        return "{}" if isinstance(v, dict) else "[]"
    return json.dumps(str(v))


def job(args, rec, kinfo, kernel_url, initrd_url, accel="tcg"):
    """One arch's job definition (a dict): deploy the kernel and initramfs
    to tmpfs, boot them with LAVA's qemu method, monitor the console."""
    append = qemu.kernel_append(rec, accel, args.kcsan_args, args.timeout)
    mach = dict(qemu.machine_args(rec, args.smp, accel))
    # LAVA's qemu template sets -cpu and -machine itself on arm (from the
    # context), nothing on x86 with no_kvm: the rest goes in extra_options
    extra = [f"-smp {mach['-smp']}", f"-accel {mach['-accel']}", "-no-reboot"]
    context = {"arch": rec.arch, "memory": args.mem, "cpu": mach["-cpu"],
               "machine": mach["-M"]}
    if rec.arch != "arm64":
        extra += [f"-M {mach['-M']}", f"-cpu {mach['-cpu']}"]
    context["extra_options"] = extra
    test_min = max(1, -(-args.timeout // 60))
    return {
        "device_type": "qemu",
        "job_name": f"uringrace selftests, {rec.arch}, linux {kinfo.version} KCSAN "
                    f"({kinfo.identity})",
        # connection: how long the monitor waits for the next line; a
        # storm or a test may print nothing for minutes
        "timeouts": {"job": {"minutes": DEPLOY_MIN + BOOT_MIN + test_min + 2},
                     "action": {"minutes": test_min},
                     "connection": {"minutes": test_min}},
        "priority": "medium",
        "visibility": "public",
        "context": context,
        "actions": [
            {"deploy": {"to": "tmpfs", "timeout": {"minutes": DEPLOY_MIN}, "images": {
                "kernel": {"image_arg": f"-kernel {{kernel}} -append \"{append}\"",
                           "url": kernel_url},
                "initrd": {"image_arg": "-initrd {initrd}", "url": initrd_url}}}},
            {"boot": {"method": "qemu", "media": "tmpfs", "timeout": {"minutes": BOOT_MIN},
                      "prompts": [qemu.INIT_MARK]}},
            {"test": {"timeout": {"minutes": test_min}, "monitors": [{
                "name": "uringrace", "start": START, "end": END, "pattern": PATTERN,
                "fixupdict": FIXUP}]}},
        ],
    }


def write_jobs(args, rd, base_url=None, cmd=None, tag=""):
    """Per arch: the kernel image and the initramfs (the selftests; or the
    guest command cmd, as CMD= gives it) copied into rd/<arch>/, and
    rd/job-<arch><tag>.yaml pointing at them (file:// here; base_url +
    '<arch>/<file>' for a lab that serves rd).
    Returns {arch: (job path, the job, guest_parts' tuple)}."""
    out = {}
    for arch in args.arch:
        parts = guest_parts(args, arch)
        rec, kinfo, _, files, tests = parts
        d = os.path.join(rd, arch)
        os.makedirs(d, exist_ok=True)
        kname = os.path.basename(kinfo.image)
        shutil.copyfile(kinfo.image, os.path.join(d, kname))
        iname = f"initramfs{tag}.cpio"
        initramfs.pack(os.path.join(d, iname), artifacts.busybox_for(rec),
                       os.path.join(REPO, "guest", "init"), files if not cmd else {},
                       tests if not cmd else [], cmd=cmd)
        if base_url:
            urls = [f"{base_url.rstrip('/')}/{arch}/{f}" for f in (kname, iname)]
        else:
            urls = [f"file://{os.path.join(d, f)}" for f in (kname, iname)]
        if args.lava_kernel and not cmd:
            # the lab's build of the tree: the module in the initramfs was
            # built against ours, so it must be the same tree and config
            urls[0] = args.lava_kernel
        path = os.path.join(rd, f"job-{arch}{tag}.yaml")
        definition = job(args, rec, kinfo, *urls)
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"# LAVA job: uringrace's selftests on {arch} (written by make lava)\n")
            f.write(to_yaml(definition) + "\n")
        log(f"{arch}: {path}")
        out[arch] = (path, definition, parts)
    return out


def device_types():
    """LAVA's device-type templates, unpacked from lava-server by make deps."""
    d = os.path.join(cache_dir(), "deb", "lava-server", "usr", "share", "lava-server",
                     "device-types")
    if not os.path.isfile(os.path.join(d, "qemu.jinja2")):
        raise PipelineError(f"no LAVA device types at {d}: run 'make deps'")
    return d


# Rendered by Debian's python3 (jinja2 comes with lava-dispatcher), as a
# LAVA server renders a device dictionary with a job's context
_RENDER = """
import json, sys, jinja2
dirs, name, ctx = sys.argv[1].split(":"), sys.argv[2], json.loads(sys.argv[3])
env = jinja2.Environment(loader=jinja2.FileSystemLoader(dirs), trim_blocks=True,
                         autoescape=False)
sys.stdout.write(env.get_template(name).render(**ctx))
"""


def lava_run_cmd():
    exe = shutil.which("lava-run")
    if not exe:
        raise PipelineError("lava-run not found (Debian's lava-dispatcher): run 'make deps'")
    return exe


def render_device(ctx, out):
    """The device for a job: the project's device dictionary rendered with
    the job's context into out; returns out."""
    res = subprocess.run(["/usr/bin/python3", "-c", _RENDER,
                          f"{os.path.dirname(DEVICE_DICT)}:{device_types()}",
                          os.path.basename(DEVICE_DICT), json.dumps(ctx)],
                         capture_output=True, text=True, check=False)
    if res.returncode:
        raise PipelineError(f"rendering {DEVICE_DICT}: {res.stderr.strip()[-500:]}")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(res.stdout)
    return out


def lava_run(job_path, device, outdir, job_id, validate=False, timeout=None):
    """Dispatch (or only validate) a job with lava-run; returns (its log
    lines as dicts, wall seconds). Its log goes to outdir/lava.log as it
    comes (tail it to follow a run); a run past timeout is killed."""
    os.makedirs(outdir, exist_ok=True)
    cmd = [lava_run_cmd(), "--job-id", str(job_id), "--output-dir", outdir, "--device",
           device] + (["--validate"] if validate else []) + [job_path]
    log("$ " + " ".join(cmd))
    t0 = time.time()
    path = os.path.join(outdir, "lava.log")
    with open(path, "w", encoding="utf-8") as f:
        # its own process group: a kill takes its QEMU with it
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            f.write("uringrace: lava-run did not end within the job's own timeouts\n")
    entries = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if isinstance(e, dict):
                entries.append(e)
    return entries, round(time.time() - t0, 1)


def lava_results(entries):
    """(the job's own result, [(case, result)] of the uringrace monitor), from
    lava-run's log: 'fail' when the log has no job result at all."""
    job_result, cases = "fail", []
    for e in entries:
        msg = e.get("msg")
        if e.get("lvl") != "results" or not isinstance(msg, dict):
            continue
        if msg.get("definition") == "lava" and msg.get("case") == "job":
            job_result = msg.get("result", "fail")
        elif msg.get("definition") == "uringrace":
            cases.append((msg.get("case"), msg.get("result")))
    return job_result, cases


def _job_dir(args, what):
    """A run directory with the jobs of args.arch written into it."""
    rd = run_dir(args, what)
    return rd, write_jobs(args, rd, args.lava_url)


def validate(path, definition, outdir):
    """(ok, detail) of lava-run --validate on one job, its device rendered."""
    try:
        dev = render_device(definition["context"], os.path.join(outdir, "device.yaml"))
        entries, _ = lava_run(path, dev, outdir, 1, validate=True, timeout=300)
    except PipelineError as exc:
        return False, str(exc)
    result, _ = lava_results(entries)
    errors = [str(e.get("msg"))[:200] for e in entries if e.get("lvl") in ("error", "exception")]
    return result == "pass", f"lava-run --validate: {result}" + \
        "".join(f"; {m}" for m in errors[:2])


def _local_twin(rd, arch, definition, parts):
    """(path, job): the job with file:// URLs of rd/<arch>/'s artifacts."""
    images = definition["actions"][0]["deploy"]["images"]
    local = {"kernel": os.path.basename(parts[1].image), "initrd": "initramfs.cpio"}
    twin = json.loads(json.dumps(definition))
    for k, name in local.items():
        twin["actions"][0]["deploy"]["images"][k] = dict(
            images[k], url=f"file://{os.path.join(rd, arch, name)}")
    path = os.path.join(rd, f"validate-{arch}", "job-local.yaml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_yaml(twin) + "\n")
    return path, twin


def cmd_lava(args):
    """make lava: the job definitions of each arch, with their artifacts,
    validated by lava-run when it is installed."""
    rd, jobs = _job_dir(args, "lava")
    bad = 0
    for arch, (path, definition, parts) in jobs.items():
        if shutil.which("lava-run"):
            vpath, vdef = path, definition
            if args.lava_url or args.lava_kernel:
                # the lab's URLs cannot be reached from here: validate the
                # same job pointing at this machine's copies
                vpath, vdef = _local_twin(rd, arch, definition, parts)
            ok, detail = validate(vpath, vdef, os.path.join(rd, f"validate-{arch}"))
            bad += not ok
            print(f"{arch}: {path} ({detail})")
        else:
            print(f"{arch}: {path} (not validated: lava-run is not installed)")
    print(f"artifacts: {rd} (job-<arch>.yaml; <arch>/ holds the kernel image and "
          "initramfs.cpio a lab serves; LAVA_URL=<base> writes their URLs under it)")
    return 1 if bad else 0


# check-lava's failing job: the guest starts its KTAP, then the kernel
# panics (as the runner's own panic case does, check.RUNNER_CASES)
PANIC_CMD = "echo 'TAP version 13'; echo 1..1; echo c > /proc/sysrq-trigger"


def agree(lava_cases, local_cases):
    """[(case, LAVA's verdict, the local run's)] for every case of either,
    in the local order (a case named twice is matched in turn); a row
    differs when a verdict is None (missing on one side) or they differ."""
    rows, pending = [], {}
    for c, v in lava_cases:
        pending.setdefault(c, []).append(v)
    for c, v in local_cases:
        got = pending.get(c) or [None]
        rows.append((c, got.pop(0), v))
    for c, vs in pending.items():
        rows += [(c, v, None) for v in vs if v is not None]
    return rows


def cmd_check_lava(args):
    """make check-lava: the job of each arch (ARCHES, x86-64 by default) run
    by lava-run on a local QEMU device, and make run's boot of the same
    kernel and initramfs; every test in both with the same verdict. Then a
    job whose kernel panics must come back failed."""
    # the artifacts of this machine, by file://, whatever a lab would use
    args = dataclasses.replace(args, lava_url=None, lava_kernel=None)
    rd, jobs = _job_dir(args, "check-lava")
    problems = []
    for arch, (path, definition, parts) in jobs.items():
        dev = render_device(definition["context"], os.path.join(rd, f"device-{arch}.yaml"))
        entries, t_lava = lava_run(path, dev, os.path.join(rd, f"lava-{arch}"), 1,
                                   timeout=60 * (DEPLOY_MIN + BOOT_MIN) + args.timeout + 120)
        job_result, lava_cases = lava_results(entries)
        # make run's boot of the very kernel and initramfs parts the job has
        rec, kinfo, work, files, tests = parts
        t0 = time.time()
        rep = boot_once(args, rec, kinfo, work, files, tests, os.path.join(rd, f"{arch}-run"))
        t_local = round(time.time() - t0, 1)
        with open(os.path.join(rd, f"{arch}-run", "ktap.txt"), encoding="utf-8",
                  errors="replace") as f:
            local_cases = ktap_cases(f.read())
        rows = agree(lava_cases, local_cases)
        differ = [r for r in rows if r[1] != r[2]]
        print(f"== {arch}: {len(rows)} test cases; LAVA job {job_result} in {t_lava} s, "
              f"make run {rep['boot'].outcome} in {t_local} s")
        for c, lv, lo in rows:
            print(f"   {'' if lv == lo else '<== '}{c:60} LAVA {lv or 'missing':8} "
                  f"make run {lo or 'missing'}")
        for what, cs in (("LAVA", lava_cases), ("make run", local_cases)):
            n = {v: sum(1 for _, x in cs if x == v) for v in ("pass", "fail", "skip")}
            print(f"   {what}: {n['pass']} pass, {n['fail']} fail, {n['skip']} skip")
        if job_result != "pass":
            problems.append(f"{arch}: the LAVA job ended {job_result} (log: {rd}/lava-{arch})")
        if not rep["boot"].passed:
            problems.append(f"{arch}: make run's guest: {rep['boot'].outcome} "
                            f"({rep['boot'].reason})")
        if not local_cases:
            problems.append(f"{arch}: no test case at all")
        if differ:
            problems.append(f"{arch}: {len(differ)} case(s) differ or are missing")
        # a kernel that panics: a failed job, never a pass
        ppath, pdef, _ = write_jobs(dataclasses.replace(args, arch=(arch,)), rd, cmd=PANIC_CMD,
                                       tag="-panic")[arch]
        pentries, t_panic = lava_run(ppath, render_device(
            pdef["context"], os.path.join(rd, f"device-{arch}-panic.yaml")),
            os.path.join(rd, f"lava-{arch}-panic"), 2, timeout=60 * (DEPLOY_MIN + BOOT_MIN) + 300)
        presult, _ = lava_results(pentries)
        print(f"   a kernel that panics: LAVA job {presult} in {t_panic} s")
        if presult == "pass":
            problems.append(f"{arch}: the panicking kernel's LAVA job passed")
    for p in problems:
        print(f"uringrace: {p}")
    print(f"artifacts: {rd} (job-<arch>.yaml, lava-<arch>/lava.log, <arch>-run/)")
    return 1 if problems else 0
