"""'make check': host unit tests, lint, the host leg (store buffering on
the host CPU), the guest selftests per arch, symbolization, the fleet
collection and the runner outcome cases; closed by 'N passed, N failed'."""

import dataclasses
import os
import re
import subprocess

from . import artifacts, catalog, lava, mutants, mutate, report, symbolize, tree
from .common import REPO, PipelineError, cache_dir
from .guest import boot_once, guest_parts, run_dir
from .storms import anomalies, run_driver_host, run_side, side_ok


class Tally:
    """Results of 'check', closed by the plain 'N passed, N failed' line."""

    def __init__(self):
        self.rows = []

    def add(self, name, ok, detail=""):
        self.rows.append((name, ok, detail))
        print(f"{'ok' if ok else 'FAIL':4}  {name}{'  -- ' + detail if detail else ''}",
              flush=True)

    def close(self):
        passed = sum(1 for _, ok, _ in self.rows if ok)
        failed = len(self.rows) - passed
        print(f"{passed} passed, {failed} failed")
        return 0 if failed == 0 else 1

# Guest commands that must reach the host as something other than a pass.
RUNNER_CASES = (
    ("runner: failing command -> fail, status 3", "exit 3", "fail", 3, None),
    ("runner: kernel panic -> panic", "echo c > /proc/sysrq-trigger", "panic", None, None),
    ("runner: hang -> hang at the host timeout", "sleep 100000", "hang", None, 20),
    ("runner: passing command -> pass", "true", "pass", 0, None),
)


def _host_step(tally, name, argv):
    res = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    tail = (res.stdout + res.stderr).strip().splitlines()[-3:]
    tally.add(name, res.returncode == 0, "" if res.returncode == 0 else " | ".join(tail))


def host_leg(tally, workdir):
    """The C++ driver's host tests and the real-hardware leg: store buffering
    was not observed under TCG here but is on the host CPU."""
    out = os.path.join(workdir, "host-user")
    res = subprocess.run(["make", "-s", "-C", os.path.join(REPO, "user"), f"OUTPUT={out}",
                          "test"], capture_output=True, text=True, check=False)
    tail = (res.stdout + res.stderr).strip().splitlines()[-2:]
    tally.add("host: C++ driver unit tests (gtest)", res.returncode == 0, " | ".join(tail))
    drv = os.path.join(out, "uringrace")
    rows = {}
    # with the fence: 2 M iterations, none may be a witness; without it: until
    # the first witness, 60 s at most (the rate swings with host load: from
    # 2 to 7 000 per million on this machine)
    for fence, bound in (("on", ["--ops", "2000000"]), ("off", ["--until-witness"])):
        rc, got = run_driver_host(drv, ["litmus", "--duration", "60", "--fence", fence] + bound)
        for r in got:
            rows[(r["workload"], fence)] = r
    sb = dict.fromkeys(r["scenario"] for r in catalog.verdicts() if r["mode"] == "litmus")
    for proto in (f"litmus:{sc}" for sc in sb):
        on, off = rows.get((proto, "on")), rows.get((proto, "off"))
        if not on or not off:
            tally.add(f"host: {proto}", False, "driver gave no result")
            continue
        won, woff = on["anomalies"]["witnesses"], off["anomalies"]["witnesses"]
        detail = (f"fence on: {won} witnesses in {on['ops']} iterations; fence off: first "
                  f"witness after {off['ops']} iterations" if woff else
                  f"fence on: {won} witnesses in {on['ops']}; fence off: none in {off['ops']}")
        tally.add(f"host: {proto} clean with the fence", won == 0 and on["ops"] >= 1000000,
                  detail)
        tally.add(f"host: {proto} store buffering seen without it", woff > 0, detail)
    _ringbuf_model(tally, drv)
    _bpf_ringbuf(tally, drv)
    _defer_wait(tally, drv)
    rc, got = run_driver_host(drv, ["sqpoll", "--duration", "2", "--fence", "on"])
    if rc == 4:
        tally.add("host: real SQPOLL storm, fence on: SKIPPED (not a pass)", False,
                  "skipped: " + (got[0].get("skipped", "") if got else "?"))
    else:
        r = got[0] if got else {"ops": 0, "anomalies": {}}
        _, offr = run_driver_host(drv, ["sqpoll", "--duration", "2", "--fence", "off"])
        off = offr[0] if offr else {"ops": 0, "anomalies": {}}
        tally.add("host: real SQPOLL storm, fence on: no stall",
                  rc == 0 and r["ops"] > 0 and r["anomalies"].get("lost_wakeups", 1) == 0,
                  f"on: {r['anomalies'].get('lost_wakeups')} lost wake-ups in {r['ops']}; off "
                  f"(measured, not asserted): {off['anomalies'].get('lost_wakeups')} in "
                  f"{off['ops']}")


def _intree_step(src):
    """selftests/ as labs build kselftests: copied into (a scratch copy of)
    the tree's tools/testing/selftests by scripts/intree.sh, built and
    installed by that tree's own Makefile and lib.mk."""
    import shutil
    import tempfile
    name = "host: selftests build and install in a kernel tree (its lib.mk)"
    with tempfile.TemporaryDirectory(prefix="urr-intree-") as tmp:
        kt = os.path.join(tmp, "linux")
        shutil.copytree(os.path.join(src, "tools", "testing", "selftests"),
                        os.path.join(kt, "tools", "testing", "selftests"), symlinks=True)
        os.makedirs(os.path.join(kt, "scripts"))
        shutil.copy(os.path.join(src, "scripts", "subarch.include"),
                    os.path.join(kt, "scripts"))
        inst = os.path.join(tmp, "installed")
        for argv in (["bash", "scripts/intree.sh", kt],
                     ["make", "-s", "-C", os.path.join(kt, "tools", "testing", "selftests"),
                      "TARGETS=uringrace", "install", f"INSTALL_PATH={inst}"]):
            res = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
            if res.returncode:
                return name, False, " | ".join((res.stdout + res.stderr).splitlines()[-3:])
        with open(os.path.join(inst, "kselftest-list.txt"), encoding="utf-8") as f:
            listed = [line.split(":", 1)[1] for line in f.read().split()]
        listing = subprocess.run(["make", "-s", "-C", os.path.join(REPO, "selftests"), "list"],
                                 capture_output=True, text=True, check=True).stdout
        want = [line.split()[0] for line in listing.splitlines()]
        have = set(os.listdir(os.path.join(inst, "uringrace")))
        need = set(want) | {"kcsan_scan", "verdicts.txt", "storms.txt", "settings", "expect"}
        ok = listed == want and need <= have
        return name, ok, (f"{len(listed)} tests listed, as standalone" if ok else
                          f"listed {listed}; missing {sorted(need - have)}")


def _ringbuf_model(tally, drv):
    """The ringbuf model must be able to show seed 003's bug: the kernel's
    producer rule against libbpf's consumer on the host CPU, 5 s each way."""
    got = {}
    for fence in ("off", "on"):
        _, rows = run_driver_host(drv, ["model", "--fence", fence, "--duration", "5",
                                        "--entries", "64", "--watchdog-ms", "20"])
        got[fence] = rows[0] if rows else {"ops": 0, "anomalies": {}}
    on, off = got["on"], got["off"]
    lost_on = on["anomalies"].get("lost_notify", -1)
    lost_off = off["anomalies"].get("lost_notify", 0)
    detail = (f"fence off: {lost_off} lost in {off['ops']} records; fence on: {lost_on} in "
              f"{on['ops']}")
    tally.add("host: ringbuf model loses notifications without the consumer's fence",
              lost_off > 0 and off["ops"] > 10000, detail)
    tally.add("host: ringbuf model loses none with it", lost_on == 0 and on["ops"] > 100000,
              detail)


# seed 003 on the host kernel's real BPF ring buffer (bpf_ringbuf.cpp): the
# consumer's callback delay swept over 0-3 us puts its consumer_pos store on
# the producer's commit (hits at 1.8-2.1 us here); 20 ms asleep with a
# committed record at its position is one lost notification
BPF_RINGBUF_ARGS = ["--aim-after-ns", "3000", "--watchdog-ms", "20"]


def _bpf_ringbuf(tally, drv):
    """Real hardware, real BPF ring buffer: libbpf's ordering waiting
    edge-triggered must lose a notification (until the first, 60 s at most);
    with a seq_cst fence after its consumer_pos store, and with libbpf's own
    level-triggered ring_buffer__poll, none may be lost in 10 s."""
    runs = (("none", ["bpf_ringbuf", "--fence", "none", "--until-witness", "--duration", "60"]),
            ("on", ["bpf_ringbuf", "--fence", "on", "--duration", "10"]),
            ("libbpf", ["bpf_ringbuf_libbpf", "--duration", "10"]))
    got = {}
    for form, argv in runs:
        rc, rows = run_driver_host(drv, argv + BPF_RINGBUF_ARGS)
        r = rows[0] if rows else {"ops": 0, "anomalies": {}, "skipped": "no result"}
        got[form] = (rc, r)
    for form, (rc, r) in got.items():
        if rc or r.get("skipped"):
            tally.add(f"host: real BPF ringbuf, {form}: did not run (not a pass)", False,
                      f"exit {rc}: {r.get('skipped', '')}")
            got[form] = None
    if None in got.values():
        return
    lost = {f: r["anomalies"]["lost_notify"] for f, (_, r) in got.items()}
    ops = {f: r["ops"] for f, (_, r) in got.items()}
    detail = "; ".join(f"{f}: {lost[f]} lost in {ops[f]} attempts" for f in lost)
    tally.add("host: real BPF ringbuf loses a notification with libbpf's ordering (EPOLLET)",
              lost["none"] > 0, detail)
    tally.add("host: real BPF ringbuf loses none with the seq_cst fence",
              lost["on"] == 0 and ops["on"] > 10000, detail)
    tally.add("host: real BPF ringbuf loses none with libbpf's level-triggered poll",
              lost["libbpf"] == 0 and ops["libbpf"] > 10000, detail)


def _defer_wait(tally, drv):
    """DEFER_TASKRUN's wake-up on the host's kernel and CPU: the write aimed
    0-3 us after the waiter is cued, none may be lost (nor stall) in 10 s.
    Its detector is shown to fire by the patch loop's emulated mutant."""
    rc, rows = run_driver_host(drv, ["defer_wait", "--duration", "10", "--aim-after-ns", "3000",
                                     "--watchdog-ms", "50"])
    r = rows[0] if rows else {"ops": 0, "anomalies": {}, "counts": {}, "skipped": "no result"}
    name = "host: DEFER_TASKRUN wake-up (defer_wait) loses none"
    if rc or r.get("skipped"):
        tally.add(name + ": did not run (not a pass)", False, f"exit {rc}: {r.get('skipped', '')}")
        return
    a = r["anomalies"]
    tally.add(name, r["anomaly_total"] == 0 and r["ops"] > 10000,
              f"{a.get('lost_wakeups')} lost, {a.get('stalled')} stalled in {r['ops']} attempts "
              f"({r['counts'].get('late_writer')} with the writer late)")


def _symbolize_step(arch, rep, rec, kinfo, work):
    """faddr2line with this build's module (and cross binutils on arm64): the
    top frame of the module's KCSAN reports must come back as kmod/<file>.c:line."""
    mods = [r for r in rep["reports"] if report.scope(r) == "uringrace"][:4]
    name = f"{arch}: KCSAN stacks symbolized to file:line (faddr2line)"
    if not mods:
        return name, False, "no module KCSAN report in this run to symbolize"
    symbolize.symbolize(mods, kinfo, rec, {"uringrace": artifacts.kmod_path(work)})
    tops = [a["stack"][0] for r in mods for a in r["accesses"] if a["stack"]]
    good = [t for t in tops if t.get("where")
            and re.match(r"(\(inlined by\) )?kmod/\w+\.c:\d+ ", t["where"][-1])]
    ex = tops[0].get("where", ["none"])[-1] if tops else "none"
    return name, bool(tops) and len(good) == len(tops), \
        f"{len(good)}/{len(tops)} top frames placed, e.g. {tops[0]['fn']} -> {ex}"


def _bare_lab_step(args, arch, rec, kinfo, work, rd):
    """A lab's collection installed without DRIVER= and KO= (the selftests
    run from it in every guest run anyway): run by run_kselftest.sh without
    URINGRACE_MUST_RUN, every case that needs the module or the driver must
    SKIP with its reason, none may fail, and io_uring_nop still runs."""
    import re
    name = f"{arch}: lab collection without driver and module: SKIPs, no failure"
    coll, tests = artifacts.install_collection(kinfo, rec, work)
    # through a pipe: the runner reopens /dev/stdout, which a virtio port refuses
    gcmd = ("cd /opt/kselftest && URINGRACE_MUST_RUN=0 ./run_kselftest.sh -c uringrace 2>&1 "
            "| cat")
    r = boot_once(args, rec, kinfo, work, coll, [], os.path.join(rd, arch, "bare-lab"),
                  cmd=gcmd)
    with open(os.path.join(rd, arch, "bare-lab", "ktap.txt"), encoding="utf-8",
              errors="replace") as f:
        text = f.read()
    # each program's own cases, the lines the runner prefixed with '# '
    got = {}
    for t in tests:
        m = re.search(r"^# selftests: uringrace: %s\n(.*?)^(?:not )?ok \d+ selftests: "
                      r"uringrace: %s\b([^\n]*)$" % (re.escape(t), re.escape(t)), text, re.M | re.S)
        if not m:
            got[t] = "missing"
            continue
        cases = re.findall(r"^# (?:# )?(not ok|ok) \d+ [^#\n]*(# SKIP)?", m.group(1), re.M)
        if "not ok" in (c for c, _ in cases) or "not ok" in m.group(0).splitlines()[-1][:6]:
            got[t] = "FAIL"
        elif "SKIP" in m.group(2) or (cases and all(sk for _, sk in cases)):
            got[t] = "SKIP"
        else:
            got[t] = "ok"
    ok = r["boot"].passed and got.pop("io_uring_nop", None) == "ok" \
        and all(v == "SKIP" for v in got.values())
    return name, ok, f"{r['boot'].outcome}; " + ", ".join(f"{t} {v}" for t, v in got.items())


# The patch-loop steps' storm length, seconds per storm (sqpoll-aim gives
# its own 20). The io-wq mutant, on a host running two other guests: 2
# reports in an 8 s iowq-liburing storm and none in iowq-raw; 1 in the two
# storms at 15 s each. 20 s each, then, and measured again when quiet.
PATCH_STEP_SECONDS = "20"


# The patch loop's guards in make check: (which mutant, on which arches).
# The catalog's first kcsan mutant (KCSAN catches the real mutant) on the
# first arch; seed 000's kernel-side emulated reordering (the SQ thread loads
# the tail before it sets NEED_WAKEUP: lost wake-ups counted by sqpoll-aim)
# on every arch; DEFER_TASKRUN's (the waiter loads the work list before it
# stores cq_wait_nr: lost wake-ups counted by defer-wait) on the first.
PATCH_STEPS = (("first kcsan", "first"), ("sqpoll-no-mb-emulated", "every"),
               ("defer-wait-no-mb-emulated", "first"))


def _step_mutant(ms, which):
    if which == "first kcsan":
        return next((m for m in ms if m.cls == "kcsan"), None)
    return next((m for m in ms if m.id == which), None)


def _patch_loop_step(args, arch, rd, which):
    """The patch loop, end to end: a catalog mutant built through PATCH=
    from the tree's own build; its storm must catch it in B and show no
    forbidden race and no anomaly in A (the unmutated tree)."""
    name = f"{arch}: patch loop: mutant {which} caught in B, its tree clean of it"
    src, _ = tree.resolve(args.ksrc, args.kver)
    cat = mutants.path_for(tree.kernel_version(src))
    m = _step_mutant(mutants.load(cat), which) if cat else None
    if not m:
        return name, False, f"no mutant {which} in a catalog for this tree"
    storms = mutate.storm_args(m.storms)
    sub = os.path.join(rd, arch, f"patch-{m.id}")
    a = run_side(args, arch, sub + "-A", PATCH_STEP_SECONDS, storms=storms)
    patch = mutants.write_patch(m, src, os.path.join(rd, arch))
    b = run_side(args.for_tree(args.ksrc, args.kver, (patch,)), arch, sub + "-B",
                 PATCH_STEP_SECONDS, storms=storms)
    got = mutate.score(m, a, b, at=mutants.sites(m, src))
    forbidden_a = [g["title"] for g in a.titles if g["verdict"] == "forbidden"]
    anomalies_a = anomalies(a, m.storms)
    ok = got["verdict"] == "caught" and side_ok(a) and side_ok(b) and not forbidden_a \
        and not anomalies_a
    return name, ok, (f"{m.id} in {','.join(m.storms)}: B {got['verdict']} ({got['detail']}); A "
                      + (f"forbidden: {forbidden_a}" if forbidden_a else
                         f"{anomalies_a} anomalies" if anomalies_a else "clean of it"))


def _lava_validate_step(args, arch, rd):
    """make lava's job for this arch, checked by LAVA's own validator (the
    full LAVA run boots a guest: make check-lava)."""
    name = f"{arch}: LAVA job validates (lava-run --validate)"
    try:
        sub = os.path.join(rd, arch, "lava")
        args = dataclasses.replace(args, arch=(arch,), lava_url=None, lava_kernel=None)
        path, definition, _ = lava.write_jobs(args, sub)[arch]
        return (name, *lava.validate(path, definition, os.path.join(sub, "validate")))
    except PipelineError as exc:
        return name, False, str(exc)


def cmd_check(args):
    rd = run_dir(args, "check")
    tally = Tally()
    _host_step(tally, "host: parser, classifier, config and cpio unit tests",
               ["python3", "-m", "unittest", "discover", "-s", "tests", "-t", "."])
    # checkpatch.pl comes from the kernel tree: have it extracted first (on a
    # fresh machine nothing else has done so yet)
    try:
        src, _ = tree.resolve(args.ksrc, args.kver)
        tally.add(*_intree_step(src))
    except PipelineError as exc:
        tally.add("host: kernel tree for checkpatch", False, str(exc))
    _host_step(tally, "host: lint (checkpatch, clang-format, shellcheck)",
               ["bash", "scripts/lint.sh"])
    host_leg(tally, os.path.join(cache_dir(), "work"))
    for arch in args.arch:
        try:
            rec, kinfo, work, files, tests = guest_parts(args, arch)
        except PipelineError as exc:
            tally.add(f"{arch}: build", False, str(exc))
            continue
        rep = boot_once(args, rec, kinfo, work, files, tests, os.path.join(rd, arch))
        print(report.render(rep), flush=True)
        s = rep["ktap_summary"]
        ran = s["passed"] + s["failed"]
        tally.add(f"{arch}: selftests in the KCSAN guest", rep["boot"].passed
                  and s["failed"] == 0 and ran == len(tests) and not rep["log_problems"],
                  f"{rep['boot'].outcome}, {s['passed']} passed, {s['failed']} failed, "
                  f"{s['skipped']} skipped of {len(tests)}"
                  + "".join(f"; {p}" for p in rep["log_problems"]))
        tally.add(*_symbolize_step(arch, rep, rec, kinfo, work))
        tally.add(*_lava_validate_step(args, arch, rd))
        for which, where in PATCH_STEPS:
            if where == "every" or arch == args.arch[0]:
                tally.add(*_patch_loop_step(args, arch, rd, which))
        if arch != args.arch[0]:
            continue
        tally.add(*_bare_lab_step(args, arch, rec, kinfo, work, rd))
        for name, gcmd, want, want_status, tmo in RUNNER_CASES:
            sub = os.path.join(rd, arch, "runner-" + want)
            r = boot_once(args, rec, kinfo, work, {}, [], sub, cmd=gcmd, timeout=tmo)
            got = r["boot"]
            ok = got.outcome == want and (want_status is None or got.status == want_status)
            tally.add(f"{arch}: {name}", ok, f"got {got.outcome} ({got.reason})")
    print(f"artifacts: {rd}")
    return tally.close()
