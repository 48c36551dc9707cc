"""Stacks of KCSAN reports to file:line with the tree's own scripts/faddr2line,
the build's vmlinux and the module, so a reviewer reads the lines that raced.

Every distinct frame is resolved once per object, all of an object's frames
in one faddr2line call (it reads the symbol table once per call)."""

import os
import re
import subprocess

from .common import log

HEAD_RE = re.compile(r"^(?P<frame>\S+\+0x[0-9a-f]+/0x[0-9a-f]+):$")
LINE_RE = re.compile(r"^(?P<inl>\(inlined by\) )?(?P<fn>\S+) at (?P<loc>\S+)(?: \(discriminator \d+\))?")
CHUNK = 200


def _frames(reports):
    for r in reports:
        for a in r["accesses"]:
            yield from a["stack"]


def _key(frame):
    """The frame as KCSAN printed it and faddr2line takes it: fn+off/len."""
    return f"{frame['fn']}+{frame['off']}/{frame['len']}"


def _object(frame, vmlinux, modules):
    mod = frame.get("module")
    return modules.get(mod) if mod else vmlinux


def _shorten(loc, roots):
    for root in roots:
        if root and loc.startswith(root.rstrip("/") + "/"):
            return loc[len(root.rstrip("/")) + 1:]
    return loc


def resolve(script, obj, frames, cross="", roots=()):
    """{'fn+off/len': ['file:line (fn)', '(inlined by) file:line (fn)', ...]}"""
    out = {}
    frames = sorted(frames)
    env = {**os.environ, "CROSS_COMPILE": cross}
    for i in range(0, len(frames), CHUNK):
        try:
            res = subprocess.run(["bash", script, obj] + frames[i:i + CHUNK], env=env,
                                 capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            log(f"faddr2line on {obj}: timed out; stacks left as symbols")
            return out
        cur = None
        for line in res.stdout.splitlines():
            m = HEAD_RE.match(line.strip())
            if m:
                cur = out.setdefault(m.group("frame"), [])
                continue
            m = LINE_RE.match(line.strip())
            if m and cur is not None:
                loc = _shorten(m.group("loc"), roots)
                cur.append(f"{'(inlined by) ' if m.group('inl') else ''}{loc} ({m.group('fn')})")
    return out


def symbolize(reports, kinfo, rec, modules=None):
    """Add a 'where' list to every frame of these reports that faddr2line
    could place; return how many distinct frames were resolved."""
    src = kinfo.src
    script = os.path.join(src or "", "scripts", "faddr2line")
    vmlinux = os.path.join(kinfo.objdir or "", "vmlinux")
    modules = modules or {}
    if not (src and os.path.isfile(script) and os.path.isfile(vmlinux)):
        log("no faddr2line or vmlinux for this build: stacks left as symbols")
        return 0
    wanted = {}
    for fr in _frames(reports):
        obj = _object(fr, vmlinux, modules)
        if obj and os.path.isfile(obj):
            wanted.setdefault(obj, set()).add(_key(fr))
    roots = [src, kinfo.objdir] + [os.path.dirname(os.path.dirname(m))
                                            for m in modules.values()]
    resolved = {obj: resolve(script, obj, frames, rec.cross_compile, roots)
                for obj, frames in wanted.items()}
    for fr in _frames(reports):
        where = resolved.get(_object(fr, vmlinux, modules), {}).get(_key(fr))
        if where:
            fr["where"] = where
    return sum(1 for v in resolved.values() for w in v.values() if w)
