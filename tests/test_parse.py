"""The console and KTAP parsers against real guest logs saved from both arches
(tests/logs/, written by 'make run' on this machine)."""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts"))
from uringrace import parse, qemu, report  # noqa: E402


def log(name):
    with open(os.path.join(HERE, "logs", name), encoding="utf-8") as f:
        return f.read()


class Arm64Reports(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.con = parse.parse_console(log("arm64-6.12-scenarios.console"))

    def test_every_report_found_and_charged(self):
        reps = self.con["reports"]
        self.assertEqual(len(reps), 11)
        self.assertTrue(all(r["test"].startswith("scenarios") for r in reps))
        self.assertEqual([t["name"] for t in self.con["tests"]],
                         ["io_uring_nop", "control", "scenarios"])
        self.assertEqual(self.con["tests"][1]["rc"], 1)

    def test_reordered_read_in_sq_head(self):
        rep = next(r for r in self.con["reports"] if "ur_io_sq_thread" in r["title"])
        self.assertEqual(rep["functions"], ["ur_io_sq_thread", "ur_sq_app_submit"])
        self.assertEqual(rep["time"], 25.342798)
        w, rd = rep["accesses"]
        self.assertEqual((w["type"], w["size"], w["task"], w["cpu"], w["marked"],
                          w["reordered"]), ("write", 8, 131, 0, False, False))
        self.assertEqual((rd["type"], rd["size"], rd["task"], rd["cpu"], rd["reordered"]),
                         ("read", 8, 130, 1, True))
        self.assertEqual(rd["reordered_to"], "ur_io_sq_thread+0x154")
        self.assertEqual(w["stack"][0], {"fn": "ur_sq_app_submit", "off": "0xbc",
                                         "len": "0x118", "module": "uringrace"})
        self.assertEqual([f["fn"] for f in rd["stack"]],
                         ["ur_io_sq_thread", "ur_thread_main", "kthread", "ret_from_fork"])
        self.assertEqual(rep["reporter"], {"cpu": 1, "pid": 130, "comm": "ur/sq_head/sqth"})

    def test_groups_by_title(self):
        groups = report.kcsan_groups(self.con["reports"])
        counts = {g["title"].split(" in ", 1)[1]: g["count"] for g in groups}
        self.assertEqual(counts["ur_io_sq_thread [uringrace] / ur_sq_app_submit [uringrace]"],
                         5)
        self.assertEqual(sum(counts.values()), 11)


class X86Reports(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.con = parse.parse_console(log("x86_64-6.12-scenarios.console"))

    def test_unknown_origin_is_boot_noise_with_value_change(self):
        rep = self.con["reports"][0]
        self.assertEqual(rep["test"], "boot")
        self.assertTrue(rep["unknown_origin"])
        self.assertEqual(rep["functions"], ["virtqueue_get_buf_ctx_split"])
        self.assertEqual(len(rep["accesses"]), 1)
        acc = rep["accesses"][0]
        self.assertEqual((acc["type"], acc["size"], acc["task"], acc["cpu"]), ("read", 2, 1, 0))
        self.assertEqual(acc["stack"][2]["fn"], "__send_control_msg.isra.0")
        self.assertEqual(rep["value_change"], ["0x0003", "0x0004"])

    def test_other_subsystems_are_reports_too(self):
        titles = {r["title"] for r in self.con["reports"]}
        scopes = {report.scope(r) for r in self.con["reports"]
                  if "hrtimer" in r["title"] or "virtqueue" in r["title"]}
        self.assertEqual(scopes, {"other"})
        self.assertTrue(all(report.scope(r) == "uringrace" for r in self.con["reports"]
                            if "ur_" in r["title"]))
        self.assertIn("data-race in __hrtimer_run_queues / hrtimer_active", titles)
        self.assertEqual(len(self.con["reports"]), 18)
        self.assertEqual(self.con["init_time"], 4.561501)


class Ktap(unittest.TestCase):
    def test_nested_results_and_skip(self):
        tree = parse.parse_ktap(log("arm64-6.12-scenarios.ktap"))
        self.assertEqual(tree["plan"], 3)
        names = [r["name"] for r in tree["subtests"]]
        self.assertEqual(names, ["selftests: uringrace: io_uring_nop",
                                 "selftests: uringrace: control",
                                 "selftests: uringrace: scenarios"])
        control = tree["subtests"][1]
        self.assertFalse(control["ok"])
        failed = [s["name"] for s in control["subtests"] if not s["ok"]]
        self.assertEqual(failed, ["dev.second_start_is_busy"])
        scen = tree["subtests"][2]
        skips = [s["name"] for s in scen["subtests"] if s["directive"] == "SKIP"]
        self.assertEqual(len(skips), 2)
        self.assertEqual(parse.ktap_summary(tree),
                         {"passed": 2, "failed": 1, "skipped": 0, "missing": 0})

    def test_missing_results_count_as_failures(self):
        tree = parse.parse_ktap("TAP version 13\n1..3\nok 1 a\n")
        self.assertEqual(parse.ktap_summary(tree)["failed"], 2)


class SavedOutcomes(unittest.TestCase):
    def test_saved_panic_log_is_a_panic(self):
        self.assertEqual(qemu.classify(log("x86_64-6.12-panic.console"), None, False)[0],
                         "panic")

    def test_saved_passing_log_needs_its_status(self):
        con = log("x86_64-6.12-selftests.console")
        self.assertEqual(qemu.classify(con, "0\n", False)[0], "pass")
        self.assertEqual(qemu.classify(con, None, False)[0], "no-status")


if __name__ == "__main__":
    unittest.main()


class Real61IoWq(unittest.TestCase):
    """Debian 6.1 under the driver's io-wq storm: the seed 004 race on real
    code (worker->flags, plain |=/&= vs test), with 6.1's report format."""

    @classmethod
    def setUpClass(cls):
        cls.con = parse.parse_console(log("x86_64-6.1-real-iowq.console"))

    def test_the_seed_race_is_found_in_io_wq(self):
        reps = [r for r in self.con["reports"]
                if r["functions"] == ["io_worker_handle_work", "io_wqe_activate_free_worker"]]
        self.assertEqual(len(reps), 4)
        rep = reps[0]
        self.assertEqual(report.scope(rep), "io_uring")
        syscall = dict(rep, title="data-race in __x64_sys_io_uring_enter / percpu_counter_add",
                       functions=["__x64_sys_io_uring_enter", "percpu_counter_add"],
                       accesses=[])
        self.assertEqual(report.scope(syscall), "io_uring")
        self.assertEqual(report.scope(dict(syscall, functions=["kfree", "slob_page_alloc"])),
                         "other")
        self.assertEqual(rep["test"], "real_uring.sh/iowq_via_raw_threads_4")
        rd, wr = rep["accesses"]
        self.assertEqual((rd["type"], rd["size"], rd["task"], rd["cpu"]), ("read", 4, 770, 1))
        self.assertEqual((wr["type"], wr["size"], wr["task"], wr["cpu"]), ("write", 4, 792, 0))
        self.assertEqual(rd["addr"], wr["addr"])
        self.assertEqual(rd["stack"][0]["fn"], "io_wqe_activate_free_worker")
        self.assertEqual(wr["stack"][:2], [
            {"fn": "io_worker_handle_work", "off": "0x983", "len": "0xc10", "module": None},
            {"fn": "io_wqe_worker", "off": "0x5ce", "len": "0x910", "module": None}])
        self.assertEqual(rep["reporter"], {"cpu": 0, "pid": 792, "comm": "iou-wrk-770"})

    def test_groups_split_module_io_uring_and_other(self):
        groups = report.kcsan_groups(self.con["reports"])
        by_scope = {}
        for g in groups:
            by_scope[g["scope"]] = by_scope.get(g["scope"], 0) + g["count"]
        self.assertEqual(by_scope, {"uringrace": 5, "io_uring": 29, "other": 1})


class CompareScope(unittest.TestCase):
    """make compare's A side (6.1): allocator races reached from io_uring
    paths are other subsystems' races, not io_uring's."""

    def test_slob_races_are_other(self):
        con = parse.parse_console(log("x86_64-6.1-compare-storms.console"))
        scopes = {g["title"]: g["scope"] for g in report.kcsan_groups(con["reports"])}
        self.assertEqual(scopes["data-race in kfree / slob_page_alloc"], "other")
        self.assertEqual(scopes["data-race in copy_creds / io_prep_async_work"], "io_uring")
        self.assertEqual(
            scopes["data-race in io_worker_handle_work / io_wqe_activate_free_worker"],
            "io_uring")
        first = min(r["time"] for r in con["reports"]
                    if r["functions"] == ["io_worker_handle_work",
                                          "io_wqe_activate_free_worker"])
        # the seed 004 race, within about a second of /init in this run
        self.assertLess(first - con["init_time"], 10)


class MarkersInsideAReport(unittest.TestCase):
    def test_a_start_marker_printed_inside_a_report_block_counts(self):
        # arm64 check, 2026-11-28: the marker of expectations.sh came from the
        # other CPU between a KCSAN report's frames and was not seen
        from uringrace import parse
        text = """[  474.554472] uringrace: test-end 6 real_uring.sh rc=0
[  474.590367] ==================================================================
[  474.592546] BUG: KCSAN: data-race in __hrtimer_run_queues / hrtimer_active
[  474.594620]
[  474.595214] read to 0xfff000007feb5cd8 of 8 bytes by interrupt on cpu 1:
[  474.596827]  hrtimer_active+0x70/0xf8
[  474.603492] uringrace: test-start 7 expectations.sh
[  474.603461]  arch_timer_handler_virt+0x4c/0x60
[  474.604000]
[  474.605000] write to 0xfff000007feb5cd8 of 8 bytes by interrupt on cpu 0:
[  474.606000]  __hrtimer_run_queues+0x220/0x4b4
[  474.607000] ==================================================================
"""
        con = parse.parse_console(text)
        self.assertEqual(["expectations.sh"], [t["name"] for t in con["tests"]])
        rep = con["reports"][0]
        self.assertEqual("between-tests", rep["test"])
        self.assertNotIn("test-start", "\n".join(rep["lines"]))
