"""Expectations, the compare merge and call-outs, the evidence text and the
HTML page, on the consoles of a real arm64 compare run (Debian 6.1 vs 6.12,
6 s storms) saved in tests/logs; the page is opened in headless Chromium."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "scripts"))
from uringrace import bench_real, compare, expect, html, parse, storms  # noqa: E402
from uringrace import text as textout  # noqa: E402
from uringrace.common import PipelineError  # noqa: E402
from uringrace.records import BootResult, Outcome  # noqa: E402

# the storm names that run used
STORMS = (("iowq_0", ""), ("iowq_1", ""), ("sqpoll_2", ""), ("read_3", ""), ("nop_4", ""),
          ("cq_5", ""))
IOWQ_61 = "data-race in io_worker_handle_work / io_wqe_activate_free_worker"
PREP = "data-race in io_prep_async_work / io_prep_async_work"


def _report(*accesses):
    """A parsed report with these (function, type) accesses, plain, 4 bytes."""
    return {"title": "t", "functions": [f for f, _ in accesses], "unknown_origin": False,
            "accesses": [{"type": t, "size": 4, "marked": False, "reordered": False,
                          "stack": [{"fn": f, "module": None}]} for f, t in accesses]}


def side(name, version):
    with open(os.path.join(HERE, "logs", name), encoding="utf-8") as f:
        con = parse.parse_console(f.read())
    rep = {"boot": BootResult(arch="arm64", accel="tcg", smp=2, outcome=Outcome.PASS, status=0,
                              reason="exit status 0", seconds=1.0, qemu_rc=0, to_init_s=1.0,
                              cmdline=""), **con}
    epath, entries = expect.for_version(version)
    s = storms.merge([(os.path.join(HERE, "logs", "none"), rep)], STORMS, entries)
    return s.replace(arch="arm64", tree=f"debian:{version}", version=version, jobs=1,
                     seconds_per_storm=6, expect=epath)


class Expectations(unittest.TestCase):
    def test_files_parse_and_pick_by_version(self):
        self.assertTrue(expect.path_for("6.1.192").endswith("expect/6.1.txt"))
        self.assertTrue(expect.path_for("6.12.117").endswith("expect/6.12.txt"))
        self.assertIsNone(expect.path_for("5.10.0"))
        for v in ("6.1", "6.12"):
            self.assertTrue(expect.load(expect.path_for(v)))

    def test_classify_on_accesses(self):
        e61 = expect.load(expect.path_for("6.1"))
        e612 = expect.load(expect.path_for("6.12"))
        rep = _report(("io_worker_handle_work", "write"), ("io_wqe_activate_free_worker", "read"))
        self.assertEqual(expect.classify(rep, e61), ("expected", "iowq-worker-flags"))
        rep = _report(("io_worker_handle_work", "write"), ("io_wq_activate_free_worker", "read"))
        self.assertEqual(expect.classify(rep, e612), ("forbidden", "iowq-worker-flags"))
        self.assertEqual(expect.classify(_report(("kfree", "read"), ("slob_page_alloc", "write")),
                                         e612), ("unlisted", None))
        # one side of the pair outside the race: not the race
        rep = _report(("io_worker_handle_work", "write"), ("kfree", "read"))
        self.assertEqual(expect.classify(rep, e612)[0], "unlisted")

    def test_missing_override(self):
        # a line that does not parse: tests/test_races.py, host and guest alike
        with self.assertRaisesRegex(PipelineError, "no such file"):
            expect.path_for("6.1", "/nonexistent/expect.txt")

def with_work(s, ops=100):
    """The side with every storm of the saved run having done ops/s."""
    return s.replace(workloads={k: {"ops_per_s": [ops], "anomalies": []} for k, _ in STORMS})


class Compare(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = with_work(side("arm64-6.1-compare-storms.console", "6.1"))
        cls.b = with_work(side("arm64-6.12-compare-storms.console", "6.12"))

    def test_merge(self):
        ga = {g["title"]: g for g in self.a.titles}
        self.assertEqual(ga[IOWQ_61]["verdict"], "expected")
        self.assertEqual(ga[IOWQ_61]["by_workload"]["iowq_1"]["count"], 2)
        self.assertIn(PREP, {g["title"] for g in self.b.titles})
        self.assertNotIn(IOWQ_61, {g["title"] for g in self.b.titles})
        self.assertTrue(all(e["t"] > 0 for e in self.a.events))

    def test_callouts_by_race_across_workloads(self):
        calls = compare.callouts(self.a, self.b)
        self.assertIn(("gone in B", "iowq-worker-flags"), {c[:2] for c in calls})
        # prep-async-work is in both trees: not called out
        self.assertNotIn("prep-async-work", {c[1] for c in calls})
        self.assertFalse([c for c in calls if c[0].startswith("FORBIDDEN")])
        # B reporting the race its file forbids is called out
        b = self.b.replace(titles=[dict(g, verdict="forbidden") for g in self.b.titles])
        forb = [c for c in compare.callouts(self.a, b) if c[0] == "FORBIDDEN in B"]
        self.assertTrue(forb)
        # each side's own count of that race (A's may be 0)
        prep = next(c for c in forb if c[1] == "prep-async-work")
        self.assertEqual(prep[2:4], (compare._races(self.a)["prep-async-work"][0],
                                     compare._races(b)["prep-async-work"][0]))

    def test_no_call_on_missing_or_unequal_work(self):
        """'gone in B' needs B to have done comparable work where A saw it."""
        b = with_work(self.b, ops=0)
        calls = {c[1]: c for c in compare.callouts(self.a, b)}
        self.assertEqual("not comparable", calls["iowq-worker-flags"][0])
        self.assertIn("B did no work", calls["iowq-worker-flags"][4])
        b = with_work(self.b, ops=1000)  # 10x A's
        calls = {c[1]: c for c in compare.callouts(self.a, b)}
        self.assertEqual("not comparable", calls["iowq-worker-flags"][0])
        self.assertIn("10.0x faster", calls["iowq-worker-flags"][4])
        self.assertFalse(storms.side_ok(b.replace(outcomes=[{"outcome": "pass"}],
                                             workloads={"x": {"ops_per_s": [0]}})))
        self.assertTrue(storms.side_ok(b.replace(outcomes=[{"outcome": "pass"}])))

    def test_anomalies_held_to_each_trees_storm_verdict(self):
        """eventfd-wait must be clean on 6.1 and lose notifications on 6.12
        (expect/6.12.txt's storm row): each side is held to its own tree."""
        def lost(s, n, ops=100):
            w = dict(s.workloads, **{"eventfd-wait": {"ops_per_s": [ops],
                                                     "anomalies": [{"lost_notify": n}]}})
            return s.replace(workloads=w)
        self.assertEqual("anomaly", expect.storm_expectations(self.b.expect)["eventfd-wait"])
        self.assertEqual("clean", expect.storm_expectations(self.a.expect)["eventfd-wait"])
        self.assertNotIn("iowq_0", expect.storm_expectations(self.a.expect))
        self.assertEqual([], compare.anomaly_callouts(lost(self.a, 0), lost(self.b, 40)))
        self.assertEqual([("ANOMALIES in A", "eventfd-wait", 3, 40, "")],
                         compare.anomaly_callouts(lost(self.a, 3), lost(self.b, 40)))
        calls = compare.anomaly_callouts(lost(self.b, 40), lost(self.b, 0))
        self.assertEqual([("known anomaly gone in B", "eventfd-wait", 40, 0)],
                         [c[:4] for c in calls])
        # a side that did no work there is missing work, not a verdict
        self.assertEqual([], compare.anomaly_callouts(lost(self.b, 40), lost(self.b, 0, ops=0)))

    def test_too_few_reports_to_call(self):
        """One report gone is not a finding (a patched 6.1 against 6.1 once
        called out 'gone in B: prep-async-creds (A 1x, B 0x)')."""
        iowq = [g for g in self.a.titles if g["id"] == "iowq-worker-flags"]
        one = self.a.replace(titles=[dict(iowq[0], count=1)] +
                   [g for g in self.a.titles if g["id"] != "iowq-worker-flags"])
        calls = {c[1]: c for c in compare.callouts(one, self.b)}
        self.assertEqual("too few to call", calls["iowq-worker-flags"][0])
        self.assertIn("iowq-worker-flags", {c[1] for c in compare.callouts(self.a, self.b)
                                            if c[0] == "gone in B"})

    def test_terminal_table_and_evidence(self):
        wa = {k: {"ops_per_s": [1], "anomalies": [{"stalls": 2}, {"stalls": 1}]}
              for k, _ in list(storms.STORMS) + list(STORMS)}
        wb = {k: {"ops_per_s": [2], "anomalies": [{}]}
              for k, _ in list(storms.STORMS) + list(STORMS)}
        text = textout.render_compare(self.a.replace(workloads=wa), self.b.replace(workloads=wb))
        self.assertIn("<== gone in B: iowq-worker-flags", text)
        self.assertIn("B/A 2.00", text)
        self.assertIn("anomalies A stalls 3, B none", text)
        ev = textout.render_evidence(self.a)
        self.assertIn(f"BUG: KCSAN: {IOWQ_61}   [expected: iowq-worker-flags]", ev)
        self.assertIn("-- other subsystems:", ev)


@unittest.skipIf(os.environ.get("URINGRACE_NO_BROWSER") == "1", "URINGRACE_NO_BROWSER=1")
class HtmlInChromium(unittest.TestCase):
    """The page as a browser shows it: headless Chromium, DOM after scripts."""

    def test_page(self):
        chromium = shutil.which("chromium")
        self.assertTrue(chromium, "Debian's chromium is not installed: run 'make deps'")
        a = side("arm64-6.1-compare-storms.console", "6.1")
        b = side("arm64-6.12-compare-storms.console", "6.12")
        for s in (a, b):
            s.workloads = {k: {"ops_per_s": [100], "anomalies": []} for k, _ in STORMS}
        a.workloads["cq_5"]["anomalies"] = [{"lost_cqe": 4}]
        tmp = tempfile.mkdtemp(prefix="urr-html-")
        path = html.write_compare(os.path.join(tmp, "compare.html"), {"arm64": {"A": a, "B": b}},
                                  STORMS)
        res = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                              "--disable-quic", "--no-first-run",
                              "--disable-background-networking", "--disable-component-update",
                              "--disable-sync", f"--user-data-dir={tmp}/profile",
                              "--virtual-time-budget=5000", "--dump-dom", "file://" + path],
                             capture_output=True, text=True, timeout=120, check=False)
        dom = res.stdout
        self.assertIn("<table class=\"compare\" id=\"compare-arm64\">", dom, res.stderr[-500:])
        self.assertIn("gone in B: iowq-worker-flags", dom)
        row = re.search(r"<tr class=\"gone\"><td>iowq_1</td><td>io_uring</td><td>"
                        + re.escape(IOWQ_61) + r"</td><td>expected / -</td>"
                        r"<td class=\"n a\">2x, first [\d.]+ s</td>", dom)
        self.assertTrue(row, "the io-wq race row in iowq_1, A only")
        marks = [e for s in (a, b) for e in s.events if e["scope"] != "other"]
        self.assertRegex(dom, rf"<body data-marks=\"{len(marks)}\"")
        self.assertEqual(dom.count("class=\"mark\""), len(marks))
        self.assertIn("<p id=\"errors\"></p>", dom)
        self.assertIn("<td>cq_5</td><td class=\"n\">100</td><td class=\"n\">100</td>"
                      "<td>lost_cqe 4</td><td>none</td>", dom)
        json.loads(re.search(r"id=\"uringrace-data\">(.*?)</script>", dom, re.S).group(1)
                   .replace("<\\/", "</"))


class BenchReal(unittest.TestCase):
    def test_row_from_saved_runs(self):
        a = side("arm64-6.1-compare-storms.console", "6.1")
        b = side("arm64-6.12-compare-storms.console", "6.12")
        ra = bench_real._bench_row("arm64", "6.1", "default", "", 2, 1, [a, a], STORMS, "6")
        self.assertEqual(ra["iowq_first_after_init"]["hits"], 2)
        self.assertEqual(ra["workloads"]["iowq_0"]["hits"], 2)
        self.assertEqual(ra["workloads"]["nop_4"]["hits"], 0)
        rb = bench_real._bench_row("arm64", "6.12", "default", "", 2, 1, [b], STORMS, "6")
        self.assertEqual(rb["iowq_first_after_init"]["hits"], 0)
        self.assertIsNone(rb["iowq_first_after_init"]["median_s"])
        self.assertGreater(rb["io_uring_reports_per_min"], 0)
        text = bench_real._render_bench_row(ra)
        self.assertIn("first io-wq race after /init: 2/2 runs", text)
        self.assertIn("x the peer", text)

    def test_knobs(self):
        self.assertEqual(bench_real._knobs("default=@2;skip200=kcsan.skip_watch=200@4"),
                         [("default", "", 2), ("skip200", "kcsan.skip_watch=200", 4)])
        with self.assertRaisesRegex(PipelineError, "KNOBS"):
            bench_real._knobs("=x@y")


class RunVerdicts(unittest.TestCase):
    """What fails 'make run' beyond the tests' own verdicts."""

    def test_unlisted_and_forbidden_io_uring_races_are_news(self):
        from uringrace import evidence
        a = side("arm64-6.1-compare-storms.console", "6.1")
        self.assertEqual([], [h for h in evidence.news(a, "/x/6.1.txt") if "FORBIDDEN" in h])
        b = side("arm64-6.1-compare-storms.console", "6.12")  # 6.1's races, 6.12's file
        heads = evidence.news(b, "/x/6.12.txt")
        self.assertTrue([h for h in heads if h.startswith("FORBIDDEN race on arm64: " + IOWQ_61)
                         or h.startswith("NEW race (not in 6.12.txt) on arm64: " + IOWQ_61)])
        none = a.replace(titles=[dict(g, verdict="unlisted") for g in a.titles])
        heads = evidence.news(none, None)
        self.assertIn(f"NEW race (no expectation file for this tree) on arm64: {PREP}",
                      "\n".join(heads))
        # other subsystems and the module's own reports are never news here
        self.assertFalse([h for h in heads if "hrtimer" in h or "[uringrace]" in h])

    def test_a_lost_report_fails(self):
        from uringrace import report
        tree = parse.parse_ktap("TAP version 13\n1..2\n    1..1\n    ok 1 x\n"
                                "ok 1 selftests: uringrace: a\n    1..1\n    ok 1 y\n"
                                "ok 2 selftests: uringrace: b\n")
        con = parse.parse_console("[1.0] uringrace: test-start 1 a\n"
                                  "[2.0] uringrace: test-start 2 b\n")
        self.assertEqual([], report.log_problems(con, tree))
        bare = parse.parse_ktap("TAP version 13\n1..2\nok 1 selftests: uringrace: a\n"
                                "ok 2 selftests: uringrace: b # SKIP\n")
        self.assertEqual(["'a' passed but none of its own results arrived"],
                         report.log_problems(con, bare))
        con = parse.parse_console("[1.0] uringrace: test-start 1 a\n")
        self.assertIn("no start marker for 'b'", report.log_problems(con, tree)[0])
        con = parse.parse_console("[0.5] boot\n")
        self.assertIn("no test-start marker", report.log_problems(con, tree)[0])
        con = parse.parse_console("[1.0] uringrace: test-start 1 a\n[1.5] ** 12 printk "
                                  "messages dropped **\n[2.0] uringrace: test-start 2 b\n")
        self.assertIn("dropped 12 console line(s)", report.log_problems(con, tree)[0])

    def test_kernel_problems_are_charged_to_their_test(self):
        from uringrace import report
        tree = parse.parse_ktap("TAP version 13\n1..2\n    ok 1 x\nok 1 selftests: uringrace: a\n"
                                "    ok 1 y\nok 2 selftests: uringrace: b\n")
        con = parse.parse_console(
            "[1.0] uringrace: test-start 1 a\n"
            "[1.1] BUG: KCSAN: data-race in x / y\n[1.2] " + "=" * 66 + "\n"
            "[2.0] uringrace: test-start 2 b\n"
            "[2.1] WARNING: possible circular locking dependency detected\n"
            "[2.2] WARNING: CPU: 1 PID: 77 at kmod/main.c:100 ur_ioctl+0x1/0x2\n")
        got = report.log_problems(con, tree)
        self.assertEqual(["b: WARNING: possible circular locking dependency detected",
                          "b: WARNING: CPU: 1 PID: 77 at kmod/main.c:100 ur_ioctl+0x1/0x2"], got)
