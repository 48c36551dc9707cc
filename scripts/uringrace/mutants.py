"""The mutant catalog (mutants/<major.minor>.txt): minimal changes to real
io_uring's ordering primitives, each with the protocol it breaks and the
storm that should catch it; the one reader of its format (see the file's
head) and the one writer of a mutant's patch."""

import dataclasses
import difflib
import os
import re

from .common import REPO, PipelineError

CLASSES = ("kcsan", "emulated", "not-observable")
# <id>-emulated is the emulated form of mutant <id>: the reordering <id>
# allows, performed at the source level (class emulated, for a mutant whose
# reordering KCSAN cannot model or this machine cannot show)
FORM_SUFFIX = "-emulated"
# a row names at most this many storms: its storm set stays within 60 s at
# the 30 s per storm the scores are measured with (issue 13's goal)
MAX_STORMS = 2


@dataclasses.dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    storms: tuple     # the storms.txt storms that should catch it
    breaks: str
    cls: str          # one of CLASSES
    reason: str       # why, for not-observable
    pairs: tuple      # ((line before, line after), ...)
    func: str = ""    # 'in NAME': the before lines are looked for in function NAME only


def path_for(version):
    """mutants/<major.minor>.txt of a kernel version, or None."""
    mm = ".".join((version or "").split(".")[:2])
    p = os.path.join(REPO, "mutants", f"{mm}.txt")
    return p if mm and os.path.isfile(p) else None


def load(path):
    out, cur, n = [], None, 0

    def bad(msg):
        raise PipelineError(f"{path}:{n}: {msg}")

    def close():
        if cur is None:
            return
        if not cur["pairs"] or cur.get("open"):
            bad(f"mutant {cur['id']}: want '-before' / '+after' line pairs")
        for key in ("breaks", "cls"):
            if key not in cur:
                bad(f"mutant {cur['id']}: no {key} line")
        out.append(Mutant(cur["id"], cur["file"], cur["storms"], cur["breaks"], cur["cls"],
                          cur.get("reason", ""), tuple(cur["pairs"]), cur.get("func", "")))

    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if line.startswith("#"):
                continue
            if not line.strip():
                close()
                cur = None
                continue
            word = line.split(None, 1)[0]
            if word == "mutant":
                close()
                w = line.split()
                if len(w) != 6 or w[2] != "file" or w[4] != "storm":
                    bad("want 'mutant ID file PATH storm NAME'")
                cur = {"id": w[1], "file": w[3], "storms": tuple(w[5].split(",")),
                       "pairs": []}
                if len(cur["storms"]) > MAX_STORMS:
                    bad(f"at most {MAX_STORMS} storms a mutant (a 60 s set at 30 s each)")
            elif cur is None:
                bad("a line outside a mutant block")
            elif word == "in" and len(line.split()) == 2:
                cur["func"] = line.split()[1]
            elif word == "breaks":
                cur["breaks"] = line.split(None, 1)[1]
            elif word == "class":
                cls, _, reason = line.split(None, 1)[1].partition(":")
                if cls.strip() not in CLASSES:
                    bad(f"class must be one of {', '.join(CLASSES)}")
                cur["cls"], cur["reason"] = cls.strip(), reason.strip()
            elif line.startswith("-") and not cur.get("open"):
                cur["open"] = line[1:]
            elif line.startswith("+") and cur.get("open") is not None:
                cur["pairs"].append((cur.pop("open"), line[1:]))
            else:
                bad("want a '-' line, then its '+' line")
    close()
    ids = [m.id for m in out]
    if len(ids) != len(set(ids)):
        raise PipelineError(f"{path}: a mutant id is used twice")
    for m in out:
        if is_form(m) and (form_of(m) not in ids or m.cls != "emulated"):
            raise PipelineError(f"{path}: {m.id}: an emulated form needs class emulated and "
                                f"its mutant {form_of(m)} in the catalog")
    return out


def is_form(m):
    return m.id.endswith(FORM_SUFFIX)


def form_of(m):
    """The id of the mutant an emulated form m is the form of."""
    return m.id[:-len(FORM_SUFFIX)]


def with_forms(ms):
    """[(mutant, its emulated form or None)] of a catalog's real mutants."""
    forms = {form_of(m): m for m in ms if is_form(m)}
    return [(m, forms.get(m.id)) for m in ms if not is_form(m)]


def _defines(line):
    """The function a C line starting a definition defines (its first name
    followed by '(', at column 0, no ';' at the end), or None."""
    d = re.match(r"[A-Za-z_][^;]*?\b([A-Za-z_]\w*)\(", line)
    return d.group(1) if d and not line.rstrip().endswith(";") else None


def apply(m, src):
    """The mutated text of m.file in tree src; every 'before' line must occur
    exactly once (else the row is stale for this tree)."""
    return _apply(m, src)[0]


def sites(m, src):
    """Where the mutant changed its file: {'FILE:LINE': the function that
    line is in}, 1-based lines of the mutated text (a catch must be there)."""
    text, hits = _apply(m, src)
    lines = text.split("\n")
    out = {}
    for i in hits:
        out[f"{m.file}:{i + 1}"] = next(filter(None, map(_defines, reversed(lines[:i + 1]))),
                                        "")
    return out


def _apply(m, src):
    path = os.path.join(src, m.file)
    if not os.path.isfile(path):
        raise PipelineError(f"mutant {m.id}: {m.file} is not in {src}")
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    lo, hi, where = 0, len(lines), m.file
    if m.func:
        # a definition starts at column 0 and its body ends at the first '}' there
        starts = [i for i, ln in enumerate(lines) if _defines(ln) == m.func]
        if len(starts) != 1:
            raise PipelineError(f"mutant {m.id}: function {m.func} is defined {len(starts)} "
                                f"times in {m.file}, not once")
        lo = starts[0]
        hi = next((i for i in range(lo, len(lines)) if lines[i] == "}"), len(lines))
        where = f"{m.func}() of {m.file}"
    done = []
    for before, after in m.pairs:
        hits = [i for i in range(lo, hi) if lines[i] == before]
        if len(hits) != 1:
            raise PipelineError(f"mutant {m.id}: '{before.strip()}' occurs {len(hits)} times "
                                f"in {where}, not once")
        lines[hits[0]] = after
        done.append(hits[0])
    return "\n".join(lines), done


def write_patch(m, src, outdir):
    """A -p1 patch of the mutant against tree src, written into outdir."""
    with open(os.path.join(src, m.file), encoding="utf-8") as f:
        old = f.read()
    diff = difflib.unified_diff(old.splitlines(True), apply(m, src).splitlines(True),
                                f"a/{m.file}", f"b/{m.file}")
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, f"{m.id}.patch")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(diff)
    return path
