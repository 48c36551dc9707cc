"""The A/B model of a compare: races by id over all workloads and guests,
what is gone in B, new in B or forbidden, and which titles a workload has."""

import collections


def _race_key(g):
    return g["id"] or g["title"]


def callouts(a, b):
    """Races (by expectation id, else title) across all workloads and jobs:
    in A and gone in B, new in B, and forbidden ones reported."""
    ra, rb = collections.Counter(), collections.Counter()
    for side, c in ((a, ra), (b, rb)):
        for g in side["titles"]:
            if g["scope"] == "io_uring":
                c[_race_key(g)] += g["count"]
    out = [("gone in B", k, ra[k], 0) for k in ra if k not in rb]
    out += [("NEW in B", k, 0, rb[k]) for k in rb if k not in ra]
    for label, side in (("A", a), ("B", b)):
        forbidden = collections.Counter()
        for g in side["titles"]:
            if g["verdict"] == "forbidden":
                forbidden[_race_key(g)] += g["count"]
        out += [(f"FORBIDDEN in {label}", k, n, n) for k, n in forbidden.items()]
    return out


def titles_in(ga, gb, wl):
    """Titles with a report in workload wl on either side, A's first."""
    return [t for t in list(ga) + [t for t in gb if t not in ga]
            if wl in (ga.get(t) or {}).get("by_workload", {})
            or wl in (gb.get(t) or {}).get("by_workload", {})]
