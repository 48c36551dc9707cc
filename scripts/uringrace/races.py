"""The host's one matcher of KCSAN reports: race signatures against the
accesses that parse.parse_console found (function and module of each
access's top frame, type, size, marked, reordered).

The grammar and the rules are those of selftests/kcsan_match.h, the guest's
matcher; tests/test_races.py runs both on saved console logs and requires the
same answer for every report.

    race  := side | side "/" side
    side  := funcs [":" type [":" attr ("," attr)*]]
    funcs := fn ("|" fn)*
    type  := read | write | read-write | any
    attr  := plain | marked | reordered | size=N
"""

import re

TYPES = ("read", "write", "read-write", "any")


def parse_side(text):
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise ValueError(f"bad race side '{text}'")
    side = {"funcs": set(parts[0].split("|")), "type": "any", "plain": False,
            "marked": False, "reordered": False, "size": None}
    if len(parts) > 1:
        if parts[1] not in TYPES:
            raise ValueError(f"bad access type '{parts[1]}' in '{text}'")
        side["type"] = parts[1]
    for attr in (parts[2].split(",") if len(parts) > 2 else ()):
        m = re.fullmatch(r"size=([1-9]\d*)", attr)
        if m:
            side["size"] = int(m.group(1))
        elif attr in ("plain", "marked", "reordered"):
            side[attr] = True
        else:
            raise ValueError(f"bad attribute '{attr}' in '{text}'")
    if side["plain"] and side["marked"]:
        raise ValueError(f"'{text}': plain and marked at once")
    return side


def parse_race(text):
    """[side] or [side, side]; ValueError when the text does not parse."""
    halves = text.split("/")
    if len(halves) > 2:
        raise ValueError(f"bad race '{text}': more than two sides")
    return [parse_side(h) for h in halves]


def top_function(access):
    return access["stack"][0]["fn"] if access["stack"] else ""


def _side_ok(access, side):
    return (top_function(access) in side["funcs"]
            and side["type"] in ("any", access["type"])
            and not (side["plain"] and access["marked"])
            and not (side["marked"] and not access["marked"])
            and not (side["reordered"] and not access["reordered"])
            and side["size"] in (None, access["size"]))


def match(report, race):
    """Does a parsed report match a race signature (text or parse_race's)?"""
    sides = parse_race(race) if isinstance(race, str) else race
    acc = report["accesses"][:2]
    if not acc or not all(top_function(a) for a in acc):
        return False
    if len(sides) == 1:
        return all(_side_ok(a, sides[0]) for a in acc)
    if len(acc) != 2:
        return False
    return ((_side_ok(acc[0], sides[0]) and _side_ok(acc[1], sides[1]))
            or (_side_ok(acc[1], sides[0]) and _side_ok(acc[0], sides[1])))


def in_module(report, module):
    """Does an access's top frame lie in that module ('uringrace')?"""
    return any(a["stack"] and a["stack"][0].get("module") == module
               for a in report["accesses"])
