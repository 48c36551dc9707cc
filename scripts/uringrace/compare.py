"""The A/B model of a compare: races by id over all workloads and guests,
what is gone in B, new in B or forbidden, and which titles a workload has.

A difference is called only when both trees did comparable work in the
storms where the race showed (each side's operations per second above 0 and
within OPS_FACTOR of the other's; else "not comparable"), and only when the
side that has the race has at least MIN_REPORTS reports of it (else "too few
to call": a race seen once may simply not have come up in the other run;
RUNS or JOBS give more reports). Forbidden races are always called out."""

import collections
import statistics

from . import expect
from .storms import anomalies, missing_work

MIN_REPORTS = 3
OPS_FACTOR = 4.0


def _race_key(g):
    return g["id"] or g["title"]


def _races(side):
    """{race: (reports, workloads it showed in)} of io_uring reports."""
    n, where = collections.Counter(), collections.defaultdict(set)
    for g in side.titles:
        if g["scope"] == "io_uring":
            n[_race_key(g)] += g["count"]
            where[_race_key(g)] |= set(g["by_workload"])
    return {k: (n[k], where[k]) for k in n}


def comparable(a, b, wl):
    """'' when both sides did comparable work in storm wl, else why not."""
    rates = []
    for label, side in (("A", a), ("B", b)):
        ops = side.workloads.get(wl, {}).get("ops_per_s") or []
        if not ops or not all(ops):
            return f"{label} did no work in {wl}"
        rates.append(statistics.median(ops))
    ratio = max(rates) / min(rates)
    return "" if ratio <= OPS_FACTOR else f"{wl} ran {ratio:.1f}x faster on one side"


def callouts(a, b):
    """[(what, race, A reports, B reports, why)]: 'gone in B', 'NEW in B',
    'not comparable', 'too few to call', 'FORBIDDEN in A/B'."""
    ra, rb = _races(a), _races(b)
    out = []
    for k in list(ra) + [k for k in rb if k not in ra]:
        (na, wa), (nb, wb) = ra.get(k, (0, set())), rb.get(k, (0, set()))
        if na and nb:
            continue
        what = "gone in B" if na else "NEW in B"
        why = "; ".join(filter(None, (comparable(a, b, wl) for wl in sorted(wa | wb))))
        if why:
            what = "not comparable"
        elif max(na, nb) < MIN_REPORTS:
            what, why = "too few to call", f"fewer than {MIN_REPORTS} reports"
        out.append((what, k, na, nb, why))
    for label, side in (("A", a), ("B", b)):
        forbidden = collections.Counter()
        for g in side.titles:
            if g["verdict"] == "forbidden":
                forbidden[_race_key(g)] += g["count"]
        out += [(f"FORBIDDEN in {label}", k, ra.get(k, (0,))[0], rb.get(k, (0,))[0], "")
                for k in forbidden]
    return out + anomaly_callouts(a, b)


def anomaly_callouts(a, b):
    """[(what, storm, A anomalies, B anomalies, why)] where a side's storm
    counted otherwise than its tree's expectation (storms.txt, or the tree's
    own 'storm' row): 'ANOMALIES in A/B' where it must be clean (a failure,
    as a forbidden race is), 'known anomaly gone in A/B' where the tree's
    known bug did not show (a fix, or a storm too short to show it). A side
    that did no work in the storm is missing work, reported apart."""
    out = []
    sides = {"A": a, "B": b}
    wants = {k: expect.storm_expectations(s.expect) for k, s in sides.items()}
    idle = {k: set(missing_work(s)) for k, s in sides.items()}
    for wl in a.workloads:
        counts = {k: anomalies(s, [wl]) for k, s in sides.items()}
        for label, side in sides.items():
            if wl in idle[label] or wl not in side.workloads:
                continue
            want = wants[label].get(wl)
            if want == "clean" and counts[label]:
                out.append((f"ANOMALIES in {label}", wl, counts["A"], counts["B"], ""))
            elif want == "anomaly" and not counts[label]:
                out.append((f"known anomaly gone in {label}", wl, counts["A"], counts["B"],
                            "the tree's expectations say this storm shows a bug"))
    return out


def titles_in(ga, gb, wl):
    """Titles with a report in workload wl on either side, A's first."""
    return [t for t in list(ga) + [t for t in gb if t not in ga]
            if wl in (ga.get(t) or {}).get("by_workload", {})
            or wl in (gb.get(t) or {}).get("by_workload", {})]
