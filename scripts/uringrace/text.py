"""Terminal renderers of a compare and of the evidence: they only read the
model (storms.merge, compare.callouts), never compute it."""

import collections
import os
import statistics

from . import report
from .compare import callouts, titles_in
from .storms import STORMS


def callout_lines(calls):
    """callouts() as lines of text."""
    if not calls:
        return ["no io_uring race differs between A and B"]
    return [f"{what}: {key} (A {na}x, B {nb}x{'; ' + why if why else ''})"
            for what, key, na, nb, why in calls]


def _variant_key(r):
    return tuple(sorted((a["type"], a["reordered"], tuple(f"{f['fn']}+{f['off']}"
                                                          for f in a["stack"]))
                        for a in r["accesses"]))


def render_evidence(side):
    """Every io_uring report, grouped by title, identical stack pairs shown
    once with their count; both stacks with file:line. Other subsystems are
    counted and listed after."""
    out = [f"-- {side.arch} {side.tree}: io_uring KCSAN reports "
           f"(expectations: {os.path.basename(side.expect) if side.expect else 'none'})"]
    by_title = collections.OrderedDict()
    for r in side.reports:
        if report.scope(r) == "io_uring":
            by_title.setdefault(r["title"], []).append(r)
    if not by_title:
        out.append("   none")
    meta = {g["title"]: g for g in side.titles}
    for title, reps in by_title.items():
        g = meta[title]
        variants = collections.OrderedDict()
        for r in reps:
            variants.setdefault(_variant_key(r), []).append(r)
        tag = g["verdict"] + (f": {g['id']}" if g["id"] else "")
        out.append("")
        out.append(f"BUG: KCSAN: {title}   [{tag}]")
        out.append(f"   {len(reps)} report(s), first {g['first_s']} s after /init; "
                   f"{len(variants)} distinct stack pair(s); workloads: "
                   + ", ".join(f"{w} {v['count']}x" for w, v in g["by_workload"].items()))
        for vreps in variants.values():
            r = vreps[0]
            out.append(f"   -- {len(vreps)}x like this one (first at {r['time']} s, job {r['job']}):")
            for a in r["accesses"]:
                flags = "".join(f" ({f})" for f in ("marked", "reordered") if a[f])
                who = f"task {a['task']}" if a["task"] is not None else a["context"]
                out.append(f"   {a['type']}{flags} to {a['addr']} of {a['size']} bytes by {who} "
                           f"on cpu {a['cpu']}:")
                for f in a["stack"]:
                    mod = f" [{f['module']}]" if f.get("module") else ""
                    out.append(f"     {f['fn']}+{f['off']}/{f['len']}{mod}")
                    for w in f.get("where", []):
                        out.append(f"         {w}")
                if a.get("reordered_to"):
                    out.append(f"     +-> reordered to: {a['reordered_to']}")
            if r["value_change"]:
                out.append(f"   value changed: {r['value_change'][0]} -> {r['value_change'][1]}")
    others = [g for g in side.titles if g["scope"] == "other"]
    out.append("")
    out.append(f"-- other subsystems: {sum(g['count'] for g in others)} report(s), "
               f"{len(others)} title(s)")
    for g in others:
        out.append(f"   {g['count']:4}x  {g['title']}  (first {g['first_s']} s after /init)")
    return "\n".join(out)


def anomaly_text(w):
    total = collections.Counter()
    for c in w.get("anomalies", []):
        total.update(c)
    return ", ".join(f"{k} {v}" for k, v in sorted(total.items())) or "none"


def _fmt(w):
    if not w:
        return "-"
    return f"{w['count']}x @{w['first_s']}s" if w["first_s"] is not None else f"{w['count']}x"


def render_compare(a, b):
    out = [f"== {a.arch}: A = {a.tree} ({', '.join(o['outcome'] for o in a.outcomes)}), "
           f"B = {b.tree} ({', '.join(o['outcome'] for o in b.outcomes)}); "
           f"{a.jobs} guest(s) per tree, {a.seconds_per_storm} s per storm"]
    out.append(f"   {'workload':14} {'scope':10} {'verdict A/B':22} {'KCSAN title':68} "
               f"{'A (first after storm start)':>28} {'B':>14}")
    ga = {g["title"]: g for g in a.titles}
    gb = {g["title"]: g for g in b.titles}
    for wl, _ in STORMS:
        rows = titles_in(ga, gb, wl)
        if not rows:
            out.append(f"   {wl:14} {'':10} {'':22} {'(no KCSAN report)':68}")
        for t in rows:
            x, y = ga.get(t), gb.get(t)
            g = x or y
            verdict = f"{x['verdict'] if x else '-'}/{y['verdict'] if y else '-'}"
            out.append(f"   {wl:14} {g['scope']:10} {verdict:22} {t[:68]:68} "
                       f"{_fmt((x or {}).get('by_workload', {}).get(wl)):>28} "
                       f"{_fmt((y or {}).get('by_workload', {}).get(wl)):>14}")
    out.append("   throughput (ops/s per guest, median over guests) and anomalies (driver "
               "every counter the driver reports for the storm):")
    for wl, _ in STORMS:
        va, vb = a.workloads[wl]["ops_per_s"], b.workloads[wl]["ops_per_s"]
        ma = statistics.median(va) if va else None
        mb = statistics.median(vb) if vb else None
        ratio = f"  B/A {mb / ma:.2f}" if ma and mb else ""
        out.append(f"     {wl:14} A {ma if ma is not None else '-':>10}   "
                   f"B {mb if mb is not None else '-':>10}{ratio:11}  anomalies A "
                   f"{anomaly_text(a.workloads[wl])}, B {anomaly_text(b.workloads[wl])}")
    out.append("   races (by expectation id, else title; all workloads and guests):")
    out += [f"     <== {line}" for line in callout_lines(callouts(a, b))]
    return "\n".join(out)
