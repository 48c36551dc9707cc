"""Step 7: parse a guest console log and its KTAP stream.

KCSAN reports are split into title, accesses (type, size, marked, reordered,
task/interrupt, CPU, stack), value change and reporting task; each is charged to
the test whose start marker came last before it, or to boot noise."""

import re

TS_RE = re.compile(r"^\[\s*(\d+\.\d+)\]\s?(?:\[\s*[CT]\d+\]\s?)?")
RULE = "=" * 66
TITLE_RE = re.compile(r"^BUG: KCSAN: (.*)$")
ACCESS_RE = re.compile(
    r"^(?P<unknown>race at unknown origin, with )?"
    r"(?P<type>read-write|read|write|assert no accesses|assert no writes)"
    r"(?P<flags>(?: \((?:marked|reordered|scoped)\))*)"
    r" to (?P<addr>0x[0-9a-f]+) of (?P<size>\d+) bytes by "
    r"(?:task (?P<pid>\d+)|(?P<irq>interrupt|hardirq|softirq))"
    r" on cpu (?P<cpu>\d+):$")
FRAME_RE = re.compile(r"^\s*(?P<fn>[A-Za-z_.$][\w.$]*)\+(?P<off>0x[0-9a-f]+)/(?P<len>0x[0-9a-f]+)"
                      r"(?: \[(?P<mod>[\w-]+)\])?")
REORDERED_RE = re.compile(r"^\s*\+-> reordered to: (?P<fn>[\w.$]+)\+(?P<off>0x[0-9a-f]+)")
VALUE_RE = re.compile(r"^value changed: (0x[0-9a-f]+) -> (0x[0-9a-f]+)")
CPU_RE = re.compile(r"^CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (\S+)")
START_RE = re.compile(r"uringrace: test-start (\d+) (\S+)")
SUB_RE = re.compile(r"uringrace: subtest-start (\S+)")
END_RE = re.compile(r"uringrace: test-end (\d+) (\S+) rc=(-?\d+)")
INIT_RE = re.compile(r"uringrace: init started")
DROPPED_RE = re.compile(r"\*\* (\d+) printk messages dropped \*\*")
# what liburing's runner fails a test on, KCSAN's own reports aside
KERNEL_PROBLEM_RE = re.compile(r"^(BUG: (?!KCSAN: ).*|WARNING: .*|"
                               r"WARNING: possible (?:circular|recursive) locking.*|"
                               r"WARNING: inconsistent lock state.*|"
                               r"INFO: task .* blocked for more than.*)")


def strip(line):
    m = TS_RE.match(line)
    if m:
        return float(m.group(1)), line[m.end():].rstrip("\r\n")
    return None, line.rstrip("\r\n")


def outside_reports(text):
    """text without its KCSAN reports (each from its title line to the
    closing rule, as parse_console reads them)."""
    keep, inside = [], False
    for raw in text.splitlines(keepends=True):
        line = strip(raw)[1]
        if TITLE_RE.match(line):
            inside = True
        elif inside and line.startswith(RULE):
            inside = False
        elif not inside:
            keep.append(raw)
    return "".join(keep)


def _new_report(title, ts, where):
    bare = re.sub(r"\+0x[0-9a-f]+/0x[0-9a-f]+", "", re.sub(r" \[[\w-]+\]", "", title))
    funcs = [f.strip() for f in re.sub(r"^(data-race|assert: race) in ", "", bare).split(" / ")]
    return {"title": title, "kind": title.split(" in ", 1)[0], "functions": funcs,
            "time": ts, "test": where, "accesses": [], "value_change": None,
            "reporter": None, "unknown_origin": False, "lines": []}


def parse_console(text):
    """Return {'reports': [...], 'tests': [...], 'subtests': [{name, start}],
    'init_time': float|None, 'last_time': float|None, 'dropped': int (console
    lines the kernel dropped: reports may be missing), 'problems': [{test,
    line}] (BUG, WARNING, lockdep, hung task lines, each charged to the test
    that was running)}."""
    reports, tests, subtests = [], [], []
    current = "boot"
    rep = None
    access = None
    init_time = None
    last_ts = None
    dropped = 0
    problems = []
    for raw in text.splitlines():
        ts, line = strip(raw)
        if ts is not None:
            last_ts = ts
        m = DROPPED_RE.search(line)
        if m:
            dropped += int(m.group(1))
        if INIT_RE.search(line) and init_time is None:
            init_time = ts
        # a marker is another CPU's printk: it may land inside a report's
        # block (its report keeps the test it began in)
        m = START_RE.search(line)
        if m:
            current = m.group(2)
            tests.append({"n": int(m.group(1)), "name": current, "start": ts,
                          "end": None, "rc": None})
            continue
        m = SUB_RE.search(line)
        if m and tests:
            current = tests[-1]["name"] + "/" + m.group(1)
            subtests.append({"name": current, "start": ts})
            continue
        m = END_RE.search(line)
        if m:
            for t in tests:
                if t["name"] == m.group(2) and t["end"] is None:
                    t["end"], t["rc"] = ts, int(m.group(3))
            current = "between-tests"
            continue
        m = KERNEL_PROBLEM_RE.match(line)
        if m and rep is None and not TITLE_RE.match(line):
            problems.append({"test": current, "line": line.strip(), "time": ts})
        m = TITLE_RE.match(line)
        if m:
            rep = _new_report(m.group(1), ts, current)
            reports.append(rep)
            access = None
            rep["lines"].append(line)
            continue
        if rep is None:
            continue
        if line.startswith(RULE):
            rep = None
            continue
        rep["lines"].append(line)
        m = ACCESS_RE.match(line)
        if m:
            flags = m.group("flags") or ""
            access = {"type": m.group("type"), "size": int(m.group("size")),
                      "addr": m.group("addr"), "marked": "(marked)" in flags,
                      "reordered": "(reordered)" in flags, "scoped": "(scoped)" in flags,
                      "task": int(m.group("pid")) if m.group("pid") else None,
                      "context": m.group("irq") or "task", "cpu": int(m.group("cpu")),
                      "stack": [], "reordered_to": None}
            if m.group("unknown"):
                rep["unknown_origin"] = True
            rep["accesses"].append(access)
            continue
        m = REORDERED_RE.match(line)
        if m and access is not None:
            access["reordered_to"] = m.group("fn") + "+" + m.group("off")
            continue
        m = FRAME_RE.match(line)
        if m and access is not None and line.startswith(" "):
            access["stack"].append({"fn": m.group("fn"), "off": m.group("off"),
                                    "len": m.group("len"), "module": m.group("mod")})
            continue
        m = VALUE_RE.match(line)
        if m:
            rep["value_change"] = [m.group(1), m.group(2)]
            continue
        m = CPU_RE.match(line)
        if m:
            rep["reporter"] = {"cpu": int(m.group(1)), "pid": int(m.group(2)),
                               "comm": m.group(3)}
            access = None
    return {"reports": reports, "tests": tests, "subtests": subtests,
            "init_time": init_time, "last_time": last_ts, "dropped": dropped,
            "problems": problems}


KTAP_RESULT_RE = re.compile(r"^(not ok|ok) (\d+)(?: -)? ?([^#]*?)\s*(?:# (\S+)(?: (.*))?)?$")


def parse_ktap(text):
    """Parse (nested) KTAP/TAP into {'plan', 'subtests': [result...]}, where a
    result is {'n','name','ok','directive','reason','subtests'}. A nested block
    (indented) comes before the result line of its parent, as kselftest and
    KUnit print it."""
    pending = {}
    plans = {}
    for raw in text.splitlines():
        if not raw.strip():
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        if re.fullmatch(r"1\.\.\d+", line):
            plans.setdefault(indent, int(line[3:]))
            continue
        m = KTAP_RESULT_RE.match(line)
        if not m:
            continue
        res = {"n": int(m.group(2)), "name": m.group(3).strip(), "ok": m.group(1) == "ok",
               "directive": (m.group(4) or "").upper() or None,
               "reason": m.group(5), "subtests": []}
        deeper = sorted(d for d in pending if d > indent and pending[d])
        if deeper:
            res["subtests"] = pending[deeper[0]]
            for d in deeper:
                pending[d] = []
        pending.setdefault(indent, []).append(res)
    top = min((d for d in pending if pending[d]), default=0)
    return {"plan": plans.get(top), "subtests": pending.get(top, [])}


def ktap_summary(tree):
    """Count top-level results: passed, failed, skipped, and whether the plan
    was met (a missing result is a failure)."""
    passed = sum(1 for r in tree["subtests"] if r["ok"] and r["directive"] != "SKIP")
    skipped = sum(1 for r in tree["subtests"] if r["directive"] == "SKIP")
    failed = sum(1 for r in tree["subtests"] if not r["ok"])
    missing = max(0, (tree["plan"] or 0) - len(tree["subtests"]))
    return {"passed": passed, "failed": failed + missing, "skipped": skipped,
            "missing": missing}
