"""One self-contained HTML page for a compare run: per arch, the comparison
table (static HTML, readable without scripts) and a timeline of detections
per workload, drawn in the browser from the JSON embedded in the page."""

import html
import json

from .compare import callouts, titles_in
from .text import anomaly_text, callout_lines

STYLE = """
body { font: 14px/1.4 sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #eee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.forbidden td { background: #fcc; }
tr.gone td.b, tr.new td.b { font-weight: bold; }
.callout { font-weight: bold; }
.timeline text { font: 11px sans-serif; }
#errors { color: #b00; }
"""

SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById('uringrace-data').textContent);
  var colours = {expected: '#1f77b4', forbidden: '#d62728', unlisted: '#ff7f0e'};
  var drawn = 0;
  data.arches.forEach(function (arch) {
    var svg = document.getElementById('timeline-' + arch.arch);
    var ns = 'http://www.w3.org/2000/svg';
    var rows = [];
    ['A', 'B'].forEach(function (lab) {
      data.storms.forEach(function (wl) { rows.push([lab, wl]); });
    });
    var tmax = 1;
    ['A', 'B'].forEach(function (lab) {
      arch[lab].events.forEach(function (e) { tmax = Math.max(tmax, e.t); });
    });
    var left = 170, width = 700, rowh = 18;
    svg.setAttribute('width', left + width + 20);
    svg.setAttribute('height', rows.length * rowh + 30);
    function el(name, attrs, text) {
      var n = document.createElementNS(ns, name);
      Object.keys(attrs).forEach(function (k) { n.setAttribute(k, attrs[k]); });
      if (text !== undefined) n.textContent = text;
      svg.appendChild(n);
      return n;
    }
    rows.forEach(function (r, i) {
      el('text', {x: 4, y: i * rowh + 14}, r[0] + ' ' + r[1]);
      el('line', {x1: left, x2: left + width, y1: i * rowh + 10, y2: i * rowh + 10,
                  stroke: '#ddd'});
    });
    el('text', {x: left, y: rows.length * rowh + 24}, '0 s after /init');
    el('text', {x: left + width - 60, y: rows.length * rowh + 24}, tmax.toFixed(1) + ' s');
    ['A', 'B'].forEach(function (lab) {
      arch[lab].events.forEach(function (e) {
        if (e.scope === 'other') return;
        var i = rows.findIndex(function (r) { return r[0] === lab && r[1] === e.workload; });
        if (i < 0) return;
        var c = el('circle', {cx: left + width * e.t / tmax, cy: i * rowh + 10, r: 4,
                              fill: colours[e.verdict] || '#777', 'class': 'mark'});
        var tip = document.createElementNS(ns, 'title');
        tip.textContent = e.title + ' (' + e.verdict + ', job ' + e.job + ', ' + e.t + ' s)';
        c.appendChild(tip);
        drawn++;
      });
    });
  });
  document.body.setAttribute('data-marks', String(drawn));
})();
"""


def _e(s):
    return html.escape(str(s), quote=True)


def _cell(g, wl):
    w = (g or {}).get("by_workload", {}).get(wl)
    if not w:
        return "-"
    return f"{w['count']}x, first {w['first_s']} s" if w["first_s"] is not None else f"{w['count']}x"


def _arch_section(arch, res, storms):
    a, b = res["A"], res["B"]
    ga = {g["title"]: g for g in a.titles}
    gb = {g["title"]: g for g in b.titles}
    calls = callouts(a, b)
    gone = {k for what, k, _, _, _ in calls if what == "gone in B"}
    new = {k for what, k, _, _, _ in calls if what == "NEW in B"}
    out = [f"<h2>{_e(arch)}</h2>",
           f"<p>A = {_e(a.tree)} ({_e(', '.join(o['outcome'] for o in a.outcomes))}), "
           f"B = {_e(b.tree)} ({_e(', '.join(o['outcome'] for o in b.outcomes))}); "
           f"{a.jobs} guest(s) per tree, {a.seconds_per_storm} s per storm.</p>",
           f"<table class='compare' id='compare-{_e(arch)}'><tr><th>workload</th><th>scope</th>"
           "<th>KCSAN title</th><th>verdict A / B</th><th>A</th><th>B</th></tr>"]
    for wl, _ in storms:
        titles = titles_in(ga, gb, wl)
        if not titles:
            out.append(f"<tr><td>{_e(wl)}</td><td></td><td>(no KCSAN report)</td>"
                       "<td></td><td>-</td><td>-</td></tr>")
        for t in titles:
            x, y = ga.get(t), gb.get(t)
            g = x or y
            key = g["id"] or t
            cls = "forbidden" if "forbidden" in ((x or {}).get("verdict"),
                                                 (y or {}).get("verdict")) \
                else "gone" if key in gone else "new" if key in new else ""
            out.append(f"<tr class='{cls}'><td>{_e(wl)}</td><td>{_e(g['scope'])}</td>"
                       f"<td>{_e(t)}</td><td>{_e((x or {}).get('verdict', '-'))} / "
                       f"{_e((y or {}).get('verdict', '-'))}</td>"
                       f"<td class='n a'>{_e(_cell(x, wl))}</td>"
                       f"<td class='n b'>{_e(_cell(y, wl))}</td></tr>")
    out.append("</table>")
    out.append("<ul class='callouts'>")
    out += [f"<li class='callout'>{_e(line)}</li>" for line in callout_lines(calls)]
    out.append("</ul>")
    out.append("<table class='throughput'><tr><th>workload</th><th>A ops/s (per guest)</th>"
               "<th>B ops/s (per guest)</th><th>A anomalies</th><th>B anomalies</th></tr>")
    for wl, _ in storms:
        va, vb = a.workloads[wl]["ops_per_s"], b.workloads[wl]["ops_per_s"]
        out.append(f"<tr><td>{_e(wl)}</td><td class='n'>{_e(', '.join(map(str, va)) or '-')}"
                   f"</td><td class='n'>{_e(', '.join(map(str, vb)) or '-')}</td>"
                   f"<td>{_e(anomaly_text(a.workloads[wl]))}</td>"
                   f"<td>{_e(anomaly_text(b.workloads[wl]))}</td></tr>")
    out.append("</table>")
    out.append("<h3>Detections per workload (io_uring reports; blue expected, red forbidden, "
               "orange unlisted)</h3>")
    out.append(f"<svg class='timeline' id='timeline-{_e(arch)}' "
               "xmlns='http://www.w3.org/2000/svg'></svg>")
    return "\n".join(out)


def page(result, storms):
    data = {"storms": [wl for wl, _ in storms],
            "arches": [{"arch": arch, **{lab: {"tree": s.tree, "events": s.events}
                                         for lab, s in res.items()}}
                       for arch, res in result.items()]}
    blob = json.dumps(data).replace("</", "<\\/")
    body = "\n".join(_arch_section(arch, res, storms) for arch, res in result.items())
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
            "<title>uringrace compare</title>"
            f"<style>{STYLE}</style></head>\n<body>\n<h1>uringrace compare</h1>\n"
            "<p id='errors'></p>\n"
            "<script>window.onerror = function (m) { document.getElementById('errors')"
            ".textContent += 'script error: ' + m; };</script>\n"
            f"{body}\n"
            f"<script type='application/json' id='uringrace-data'>{blob}</script>\n"
            f"<script>{SCRIPT}</script>\n</body></html>\n")


def write_compare(path, result, storms):
    with open(path, "w", encoding="utf-8") as f:
        f.write(page(result, storms))
    return path


def _run_cell(run):
    if not run:
        return "-"
    first = f", first report {run['first_s']} s" if run.get("first_s") is not None else ""
    return f"{run['verdict']}{first}: {run['detail']}" if run["detail"] else run["verdict"]


def write_mutate(path, tree, rows, secs, summaries):
    """The mutation score page of a 'make mutate' run."""
    out = ["<!DOCTYPE html>\n<html><head><meta charset='utf-8'>",
           f"<title>uringrace mutation score, linux {_e(tree)}</title>",
           f"<style>{STYLE}</style></head>\n<body>",
           f"<h1>Mutation score, linux {_e(tree)}</h1>",
           f"<p>Each mutant built from tree A's build and its storms run {_e(secs)} s. "
           "KCSAN: the real mutant; emulated form: the reordering it allows, done at the "
           "source level, caught by the storm's anomaly counters.</p>", "<ul>"]
    out += [f"<li class='callout'>{_e(s)}</li>" for s in summaries]
    out += ["</ul>", "<table class='mutate'><tr><th>arch</th><th>mutant</th><th>class</th>"
            "<th>storms</th><th>KCSAN (real mutant)</th><th>emulated form</th>"
            "<th>verdict</th></tr>"]
    for r in rows:
        cls = "forbidden" if not r["verdict"].startswith("caught") else ""
        out.append(f"<tr class='{cls}'><td>{_e(r['arch'])}</td><td>{_e(r['mutant'])}</td>"
                   f"<td>{_e(r['class'])}</td><td>{_e(', '.join(r['storms']))}</td>"
                   f"<td>{_e(_run_cell(r['real']))}</td><td>{_e(_run_cell(r['emulated']))}</td>"
                   f"<td>{_e(r['verdict'])}</td></tr>")
    out.append("</table>\n</body></html>\n")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    return path
