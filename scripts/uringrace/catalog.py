"""What the project's data files say, each read by one function: the
scenario, variant, mode and anomaly lists of the UAPI header, the expected
verdicts (selftests/verdicts.txt) and the real-io_uring storms
(selftests/storms.txt)."""

import functools
import os
import re

from .common import REPO, PipelineError, table_rows

LIST = os.path.join(REPO, "include", "uapi", "linux", "uringrace_list.h")
VERDICTS = os.path.join(REPO, "selftests", "verdicts.txt")
STORMS = os.path.join(REPO, "selftests", "storms.txt")

# list name -> (macro, first number); numbers follow the order in the file
LISTS = {"SCENARIOS": ("URINGRACE_SCENARIO", 1), "VARIANTS": ("URINGRACE_VARIANT", 0),
         "MODES": ("URINGRACE_MODE", 0), "ANOMALIES": ("URINGRACE_ANOMALY", 0)}


def _split_args(args):
    """A macro call's arguments: split on commas outside quotes."""
    parts, cur, quoted = [], "", False
    for ch in args:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return parts + [cur.strip()]


@functools.lru_cache(maxsize=None)
def uapi_lists(path=LIST):
    """{'SCENARIOS': [{'ID', 'name', 'id', 'what', ...}], 'VARIANTS': [...],
    ...} from uringrace_list.h, in its order (the numbers the enums give)."""
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    out = {}
    for lst, (macro, first) in LISTS.items():
        rows = []
        for m in re.finditer(r"^%s\((.*?)\)\s*$" % macro, text, re.M | re.S):
            parts = _split_args(m.group(1).replace("\n", " "))
            row = {"ID": parts[0], "name": parts[1], "id": first + len(rows),
                   "what": re.sub(r"\s+", " ", parts[-1]).strip('"')}
            if lst == "SCENARIOS":
                if len(parts) != 5:
                    raise PipelineError(f"{path}: {macro}({m.group(1)}): want 5 arguments")
                row["modes"] = re.findall(r"URINGRACE_MODES_BIT\((\w+)\)", parts[2])
                row["anomaly"] = parts[3]
            elif len(parts) != 3:
                raise PipelineError(f"{path}: {macro}({m.group(1)}): want 3 arguments")
            rows.append(row)
        if not rows:
            raise PipelineError(f"{path}: no {macro}(...) line")
        out[lst] = rows
    return out


def scenario_names():
    return [s["name"] for s in uapi_lists()["SCENARIOS"]]


@functools.lru_cache(maxsize=None)
def verdicts(path=VERDICTS):
    """Rows of verdicts.txt as dicts: scenario, variant, mode, arch, accel,
    expect, detector, seconds (first matching row wins, as in the guest)."""
    keys = ("scenario", "variant", "mode", "arch", "accel", "expect", "detector", "seconds")
    rows = []
    for n, line in table_rows(path):
        if len(line) != len(keys) or not line[7].isdigit():
            raise PipelineError(f"{path}:{n}: want 8 columns ({' '.join(keys)})")
        row = dict(zip(keys, line))
        row["seconds"] = int(row["seconds"])
        rows.append(row)
    return rows


def verdict_for(scenario, variant, mode, arch, accel, rows=None):
    for r in rows if rows is not None else verdicts():
        if (r["scenario"], r["variant"], r["mode"]) == (scenario, variant, mode) \
                and r["arch"] in ("*", arch) and r["accel"] in ("*", accel):
            return r
    return None


STORM_EXPECT = ("clean", "anomaly")


@functools.lru_cache(maxsize=None)
def storms(path=STORMS):
    """[{'name', 'sets', 'expect', 'args'}] from storms.txt, in its order."""
    rows = []
    for n, line in table_rows(path):
        if len(line) < 4 or line[2] not in STORM_EXPECT:
            raise PipelineError(f"{path}:{n}: want 'name sets {'|'.join(STORM_EXPECT)} "
                                "driver-arguments...'")
        rows.append({"name": line[0], "sets": line[1].split(","), "expect": line[2],
                     "args": " ".join(line[3:])})
    return rows


def storm_set(name):
    """(storm name, driver arguments) of one set ('check', 'compare')."""
    return tuple((s["name"], s["args"]) for s in storms() if name in s["sets"])
