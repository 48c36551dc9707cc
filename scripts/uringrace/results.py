"""The results channel: every result the driver and the selftests print is
one 'uringrace-result {json}' line (inside KTAP it is a '# ' comment). This
is the host's one reader of it."""

import json

TAG = "uringrace-result "


def parse_results(text):
    """Every result line's JSON, in order; a line that does not parse is
    returned as {'label': None, 'broken': line} so that it cannot vanish."""
    out = []
    for line in text.splitlines():
        i = line.find(TAG)
        if i < 0:
            continue
        try:
            out.append(json.loads(line[i + len(TAG):]))
        except ValueError:
            out.append({"label": None, "broken": line.strip()})
    return out


def by_label(text):
    """{label: result} (the last one of a label wins)."""
    return {r["label"]: r for r in parse_results(text) if r.get("label")}


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""
