"""Stacks of KCSAN reports to file:line, so a reviewer reads the lines that
raced: vmlinux's frames with one nm and one addr2line call for all of them
(the tree's scripts/faddr2line, a shell loop over the symbol table, took a
minute for a storm's few hundred frames), the module's with faddr2line
(a relocatable object; few frames).

Every distinct frame is resolved once per object."""

import os
import re
import subprocess

from .common import log

# a frame as KCSAN prints it: fn+0xOFF/0xLEN
FRAME_RE = re.compile(r"^(?P<fn>[^+]+)\+0x(?P<off>[0-9a-f]+)/0x(?P<len>[0-9a-f]+)$")
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


def _call_off(off):
    """Where a frame's line is: a stack holds return addresses (KCSAN's top
    frame too, its runtime's), the instruction after the call, which the
    compiler may have placed on the next source line; one byte back is the
    call itself (as the kernel's %pB does). Measured: the plain cancel mark
    at io-wq.c:1084 returned to an instruction of line 1085."""
    return off - 1 if off > 0 else off


def _object(frame, vmlinux, modules):
    mod = frame.get("module")
    return modules.get(mod) if mod else vmlinux


def _shorten(loc, roots):
    for root in roots:
        if root and loc.startswith(root.rstrip("/") + "/"):
            return loc[len(root.rstrip("/")) + 1:]
    return loc


def _entry(m, roots):
    """One 'where' entry from a LINE_RE match of addr2line's pretty output."""
    return (f"{'(inlined by) ' if m.group('inl') else ''}{_shorten(m.group('loc'), roots)} "
            f"({m.group('fn')})")


def resolve(script, obj, frames, cross="", roots=()):
    """{'fn+off/len': ['file:line (fn)', '(inlined by) file:line (fn)', ...]}"""
    out = {}
    back = {}  # the frame faddr2line is asked for (at its call) -> the frame
    for f in frames:
        m = FRAME_RE.match(f)
        back[f"{m.group('fn')}+{hex(_call_off(int(m.group('off'), 16)))}/0x{m.group('len')}"
             if m else f] = f
    asked = sorted(back)
    env = {**os.environ, "CROSS_COMPILE": cross}
    for i in range(0, len(asked), CHUNK):
        try:
            res = subprocess.run(["bash", script, obj] + asked[i:i + CHUNK], env=env,
                                 capture_output=True, text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            log(f"faddr2line on {obj}: timed out; stacks left as symbols")
            return out
        cur = None
        for line in res.stdout.splitlines():
            m = HEAD_RE.match(line.strip())
            if m:
                cur = out.setdefault(back.get(m.group("frame"), m.group("frame")), [])
                continue
            m = LINE_RE.match(line.strip())
            if m and cur is not None:
                cur.append(_entry(m, roots))
    return out


def _parse_pretty(lines, out, keys, roots):
    """addr2line --addresses --functions --pretty-print --inlines output:
    '0xADDR: fn at loc' opens an address, '(inlined by) fn at loc' adds to
    it; each address's lines go to every frame key that maps to it."""
    cur = None
    for line in lines:
        line = line.strip()
        m = re.match(r"^0x0*([0-9a-f]+): (.*)$", line)
        if m:
            cur = [out.setdefault(k, []) for k in keys.get(int(m.group(1), 16), ())]
            line = m.group(2)
        m = LINE_RE.match(line)
        if m and cur is not None and "??" not in m.group("loc"):
            for lst in cur:
                lst.append(_entry(m, roots))


def resolve_vmlinux(obj, frames, cross="", roots=()):
    """As resolve(), for a linked image: the symbols of each 'fn+off/len'
    (name and size, as faddr2line matches them) from one nm, then every
    address through one addr2line."""
    want = {}
    for f in frames:
        m = FRAME_RE.match(f)
        if m:
            want.setdefault(m.group("fn"), []).append((f, int(m.group("off"), 16),
                                                       int(m.group("len"), 16)))
    try:
        nm = subprocess.run([cross + "nm", "--defined-only", "-n", "-S", obj],
                            capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(f"nm on {obj}: {exc}; stacks left as symbols")
        return {}
    # code symbols in address order, without mapping symbols; a symbol's
    # size as kallsyms prints it is the distance to the next symbol at or
    # past its end (faddr2line's rule)
    syms = []
    for line in nm.stdout.splitlines():
        w = line.split()
        if len(w) in (3, 4) and w[-2] in "tTwW" and not re.match(r"\.L|L0|\$", w[-1]):
            syms.append((int(w[0], 16), int(w[1], 16) if len(w) == 4 else 0, w[-1]))
    keys = {}
    for i, (addr, elf_size, name) in enumerate(syms):
        if name not in want:
            continue
        j = i + 1
        while j < len(syms) and syms[j][0] - addr < max(elf_size, 1):
            j += 1
        if j == len(syms):
            continue
        for key, off, ln in want[name]:
            if syms[j][0] - addr == ln and off <= ln:
                keys.setdefault(addr + _call_off(off), []).append(key)
    if not keys:
        return {}
    try:
        res = subprocess.run([cross + "addr2line", "--addresses", "--functions",
                              "--pretty-print", "--inlines", "--exe", obj]
                             + [hex(a) for a in sorted(keys)], capture_output=True, text=True,
                             timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(f"addr2line on {obj}: {exc}; stacks left as symbols")
        return {}
    out = {}
    _parse_pretty(res.stdout.splitlines(), out, keys, roots)
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
    resolved = {}
    for obj, frames in wanted.items():
        got = resolve_vmlinux(obj, frames, rec.cross_compile, roots) if obj == vmlinux else {}
        rest = sorted(f for f in frames if f not in got)
        if rest:  # a module, or a symbol the fast path could not size
            got.update(resolve(script, obj, rest, rec.cross_compile, roots))
        resolved[obj] = got
    for fr in _frames(reports):
        where = resolved.get(_object(fr, vmlinux, modules), {}).get(_key(fr))
        if where:
            fr["where"] = where
    return sum(1 for v in resolved.values() for w in v.values() if w)
