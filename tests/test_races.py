"""The race matchers (scripts/uringrace/races.py on the host, the guest's
selftests/kcsan_match.h through kcsan_scan) and the data files read by
catalog.py: the same answers on every report of the saved console logs,
exact matching on both accesses, and signatures that do not parse refused."""

import glob
import os
import re
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "scripts"))
from uringrace import catalog, expect, parse, races  # noqa: E402
from uringrace.common import PipelineError  # noqa: E402

LOGS = sorted(glob.glob(os.path.join(HERE, "logs", "*.console")))
SEEDPAIR_LOGS = ("x86_64-6.12-scenarios-seedpair.console", "arm64-6.12-scenarios-seedpair.console")
SQ_HEAD = "ur_io_sq_thread:read:plain,reordered,size=8/ur_sq_app_submit:write:plain,size=8"


def module_races():
    """{scenario: [race]} as the module's sc_*.c files write them."""
    out = {}
    for path in glob.glob(os.path.join(TOP, "kmod", "sc_*.c")):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        body = re.search(r"_races\[\] = \{(.*?)NULL", text, re.S).group(1)
        name = os.path.basename(path)[3:-2]
        out[name] = ["".join(re.findall(r'"([^"]*)"', chunk))
                     for chunk in body.split(",\n") if '"' in chunk]
    return out


def scan_binary():
    out = os.path.join(tempfile.mkdtemp(prefix="urr-scan-"), "kcsan_scan")
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", out,
                    os.path.join(TOP, "selftests", "kcsan_scan.c")], check=True)
    return out


class Matcher(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(HERE, "logs", "x86_64-6.12-scenarios.console"),
                  encoding="utf-8") as f:
            self.reports = parse.parse_console(f.read())["reports"]

    def test_both_accesses_exactly(self):
        sq = [r for r in self.reports if "ur_sq_app_submit" in r["title"]]
        self.assertTrue(sq)
        self.assertTrue(all(races.match(r, SQ_HEAD) for r in sq))
        # the order of the sides does not matter
        a, b = SQ_HEAD.split("/")
        self.assertTrue(races.match(sq[0], b + "/" + a))
        # a prefix of a function is not the function (ur_io_sq_thread_wait)
        self.assertFalse(races.match(sq[0], SQ_HEAD.replace("ur_io_sq_thread:",
                                                            "ur_io_sq_thread_wait:")))
        self.assertFalse(races.match(sq[0], SQ_HEAD.replace("ur_io_sq_thread:",
                                                            "ur_io_sq_threa:")))
        # each attribute is checked: type, size, marked, reordered
        for wrong in (SQ_HEAD.replace("read:", "write:", 1), SQ_HEAD.replace("size=8", "size=4"),
                      SQ_HEAD.replace("plain,reordered", "marked"),
                      SQ_HEAD.replace("write:plain", "write:plain,reordered")):
            self.assertFalse(races.match(sq[0], wrong), wrong)

    def test_one_side_needs_every_access(self):
        iowq = [r for r in self.reports if "ur_io_wq_exit_marker" in r["title"]]
        self.assertTrue(iowq)
        self.assertTrue(races.match(iowq[0], "ur_io_worker_handle_work|ur_io_wq_exit_marker|"
                                             "ur_io_wq_worker_sleeping|ur_io_wq_worker_running"))
        self.assertFalse(races.match(iowq[0], "ur_io_wq_exit_marker"))

    def test_bad_signatures_refused(self):
        for bad in ("", "a:reed", "a:read:plane", "a/b/c", "a:read:plain,marked", ":read",
                    "a:read:size=0"):
            with self.assertRaises(ValueError, msg=bad):
                races.parse_race(bad)

    def test_bad_expectation_lines_refused_host_and_guest(self):
        scan = scan_binary()
        for line, why in (("expected x fn:reed", r":1: bad access type"),
                          ("perhaps x y", r":1: want '<expected\|forbidden>"),
                          ("expected x", r":1: want"),
                          ("storm eventfd-wait maybe", r":1: want 'storm <name> <clean\|anomaly>'"),
                          ("storm eventfd-wait", r":1: want 'storm"),
                          ("storm eventfd-wait anomaly x", r":1: want 'storm")):
            with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
                f.write(line + "\n")
                f.flush()
                with self.assertRaisesRegex(PipelineError, why):
                    expect.load(f.name)
                res = subprocess.run([scan, "--expect", f.name, "--log", LOGS[0]],
                                     capture_output=True, check=False)
                self.assertEqual(2, res.returncode, line)

    def test_storm_rows(self):
        """A storm row takes its storm's verdict for that tree; the guest's
        scanner passes over it; one naming no storm of storms.txt is refused
        on the host (the guest's shell then has nothing to apply it to)."""
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            f.write("storm eventfd-wait anomaly  # a known bug\nexpected a io_x\n")
            f.flush()
            self.assertEqual({"eventfd-wait": "anomaly"}, expect.storm_verdicts(f.name))
            self.assertEqual(1, len(expect.load(f.name)))
            res = subprocess.run([scan_binary(), "--expect", f.name, "--log", LOGS[0]],
                                 capture_output=True, check=False)
            self.assertIn(res.returncode, (0, 1), res.stderr)
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            f.write("storm no-such-storm clean\n")
            f.flush()
            with self.assertRaisesRegex(PipelineError, ":1: no storm 'no-such-storm'"):
                expect.load(f.name)

    def test_module_signatures_parse_and_fire_on_saved_logs(self):
        sigs = module_races()
        self.assertEqual(set(sigs), set(catalog.scenario_names()))
        for rs in sigs.values():
            for r in rs:
                races.parse_race(r)
        # the KCSAN-detected scenarios' races are in the saved scenario runs
        # of today's models (the seed's pair for iowq_flags)
        for log in SEEDPAIR_LOGS:
            with open(os.path.join(HERE, "logs", log), encoding="utf-8") as f:
                reps = parse.parse_console(f.read())["reports"]
            for sc in ("iowq_flags", "sq_head", "cq_tail"):
                self.assertTrue(any(races.match(r, s) for r in reps for s in sigs[sc]),
                                f"{sc} in {log}")


class GuestAndHostAgree(unittest.TestCase):
    """kcsan_scan (the guest's C matcher) and races.py: for every report of
    every saved console log, the same verdict and race id."""

    @classmethod
    def setUpClass(cls):
        cls.scan = scan_binary()

    def test_every_report_of_every_log(self):
        files = [expect.path_for(v) for v in ("6.1", "6.12")]
        inverted = os.path.join(tempfile.mkdtemp(), "module.txt")
        with open(inverted, "w", encoding="utf-8") as f:
            for sc, rs in sorted(module_races().items()):
                f.write(f"forbidden {sc} {' '.join(rs)}\n")
        files.append(inverted)
        checked = 0
        for path in files:
            entries = expect.load(path)
            for log in LOGS:
                with open(log, encoding="utf-8", errors="replace") as f:
                    reps = parse.parse_console(f.read())["reports"]
                res = subprocess.run([self.scan, "--expect", path, "--log", log],
                                     capture_output=True, text=True, check=False)
                got = [line.split(" ", 2) for line in res.stdout.splitlines()
                       if not line.startswith("#")]
                want = [[*map(lambda x: x or "-", expect.classify(r, entries)), r["title"]]
                        for r in reps]
                self.assertEqual(want, got, f"{os.path.basename(log)} x "
                                            f"{os.path.basename(path)}")
                forbidden = any(w[0] == "forbidden" for w in want)
                self.assertEqual(1 if forbidden else 0, res.returncode)
                checked += len(reps)
        self.assertGreater(checked, 100)

    def test_module_reports_outside_the_scenarios_races(self):
        """module_races.sh's check can fire: on a saved run of the old
        iowq_flags model, its invented exit-marker writer's reports are no
        scenario's race today."""
        log = os.path.join(HERE, "logs", "x86_64-6.12-scenarios.console")
        listing = os.path.join(tempfile.mkdtemp(), "scenarios")
        with open(listing, "w", encoding="utf-8") as f:
            for i, (sc, rs) in enumerate(sorted(module_races().items()), 1):
                f.write(f"{i} {sc} none {' '.join(rs)}\n")
        res = subprocess.run([self.scan, "--module", "uringrace", "--scenarios", listing,
                              "--log", log], capture_output=True, text=True, check=False)
        self.assertEqual(1, res.returncode)
        control = [line for line in res.stdout.splitlines() if line.startswith("control ")]
        self.assertTrue(control)
        self.assertTrue(all("ur_io_wq_exit_marker" in line for line in control), control)
        # the same run, with the exit marker owned by a scenario: clean
        with open(listing, "a", encoding="utf-8") as f:
            f.write("9 old none ur_io_worker_handle_work|ur_io_wq_exit_marker|"
                    "ur_io_wq_worker_running|ur_io_wq_worker_sleeping\n")
        res = subprocess.run([self.scan, "--module", "uringrace", "--scenarios", listing,
                              "--log", log], capture_output=True, text=True, check=False)
        self.assertEqual(0, res.returncode, res.stdout)

    def test_since_marker_and_missing_marker(self):
        log = os.path.join(HERE, "logs", "x86_64-6.12-scenarios.console")
        res = subprocess.run([self.scan, "--since", "subtest-start verdict", "--log", log],
                             capture_output=True, text=True, check=False)
        self.assertEqual(0, res.returncode)
        self.assertNotIn("virtqueue", res.stdout)  # boot noise is before the marker
        res = subprocess.run([self.scan, "--since", "no such marker", "--log", log],
                             capture_output=True, text=True, check=False)
        self.assertEqual(3, res.returncode)
        self.assertIn("not in the kernel log", res.stdout)


class Catalog(unittest.TestCase):
    def test_uapi_lists(self):
        lists = catalog.uapi_lists()
        self.assertEqual(catalog.scenario_names(),
                         ["iowq_flags", "sq_head", "sqpoll_wakeup", "cq_tail", "ringbuf_notify"])
        self.assertEqual([s["id"] for s in lists["SCENARIOS"]], [1, 2, 3, 4, 5])
        self.assertEqual([m["name"] for m in lists["MODES"]], ["kthread", "user", "user_mm"])
        self.assertEqual(lists["SCENARIOS"][3]["modes"], ["KTHREAD", "USER", "USER_MM"])
        an = {a["ID"] for a in lists["ANOMALIES"]}
        self.assertTrue(all(s["anomaly"] in an | {"NONE"} for s in lists["SCENARIOS"]))

    def test_every_scenario_has_kthread_verdicts_both_ways(self):
        for sc in catalog.scenario_names():
            for var in ("buggy", "fixed"):
                self.assertTrue(catalog.verdict_for(sc, var, "kthread", "x86_64", "tcg"),
                                f"{sc} {var}")
        rows = catalog.verdicts()
        known = set(catalog.scenario_names())
        modes = {m["name"] for m in catalog.uapi_lists()["MODES"]} | {"litmus"}
        variants = {v["name"] for v in catalog.uapi_lists()["VARIANTS"]}
        lib = os.path.join(TOP, "selftests", "lib.sh")
        for r in rows:
            self.assertIn(r["scenario"], known)
            self.assertIn(r["mode"], modes)
            if r["mode"] == "kthread":
                self.assertIn(r["variant"], variants)
            else:  # user space plays the application: lib.sh maps the name
                out = subprocess.run(["sh", "-c", f". {lib}; variant_parts {r['variant']}"],
                                     capture_output=True, text=True, check=True).stdout.split()
                self.assertEqual(2, len(out), r)
                self.assertIn(out[0], variants)
            self.assertIn(r["expect"], ("detected", "clean", "not-observable"))

    def test_not_observable_only_where_measured(self):
        """Hardware that can reorder (arm64, or x86 for store buffering)
        expects every buggy variant detected; TCG may say not-observable."""
        for r in catalog.verdicts():
            if r["variant"] != "buggy" or r["mode"] == "litmus":
                continue
            arm = catalog.verdict_for(r["scenario"], "buggy", r["mode"], "arm64", "kvm")
            self.assertEqual("detected", arm["expect"], r)

    def test_storm_table(self):
        names = [s["name"] for s in catalog.storms()]
        self.assertEqual(len(names), len(set(names)))
        self.assertEqual(catalog.storm_set("compare")[0][0], "iowq-raw")
        # what a compare runs is held to its verdict in every check
        self.assertLessEqual({n for n, _ in catalog.storm_set("compare")},
                             {n for n, _ in catalog.storm_set("check")})
        self.assertEqual({"clean", "anomaly"}, {s["expect"] for s in catalog.storms()})

    def test_the_shell_reads_the_same_tables(self):
        """lib.sh's verdict/storms readers against catalog.py's."""
        lib = os.path.join(TOP, "selftests", "lib.sh")
        script = (f"HERE={os.path.join(TOP, 'selftests')}; . {lib}; ARCH=x86_64; ACCEL=tcg; "
                  "verdict sq_head buggy kthread; verdict ringbuf_notify buggy kthread; "
                  "verdict_cases user user_mm litmus; storms compare")
        out = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                             check=True).stdout.splitlines()
        v1 = catalog.verdict_for("sq_head", "buggy", "kthread", "x86_64", "tcg")
        v2 = catalog.verdict_for("ringbuf_notify", "buggy", "kthread", "x86_64", "tcg")
        self.assertEqual(out[0], f"{v1['expect']} {v1['seconds']}")
        self.assertEqual(out[1], f"{v2['expect']} {v2['seconds']}")
        cases = []
        for r in catalog.verdicts():
            c = f"{r['scenario']}:{r['mode']}:{r['variant']}"
            if r["mode"] != "kthread" and c not in cases:
                cases.append(c)
        self.assertEqual(out[2:2 + len(cases)], cases)
        self.assertEqual(out[2 + len(cases):],
                         [f"{s['name']} {s['expect']} {s['args']}" for s in catalog.storms()
                          if "compare" in s["sets"]])
        # with a tree's expectation file, its storm rows decide
        for v in ("6.1", "6.12"):
            path = expect.path_for(v)
            out = subprocess.run(["sh", "-c", f"HERE={os.path.join(TOP, 'selftests')}; . {lib}; "
                                  f"EXPECT={path}; storms check"],
                                 capture_output=True, text=True, check=True).stdout.splitlines()
            want = expect.storm_expectations(path)
            self.assertEqual(out, [f"{s['name']} {want[s['name']]} "
                                   f"{s['args']}" for s in catalog.storms()
                                   if "check" in s["sets"]])
            self.assertIn(f"eventfd-wait {'anomaly' if v == '6.12' else 'clean'} ",
                          "\n".join(out))


class MissingPrerequisite(unittest.TestCase):
    """A prerequisite that is absent: a SKIP in a lab's collection, a failure
    where uringrace itself runs the tests (URINGRACE_MUST_RUN=1)."""

    def run_missing(self, must):
        lib = os.path.join(TOP, "selftests", "lib.sh")
        env = dict(os.environ, URINGRACE_MUST_RUN=must)
        return subprocess.run(["sh", "-c", f"HERE=/nonexistent; . {lib}; missing 'no driver'"],
                              capture_output=True, text=True, env=env, check=False)

    def test_skip_in_a_lab(self):
        res = self.run_missing("0")
        self.assertEqual(4, res.returncode)
        self.assertEqual("1..0 # SKIP no driver", res.stdout.strip())

    def test_failure_in_our_runs(self):
        res = self.run_missing("1")
        self.assertEqual(1, res.returncode)
        self.assertIn("not ok 1 no driver", res.stdout)


if __name__ == "__main__":
    unittest.main()
