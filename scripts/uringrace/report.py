"""Step 8: turn one guest run into a summary a reviewer can paste, and JSON."""

import collections
import json
import os

from . import parse, races, records


def scope(rep):
    """Where a report belongs: 'uringrace' (the module's scenarios),
    'io_uring' (a racing function, as the title names it, is io_uring or
    io-wq code, the io_uring_* syscalls included), or 'other' (other subsystems, reached from io_uring paths or
    not: counted and listed apart)."""
    if races.in_module(rep, "uringrace"):
        return "uringrace"
    fns = [races.top_function(a) for a in rep["accesses"]] or rep["functions"]
    if any(n.startswith(("io_", "__io_")) or "io_uring" in n for n in fns):
        return "io_uring"
    return "other"


def kcsan_groups(reports):
    """Group reports by title: count, first time, tests charged."""
    groups = collections.OrderedDict()
    for r in reports:
        g = groups.setdefault(r["title"], {"title": r["title"], "scope": scope(r),
                                           "count": 0, "first": r["time"],
                                           "tests": collections.Counter(),
                                           "reordered": False, "unknown_origin": False})
        g["count"] += 1
        g["tests"][r["test"]] += 1
        g["reordered"] |= any(a["reordered"] for a in r["accesses"])
        g["unknown_origin"] |= r["unknown_origin"]
    for g in groups.values():
        g["tests"] = dict(g["tests"])
    return list(groups.values())


def log_problems(con, tree):
    """What fails the run beyond the tests' own results: a BUG, WARNING,
    lockdep or hung-task line charged to a test (as liburing's runner fails
    a test on them); lines the kernel dropped; or a test with a result but no
    start marker (its reports would be charged to the test before it)."""
    out = [f"{p['test']}: {p['line']}" for p in con["problems"] if p["test"] != "boot"]
    if con["dropped"]:
        out.append(f"the kernel dropped {con['dropped']} console line(s): reports may be lost")
    marked = {t["name"] for t in con["tests"]}
    if tree["subtests"] and not marked:
        out.append("no test-start marker in the console: no report can be charged to a test")
    elif "cmd" not in marked:  # a CMD= run marks the command, not its results
        for r in tree["subtests"]:
            name = r["name"].rsplit(": ", 1)[-1]
            if r["directive"] != "SKIP" and name not in marked:
                out.append(f"no start marker for '{name}' in the console: its reports "
                           "cannot be charged to it")
            # every test prints KTAP of its own; a pass without any is a
            # pass without its evidence (once, the runner's output was lost)
            if r["ok"] and r["directive"] != "SKIP" and not r["subtests"]:
                out.append(f"'{name}' passed but none of its own results arrived")
    return out


def build(outdir, boot_res, kinfo):
    console = open(os.path.join(outdir, "console.log"), encoding="utf-8",
                   errors="replace").read()
    kpath = os.path.join(outdir, "ktap.txt")
    ktap_text = open(kpath, encoding="utf-8", errors="replace").read() \
        if os.path.exists(kpath) else ""
    con = parse.parse_console(console)
    tree = parse.parse_ktap(ktap_text)
    rep = {"arch": boot_res.arch, "kernel": {k: getattr(kinfo, k) for k in
                                              ("identity", "version", "objdir", "key")},
           "boot": boot_res, "ktap": tree, "ktap_summary": parse.ktap_summary(tree),
           "tests": con["tests"], "subtests": con["subtests"], "init_time": con["init_time"],
           "log_problems": log_problems(con, tree),
           "kcsan": {"boot_noise": kcsan_groups([r for r in con["reports"]
                                                  if r["test"] == "boot"]),
                     "during_tests": kcsan_groups([r for r in con["reports"]
                                                    if r["test"] != "boot"])},
           "reports": con["reports"]}
    with open(os.path.join(outdir, "report.json"), "w", encoding="utf-8") as f:
        json.dump(rep, f, indent=1, default=records.to_json)
    return rep


def render(rep):
    b = rep["boot"]
    k = rep["kernel"]
    out = [f"== {rep['arch']}: linux {k.get('version')} ({k.get('identity')}), "
           f"{b.accel}, {b.smp} vCPUs: {str(b.outcome).upper()} ({b.reason})",
           f"   QEMU start to /init: {b.to_init_s} s; whole guest run {b.seconds} s"]
    for r in rep["ktap"]["subtests"]:
        verdict = "SKIP" if r["directive"] == "SKIP" else ("ok" if r["ok"] else "FAIL")
        extra = f" # {r['directive']} {r['reason'] or ''}".rstrip() if r["directive"] else ""
        out.append(f"   {verdict:5} {r['name']}{extra}")
        for s in r["subtests"]:
            sv = "SKIP" if s["directive"] == "SKIP" else ("ok" if s["ok"] else "FAIL")
            out.append(f"         {sv:5} {s['name']}")
    for p in rep.get("log_problems", []):
        out.append(f"   FAIL  kernel log: {p}")
    s = rep["ktap_summary"]
    if s["missing"]:
        out.append(f"   {s['missing']} planned test(s) never reported a result")
    for label, key in (("KCSAN during tests", "during_tests"), ("KCSAN boot noise", "boot_noise")):
        groups = rep["kcsan"][key]
        if not groups:
            out.append(f"   {label}: none")
            continue
        out.append(f"   {label}: {sum(g['count'] for g in groups)} report(s), "
                   f"{len(groups)} title(s)")
        for g in groups:
            tags = [t for t, on in (("reordered", g["reordered"]),
                                    ("unknown origin", g["unknown_origin"])) if on]
            where = ", ".join(f"{t}:{n}" for t, n in g["tests"].items())
            out.append(f"     {g['count']:4}x  [{g['scope']}] {g['title']}"
                       f"{'  [' + ', '.join(tags) + ']' if tags else ''}  (first at "
                       f"{g['first']} s; {where})")
    return "\n".join(out)
