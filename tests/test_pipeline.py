"""Host tests of the pipeline steps that need no guest: classifier, cpio
writer, fragment validation."""

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "scripts"))
from uringrace import initramfs, kbuild, qemu  # noqa: E402
from uringrace.config import ArchConfig, Settings  # noqa: E402
from uringrace.common import REPO  # noqa: E402
from uringrace.records import Outcome  # noqa: E402

BOOTED = "[    8.0] uringrace: init started\n"


class Configuration(unittest.TestCase):
    """The run's configuration is read once, typed, and refuses bad input."""

    def test_arch_records(self):
        for arch in ("x86_64", "arm64"):
            rec = ArchConfig.load(arch)
            self.assertEqual(rec.arch, arch)
            self.assertTrue(rec.qemu and rec.kimage and rec.ktargets)
            self.assertFalse(any("lockdep" in f for f in rec.fragments))
            self.assertTrue(ArchConfig.load(arch, lockdep=True).fragments[-1]
                            .endswith("Kconfig.fragment.lockdep"))
        from uringrace.common import PipelineError
        with self.assertRaisesRegex(PipelineError, "unknown ARCH"):
            ArchConfig.load("riscv")

    def test_environment_read_once_into_settings(self):
        from uringrace.common import PipelineError
        keep = dict(os.environ)
        try:
            os.environ.update(ARCHES="x86_64,arm64", JOBS="3", KCSAN_ARGS="none", LOCKDEP="1",
                              KVER_B="6.1", EXPECT_A="x.txt")
            cfg = Settings.defaults_from_env()
            self.assertEqual(cfg.arch, ("x86_64", "arm64"))
            self.assertEqual((cfg.jobs, cfg.kcsan_args, cfg.lockdep), (3, "", True))
            self.assertEqual(cfg.side_a, (None, "6.1", "x.txt"))
            self.assertEqual(cfg.side_b, (None, "6.1", None))
            self.assertEqual(cfg.for_tree("/k", "6.9").ksrc, "/k")
            self.assertIn("lockdep", cfg.arch_config("arm64").fragments[-1])
            os.environ["JOBS"] = "two"
            with self.assertRaisesRegex(PipelineError, "JOBS=two"):
                Settings.defaults_from_env()
        finally:
            os.environ.clear()
            os.environ.update(keep)

    def test_outcome_is_typed_and_prints_as_its_name(self):
        self.assertIs(qemu.classify(BOOTED, "0\n", False)[0], Outcome.PASS)
        self.assertEqual(f"{Outcome.BOOT_FAILURE}", "boot-failure")


class PatchedTree(unittest.TestCase):
    """Tree B = A + patches: A untouched, a patch that does not apply stops
    with its name and leaves nothing behind."""

    def test_apply_and_refuse(self):
        from uringrace import tree
        from uringrace.common import PipelineError
        with tempfile.TemporaryDirectory() as d:
            a = os.path.join(d, "a")
            os.makedirs(os.path.join(a, "kernel"))
            with open(os.path.join(a, "kernel", "f.c"), "w", encoding="utf-8") as f:
                f.write("one\ntwo\n")
            good = os.path.join(d, "good.patch")
            with open(good, "w", encoding="utf-8") as f:
                f.write("--- a/kernel/f.c\n+++ b/kernel/f.c\n@@ -1,2 +1,2 @@\n one\n-two\n+2\n")
            bad = os.path.join(d, "bad.patch")
            with open(bad, "w", encoding="utf-8") as f:
                f.write("--- a/kernel/f.c\n+++ b/kernel/f.c\n@@ -1,2 +1,2 @@\n one\n-zwei\n+2\n")
            os.utime(a, (0, 0))  # A unpacked long ago
            b, ident = tree.patched(a, "path:a", [good])
            # B is new (kbuild.evict_patched removes trees long unused), not A's age
            self.assertGreater(os.path.getmtime(b), time.time() - 60)
            self.assertTrue(ident.startswith("path:a+patch:"))
            with open(os.path.join(b, "kernel", "f.c"), encoding="utf-8") as f:
                self.assertEqual("one\n2\n", f.read())
            with open(os.path.join(a, "kernel", "f.c"), encoding="utf-8") as f:
                self.assertEqual("one\ntwo\n", f.read())
            self.assertEqual((b, ident), tree.patched(a, "path:a", [good]))  # cached
            # only the patched file is B's own: the one made newer than A's
            # objects before B's first build
            with open(os.path.join(a, "kernel", "g.c"), "w", encoding="utf-8") as f:
                f.write("three\n")
            os.link(os.path.join(a, "kernel", "g.c"), os.path.join(b, "kernel", "g.c"))
            self.assertEqual([os.path.join(b, "kernel", "f.c")], tree.changed_files(b, a))
            os.unlink(os.path.join(a, "kernel", "g.c"))
            os.unlink(os.path.join(b, "kernel", "g.c"))
            with self.assertRaisesRegex(PipelineError, "bad.patch does not apply"):
                tree.patched(a, "path:a", [bad])
            with self.assertRaisesRegex(PipelineError, "no such file"):
                tree.patched(a, "path:a", [os.path.join(d, "missing.patch")])
            self.assertEqual(sorted(os.listdir(d)), sorted(["a", os.path.basename(b),
                                                            "good.patch", "bad.patch"]))

    def test_compare_names_a_missing_patch_before_any_run(self):
        from uringrace import cli
        from uringrace.common import PipelineError
        with tempfile.TemporaryDirectory() as d:
            args = dataclasses.replace(Settings.defaults_from_env(), out=d,
                                       patches=(os.path.join(d, "missing.patch"),))
            with self.assertRaisesRegex(PipelineError, "missing.patch: no such file"):
                cli.cmd_compare(args)
            self.assertEqual([], os.listdir(d))  # no run directory, no guest

    def test_make_runs_at_a_paths_only_for_a_patched_build(self):
        from uringrace import kbuild
        self.assertEqual(["make", "x"], kbuild.in_place_of((), ["make", "x"]))
        cmd = kbuild.in_place_of((("/b/src", "/a/src"), ("/b/obj", "/a/obj")), ["make", "x"])
        self.assertEqual(cmd[:2], ["unshare", "--mount"])
        self.assertIn("mount --bind /b/src /a/src && mount --bind /b/obj /a/obj", cmd[-4])
        self.assertEqual(cmd[-2:], ["make", "x"])


class PatchedCopies(unittest.TestCase):
    """Tree B object copies (0.3-0.5 GB each, one per mutant) are bounded:
    the whole 6.1 catalog once filled this machine's disk with them."""

    def setUp(self):
        self.old = os.environ.get("URINGRACE_CACHE")
        self.tmp = tempfile.TemporaryDirectory()
        os.environ["URINGRACE_CACHE"] = self.tmp.name
        self.root = os.path.join(self.tmp.name, "kbuild")
        os.makedirs(self.root)

    def tearDown(self):
        if self.old is None:
            os.environ.pop("URINGRACE_CACHE")
        else:
            os.environ["URINGRACE_CACHE"] = self.old
        self.tmp.cleanup()

    def tree(self, name, used):
        path = os.path.join(self.root, name)
        os.makedirs(path)
        open(os.path.join(path, "vmlinux"), "w").close()
        open(path + ".lock", "w").close()
        os.utime(path + ".lock", (used, used))
        return path

    def test_the_newest_used_are_kept(self):
        a = self.tree("x86_64-linux-source-6.1_6.1.192-3-1ab1e329a896", 1)  # a tree A
        old = [self.tree(f"x86_64--source-6.1_6.1.192-3+patch_{i:012x}-k{i}", 100 + i)
               for i in range(5)]
        now = os.path.join(self.root, "x86_64--source-6.1_6.1.192-3+patch_new-kn")
        half = self.tree("arm64--source-6.12+patch_cut-kc", 500) + ".partial"
        os.rename(half[:-len(".partial")], half)
        gone = kbuild.evict_patched(3, spare=now)
        self.assertEqual(sorted(gone), sorted(old[:3] + [half]))
        self.assertTrue(all(os.path.isdir(p) for p in old[3:] + [a]))
        # one in use (its lock held: being built or booted) stays
        with open(old[3] + ".lock", "a") as f:
            kbuild.fcntl.flock(f, kbuild.fcntl.LOCK_EX)
            self.assertEqual([old[4]], kbuild.evict_patched(0))
        self.assertTrue(os.path.isdir(old[3]) and os.path.isdir(a))

    def test_what_was_made_for_a_copy_goes_with_it(self):
        from uringrace.records import KernelBuild
        src = os.path.join(self.tmp.name, "src")
        ptree = [os.path.join(src, f"linux-6.1+p{i:012x}") for i in range(3)]
        for p in ptree:
            os.makedirs(os.path.join(p, "kernel"))
            os.utime(p, (0, 0))  # long unused
        b = [self.tree(f"x86_64--6.1+patch_{i:012x}-{i:012x}", 100 + i) for i in range(3)]
        arm = self.tree("arm64--6.1+patch_000000000002-0000000000a2", 50)
        for path, p in zip(b + [arm], ptree + [ptree[2]]):
            with open(os.path.join(path, kbuild.SRC_NOTE), "w") as f:
                f.write(p + "\n")
        work = [os.path.join(self.tmp.name, "work", f"x86_64-{i:012x}-c0ffee00")
                for i in range(3)]
        # a copy removed before copies took their builds along, and the driver's
        left = os.path.join(self.tmp.name, "work", "arm64-0000000000ff-c0ffee00")
        driver = os.path.join(self.tmp.name, "work", "x86_64-user-c0ffee00")
        for w in work + [left, driver]:
            os.makedirs(w)
        orphan = os.path.join(src, "linux-6.1+p00000000000f")  # named by no copy
        os.makedirs(orphan)
        os.utime(orphan, (0, 0))
        fresh = os.path.join(src, "linux-6.1+p00000000000e")  # another run's, just made
        os.makedirs(fresh)
        tree_a = os.path.join(src, "linux-6.1")  # a note naming what patched() did not make
        os.makedirs(tree_a)
        os.utime(tree_a, (0, 0))
        odd = self.tree("x86_64--6.1+patch_00000000000d-00000000000d", 1)
        with open(os.path.join(odd, kbuild.SRC_NOTE), "w") as f:
            f.write(tree_a + "\n")
        gone = kbuild.evict_patched(1)
        # arm64's copy of mutant 2 names ptree[2] too, so that one stays
        self.assertEqual(sorted(gone), sorted([b[0], b[1], arm, odd, work[0], work[1], left,
                                               ptree[0], ptree[1], orphan]))
        self.assertTrue(all(os.path.isdir(p) for p in (b[2], work[2], ptree[2], fresh, tree_a,
                                                       driver)))
        # a copy this process boots (in_use) stays until it is let go
        info = KernelBuild(src=ptree[2], identity="i", arch="x86_64", key="k", objdir=b[2],
                           image="", vmlinux="", seconds=0.0, compiled=0,
                           binds=((ptree[2], src), (b[2], b[0])))
        kbuild.in_use(info)
        try:
            self.assertEqual([], kbuild.evict_patched(0))
        finally:
            kbuild.in_use(info, False)
        self.assertEqual(sorted([b[2], work[2], ptree[2]]), sorted(kbuild.evict_patched(0)))

    def test_other_configs_of_a_tree_are_bounded(self):
        def build(name, used):
            path = os.path.join(self.root, name)
            os.makedirs(path)
            open(os.path.join(path, ".lock"), "w").close()
            os.utime(os.path.join(path, ".lock"), (used, used))
            return path
        group = "x86_64-linux-source-6.1_6.1.192-3-"
        now = build(group + "1ab1e329a896", 10)  # the one being built
        olds = [build(group + f"{i:012x}", 100 + i) for i in range(4)]
        other = [build("arm64-linux-source-6.1_6.1.192-3-000000000001", 1),
                 build("x86_64-linux-source-6.12_6.12.117-1_deb12u1-000000000002", 1),
                 self.tree(group[:-1] + "+patch_000000000003-000000000004", 1)]
        w = os.path.join(self.tmp.name, "work", f"x86_64-{olds[0][-12:]}-c0ffee00")
        os.makedirs(w)
        self.assertEqual(sorted([olds[0], olds[1], w]), sorted(kbuild.evict_configs(now, 3)))
        self.assertTrue(all(os.path.isdir(p) for p in [now] + olds[2:] + other))

    def test_a_copy_the_disk_cannot_hold_is_refused_first(self):
        from uringrace.common import PipelineError
        kbuild.room_for(self.root, 1 << 20, "a small copy")
        with self.assertRaisesRegex(PipelineError, "needs 1073741824 MiB .* free in .*nothing was "
                                    "copied"):
            kbuild.room_for(self.root, 1 << 50, "tree B's copy")
        src = self.tree("x86_64-a", 0)
        with open(os.path.join(src, "obj.o"), "wb") as f:
            f.write(b"o" * 10000)
        os.link(os.path.join(src, "obj.o"), os.path.join(src, "same.o"))
        once = os.lstat(os.path.join(src, "obj.o")).st_blocks * 512
        self.assertEqual(once, kbuild.tree_bytes(src))  # a hard link counted once

class MutantCatalog(unittest.TestCase):
    """Every row of every catalog applies to its tree: each 'before' line
    occurs exactly once in its file (else the row is stale)."""

    def test_rows_apply_once(self):
        from uringrace import mutants, mutate, tree
        from uringrace.common import PipelineError
        cat = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "mutants")
        for name in sorted(os.listdir(cat)):
            ms = mutants.load(os.path.join(cat, name))
            self.assertTrue(ms, name)
            src, _ = tree.debian_tree(name[:-len(".txt")])
            for m in ms:
                mutate.storm_args(m.storms)  # every storm it names exists
                text = mutants.apply(m, src)
                for before, after in m.pairs:
                    self.assertIn(after, text, m.id)
            stale = mutants.Mutant("x", ms[0].file, ("s",), "b", "kcsan", "",
                                   (("no such line in any tree", "x"),))
            with self.assertRaisesRegex(PipelineError, "occurs 0 times"):
                mutants.apply(stale, src)

    def test_in_function_picks_one_of_two_equal_lines(self):
        from uringrace import mutants
        from uringrace.common import PipelineError
        text = ("static int f(void);\nstatic int f(void)\n{\n\tx = READ_ONCE(t);\n}\n"
                "int g(int a)\n{\n\tx = READ_ONCE(t);\n}\n")
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "k.c"), "w", encoding="utf-8") as f:
                f.write(text)
            pair = (("\tx = READ_ONCE(t);", "\tx = t;"),)
            m = mutants.Mutant("m", "k.c", ("s",), "b", "kcsan", "", pair, "g")
            self.assertEqual(text.replace("{\n\tx = READ_ONCE(t);\n}\n", "{\n\tx = t;\n}\n")
                             .replace("\tx = t;", "\tx = READ_ONCE(t);", 1), mutants.apply(m, d))
            with self.assertRaisesRegex(PipelineError, "occurs 2 times in k.c"):
                mutants.apply(mutants.Mutant("m", "k.c", ("s",), "b", "kcsan", "", pair), d)
            with self.assertRaisesRegex(PipelineError, "function h is defined 0 times"):
                mutants.apply(mutants.Mutant("m", "k.c", ("s",), "b", "kcsan", "", pair, "h"), d)

    def test_bad_rows_are_refused_with_their_line(self):
        from uringrace import mutants
        from uringrace.common import PipelineError
        for text, why in (("mutant a file f storm s\nbreaks b\nclass kcsan\n-x\n", "pairs"),
                          ("mutant a file f\n", "want 'mutant ID"),
                          ("mutant a file f storm s\nbreaks b\nclass maybe\n-x\n+y\n",
                           "class must be"),
                          ("-x\n", "outside a mutant"),
                          ("mutant a file f storm s,t,u\nbreaks b\nclass kcsan\n-x\n+y\n",
                           "at most 2 storms"),
                          ("mutant a-emulated file f storm s\nbreaks b\nclass emulated\n-x\n+y\n",
                           "needs class emulated and its mutant a")):
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
                f.write(text)
            try:
                with self.assertRaisesRegex(PipelineError, why):
                    mutants.load(f.name)
            finally:
                os.unlink(f.name)


class MutantScore(unittest.TestCase):
    def test_caught_missed_not_observable_no_work(self):
        from uringrace import mutants, mutate
        from uringrace.records import Side

        # the flags race's report has a frame at the mutated line
        at = {"f.c:7": "io_wq_worker_running"}
        report = {"title": "f", "test": "uringrace/iowq-raw", "t_workload": 3.5,
                  "accesses": [{"stack": [{"fn": "io_wq_worker_running",
                                           "where": ["f.c:7 (io_wq_worker_running)"]}]}]}

        def side(titles, ops=100, anomalies=()):
            return Side(outcomes=[{"outcome": "pass"}], titles=titles, events=[],
                        reports=[report],
                        workloads={"iowq-raw": {"ops_per_s": [ops],
                                                "anomalies": list(anomalies)}})
        prep = {"id": "prep-async-work", "title": "p", "scope": "io_uring",
                "by_workload": {"iowq-raw": {}}}
        flags = dict(prep, id="iowq-worker-flags", title="f")
        m = mutants.Mutant("m", "f.c", ("iowq-raw",), "b", "kcsan", "", (("x", "y"),))
        flags["by_workload"] = {"iowq-raw": {"count": 1, "first_s": 3.5}}
        a = side([prep])
        hit = mutate.score(m, a, side([prep, flags]), at)
        self.assertEqual(("caught", True, 3.5), (hit["verdict"], hit["kcsan"], hit["first_s"]))
        self.assertEqual("missed", mutate.score(m, a, side([prep]), at)["verdict"])
        odd = mutate.score(m, a, side([prep], anomalies=[{"x": 2}]), at)
        self.assertEqual(("caught", False), (odd["verdict"], odd["kcsan"]))
        self.assertEqual("no work", mutate.score(m, a, side([prep, flags], ops=0), at)["verdict"])
        hidden = mutants.Mutant("m", "f.c", ("iowq-raw",), "b", "not-observable", "TSO",
                                (("x", "y"),))
        self.assertEqual("not observable here",
                         mutate.score(hidden, a, side([prep, flags]), at)["verdict"])

    def test_assembled_score_takes_each_mutants_newest_run_with_todays_storms(self):
        import json
        from uringrace import mutants, mutate
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        cat = [mutants.Mutant("a", "f.c", ("s1",), "b", "kcsan", "", (("x", "y"),)),
               mutants.Mutant("b", "f.c", ("s2",), "b", "kcsan", "", (("x", "y"),)),
               mutants.Mutant("c", "f.c", ("s1",), "b", "kcsan", "", (("x", "y"),)),
               mutants.Mutant("h", "f.c", ("s1",), "b", "not-observable", "TSO",
                              (("x", "y"),))]

        def run(name, tree, rows, finished=True):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            if rows is not None:
                with open(os.path.join(d, "mutate.json"), "w", encoding="utf-8") as f:
                    json.dump({"tree": tree, "storm_seconds": 30, "finished": finished, "rows": [
                        {"arch": "x86_64", "mutant": m, "class": "kcsan", "storms": st,
                         "real": None, "emulated": None, "verdict": v, "first_s": None}
                        for m, st, v in rows]}, f)
            return d
        dirs = [run("mutate-1", "6.12.1", [("a", ["s1"], "missed"), ("b", ["s2"], "caught")]),
                run("mutate-2", "6.12.1", [("a", ["s1"], "caught"), ("c", ["s0"], "caught")]),
                run("mutate-3", "6.1.9", [("b", ["s2"], "missed")]),  # another tree
                run("mutate-4", "6.12.1", None),                      # no JSON at all
                run("mutate-5", "6.12.1", [("b", ["s2"], "missed")], finished=False)]
        rows, used = mutate.assembled_rows(dirs, "6.12.1", cat)
        got = {r["mutant"]: (r["verdict"], r["run"]) for r in rows}
        self.assertEqual(("caught", "mutate-2"), got["a"])          # the newest run
        self.assertEqual(("missed", "mutate-5 (cut short)"), got["b"])  # what it scored counts
        self.assertEqual("not run", got["c"][0])                    # its storms changed
        self.assertIn("mutate-2", got["c"][1])
        self.assertEqual("not observable here", got["h"][0])
        self.assertEqual(["mutate-1", "mutate-2", "mutate-5 (cut short)"], used)
        self.assertIn("1 of 4 mutants caught", mutate.summary(rows, "x86_64"))

    def test_a_race_a_shows_too_counts_per_report_site(self):
        # 6.1: the io-wq flags race is in A (io_worker_handle_work, line 510);
        # a mutant of line 464 of that function that B reports at 464 is a
        # catch, one B reports only at 510 (or that A reports at 464) is not
        from uringrace import mutants, mutate
        from uringrace.records import Side
        at = {"io-wq.c:464": "io_worker_handle_work"}

        def rep(line, t):
            return {"title": "f", "test": "uringrace/iowq-raw", "t_workload": t,
                    "accesses": [{"stack": [{"fn": "io_worker_handle_work",
                                             "where": [f"io_uring/io-wq.c:{line}"]}]}]}

        def side(*reports):
            return Side(outcomes=[{"outcome": "pass"}], events=[], reports=list(reports),
                        titles=[{"id": "iowq-worker-flags", "title": "f", "scope": "io_uring",
                                 "by_workload": {"iowq-raw": {"count": len(reports),
                                                              "first_s": 1.0}}}],
                        workloads={"iowq-raw": {"ops_per_s": [100], "anomalies": []}})
        m = mutants.Mutant("m", "io_uring/io-wq.c", ("iowq-raw",), "b", "kcsan", "",
                           (("x", "y"),))
        a = side(rep(510, 1.0))
        hit = mutate.score(m, a, side(rep(510, 1.0), rep(464, 7.25)), at)
        self.assertEqual(("caught", 7.25), (hit["verdict"], hit["first_s"]))
        self.assertIn("iowq-worker-flags at io-wq.c:464 (also in A", hit["detail"])
        self.assertEqual("missed", mutate.score(m, a, side(rep(510, 2.0)), at)["verdict"])
        both = side(rep(510, 1.0), rep(464, 2.0))
        self.assertEqual("missed", mutate.score(m, both, side(rep(464, 7.25)), at)["verdict"])

    def test_a_crash_in_io_uring_code_is_a_catch_and_one_elsewhere_is_not(self):
        from uringrace import mutants, mutate
        from uringrace.records import Side
        oops = ("[   36.8] BUG: kernel NULL pointer dereference, address: 0000000000000020\n"
                "[   36.8] RIP: 0010:{fn}+0x95/0x890\n[   36.8] Call Trace:\n"
                "[   36.8]  {caller}+0x3d/0x130\n[   36.9] Kernel panic - not syncing: Fatal\n")
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)

        def side(outcome, text):
            d = tempfile.mkdtemp(dir=tmp)
            with open(os.path.join(d, "console.log"), "w", encoding="utf-8") as f:
                f.write(text)
            return Side(outcomes=[{"outcome": outcome, "dir": d}], titles=[], events=[],
                        reports=[], workloads={"s": {"ops_per_s": [], "anomalies": []}})
        m = mutants.Mutant("m", "f.c", ("s",), "b", "kcsan", "", (("x", "y"),))
        a = side("pass", "")
        got = mutate.score(m, a, side("panic", oops.format(fn="__io_read", caller="io_read")), {})
        self.assertEqual("caught", got["verdict"])
        self.assertIn("NULL pointer dereference", got["detail"])
        self.assertIn("at __io_read", got["detail"])
        # arm64's pc line, an io_uring caller only
        arm = oops.replace("RIP: 0010:", "pc : ").format(fn="memcpy", caller="io_issue_sqe")
        self.assertEqual("caught", mutate.score(m, a, side("panic", arm), {})["verdict"])
        # a crash with no io_uring on its stack, or one A has too: no verdict
        other = side("panic", oops.format(fn="virtqueue_get_buf", caller="vring_interrupt"))
        self.assertEqual("no work", mutate.score(m, a, other, {})["verdict"])
        both = side("panic", oops.format(fn="__io_read", caller="io_read"))
        self.assertEqual("no work", mutate.score(m, both, both, {})["verdict"])
        # a hang: the stacks guest/init dumps before the limit decide
        from uringrace.qemu import HANG_DUMP_MARK
        dump = (f"[  330.1] {HANG_DUMP_MARK} 330 s: blocked tasks and CPUs\n"
                "[  330.1] task:uringrace state:D stack:0 pid:64\n[  330.1] Call Trace:\n"
                "[  330.1]  __schedule+0x3d/0x130\n[  330.1]  ? {fn}+0x95/0x890\n")
        hung = mutate.score(m, a, side("hang", dump.format(fn="io_wq_exit_workers")), {})
        self.assertEqual("caught", hung["verdict"])
        self.assertIn("kernel hang", hung["detail"])
        self.assertIn("io_wq_exit_workers", hung["detail"])
        # io_uring frames before the dump (a KCSAN report), none in it: no verdict
        early = "[ 20.0]  io_wq_worker+0x10/0x20\n" + dump.format(fn="pipe_read")
        self.assertEqual("no work", mutate.score(m, a, side("hang", early), {})["verdict"])
        # a KCSAN report printed during the dump is not the dump's stacks
        from uringrace.parse import RULE
        report = (f"[ 330.2] BUG: KCSAN: data-race in io_wq_worker / io_wq_worker_running\n"
                  "[ 330.2]  io_wq_worker+0x10/0x20\n"
                  f"[ 330.2] {RULE}\n")
        amid = side("hang", dump.format(fn="pipe_read") + report)
        self.assertEqual("no work", mutate.score(m, a, amid, {})["verdict"])
        # the block layer's io_schedule is not io_uring's
        block = mutate.score(m, a, side("hang", dump.format(fn="io_schedule_timeout")), {})
        self.assertEqual("no work", block["verdict"])
        # a driver's thread's stack, as guest/init writes it to the kernel log
        own = (f"[ 330.1] {HANG_DUMP_MARK} 330 s\n[ 330.2] uringrace: stack of iou-wrk-64 70, "
               "state S\n[ 330.2]   io_wait_on_hash+0x8c/0x140\n")
        self.assertIn("io_wait_on_hash", mutate.score(m, a, side("hang", own), {})["detail"])
        # guest/init prints the mark qemu.py's readers look for
        with open(os.path.join(REPO, "guest", "init"), encoding="utf-8") as f:
            self.assertIn(HANG_DUMP_MARK, f.read().replace('"', "").replace("$DUMP_AFTER", "X"))

    def test_a_catch_must_be_at_the_mutated_code(self):
        from uringrace import mutants, mutate
        from uringrace.records import Side

        def rep(title, fn, where):
            return {"title": title, "test": "uringrace/s",
                    "accesses": [{"stack": [{"fn": fn, "where": where}]}]}
        here = {"id": "", "title": "race in f", "scope": "io_uring",
                "by_workload": {"s": {"count": 1, "first_s": 2.0}}}
        there = dict(here, title="race in g")
        b = Side(outcomes=[{"outcome": "pass"}], events=[], titles=[here, there],
                 workloads={"s": {"ops_per_s": [5], "anomalies": []}},
                 reports=[rep("race in f", "inl", ["/t/io_uring/x.c:9 (inl)",
                                                   "(inlined by) /t/io_uring/x.c:41 (f)"]),
                          rep("race in g", "g", ["io_uring/y.c:7 (g)"])])
        a = b.replace(titles=[], reports=[])
        m = mutants.Mutant("m", "io_uring/x.c", ("s",), "b", "kcsan", "", ())
        got = mutate.score(m, a, b, at={"io_uring/x.c:41": "f"})
        self.assertEqual("caught", got["verdict"])
        self.assertIn("race in f at io_uring/x.c:41", got["detail"])
        self.assertIn("not counted: race in g", got["detail"])
        only_g = mutate.score(m, a, b.replace(titles=[there]), at={"io_uring/x.c:41": "f"})
        self.assertEqual("missed", only_g["verdict"])
        by_fn = mutate.score(m, a, b.replace(titles=[there]), at={"io_uring/x.c:99": "g"})
        self.assertEqual("caught", by_fn["verdict"])

    def test_counted_pairs_a_mutant_with_its_emulated_form(self):
        from uringrace import mutate
        from uringrace.mutants import Mutant
        caught = {"verdict": "caught", "kcsan": False, "first_s": None, "detail": "3 anomalies"}
        missed = dict(caught, verdict="missed", detail="")
        idle = dict(caught, verdict="no work")

        def m(cls):
            return Mutant("m", "f.c", ("s",), "b", cls, "TSO" if cls != "kcsan" else "", ())
        self.assertEqual("caught", mutate.counted(m("kcsan"), caught, None))
        self.assertEqual("missed", mutate.counted(m("kcsan"), missed, caught))
        self.assertEqual("caught (emulated)", mutate.counted(m("emulated"), missed, caught))
        self.assertEqual("caught (emulated)", mutate.counted(m("not-observable"),
                                                             dict(missed, verdict="not observable here"),
                                                             caught))
        self.assertEqual("not observable here",
                         mutate.counted(m("not-observable"), dict(missed, verdict="not observable here"),
                                        missed))
        self.assertEqual("missed: no emulated form yet", mutate.counted(m("emulated"), missed, None))
        self.assertEqual("no work", mutate.counted(m("emulated"), missed, idle))

    def test_score_page_and_table(self):
        from uringrace import html, mutate, mutants
        ms = [mutants.Mutant("a", "f.c", ("s",), "b", "emulated", "", ()),
              mutants.Mutant("a-emulated", "f.c", ("s",), "b", "emulated", "", ()),
              mutants.Mutant("k", "f.c", ("s",), "b", "kcsan", "", ())]
        hit = {"verdict": "caught", "kcsan": True, "first_s": 2.0, "detail": "race <x>"}
        runs = {"a": dict(hit, verdict="missed", kcsan=False), "a-emulated": dict(hit, kcsan=False),
                "k": hit}
        rows = mutate.score_rows("x86_64", mutants.with_forms(ms), runs)
        self.assertEqual(["caught (emulated)", "caught"], [r["verdict"] for r in rows])
        self.assertIn("2 of 2 mutants caught (100 %); KCSAN alone 1 of 2",
                      mutate.summary(rows, "x86_64"))
        with tempfile.TemporaryDirectory() as d:
            with open(html.write_mutate(os.path.join(d, "m.html"), "6.12", rows, "8", []),
                      encoding="utf-8") as f:
                page = f.read()
        self.assertIn("race &lt;x&gt;", page)
        self.assertIn("caught (emulated)", page)


class BenchSb(unittest.TestCase):
    def test_a_form_the_model_allows_is_never_shown_as_safe(self):
        from uringrace import bench_sb
        allowed = {"workload": "sqpoll_aim", "fence_model": "allowed", "ops": 7000,
                   "seconds": 60.0, "anomalies": {"lost_wakeups": 0}}
        lost = dict(allowed, anomalies={"lost_wakeups": 18})
        safe = dict(allowed, fence_model="forbidden")
        self.assertEqual("allowed, not seen in 7000",
                         bench_sb._cell(allowed, "lost_wakeups", "min"))
        self.assertEqual("18.0/min (18 in 7000 tries)", bench_sb._cell(lost, "lost_wakeups", "min"))
        self.assertEqual("0.0/min (0 in 7000 tries)", bench_sb._cell(safe, "lost_wakeups", "min"))
        rows = bench_sb.table("host", [("aim none", allowed), ("aim on", safe)])
        self.assertIn("allowed, not seen in 7000", "\n".join(rows))
        # a header per platform, a row per form, libbpf's level-triggered poll
        self.assertEqual(len(rows), 3 + len(bench_sb.FORMS))
        self.assertTrue(rows[-1].startswith("   libbpf's ring_buffer__poll"))


class Classify(unittest.TestCase):
    def test_pass_needs_arrived_zero(self):
        self.assertEqual(qemu.classify(BOOTED, "0\n", False)[0], "pass")

    def test_nonzero_status_is_fail(self):
        out, code, _ = qemu.classify(BOOTED, "3\n", False)
        self.assertEqual((out, code), ("fail", 3))

    def test_no_status_is_never_pass(self):
        self.assertEqual(qemu.classify(BOOTED, None, False)[0], "no-status")
        self.assertEqual(qemu.classify(BOOTED, "", False)[0], "no-status")
        self.assertEqual(qemu.classify(BOOTED, "garbage", False)[0], "no-status")

    def test_timeout_is_hang(self):
        self.assertEqual(qemu.classify(BOOTED, None, True)[0], "hang")

    def test_panic_wins_over_status(self):
        con = BOOTED + "[ 9.1] Kernel panic - not syncing: sysrq triggered crash\n"
        self.assertEqual(qemu.classify(con, "0", False)[0], "panic")
        con = BOOTED + "[ 9.1] BUG: kernel NULL pointer dereference, address: 0\n"
        self.assertEqual(qemu.classify(con, "0", False)[0], "panic")

    def test_kcsan_report_is_not_a_panic(self):
        con = BOOTED + "[ 9.1] BUG: KCSAN: data-race in a / b\n"
        self.assertEqual(qemu.classify(con, "0", False)[0], "pass")

    def test_warning_during_tests_fails_a_zero(self):
        con = BOOTED + "[ 9.1] WARNING: CPU: 1 PID: 77 at kernel/x.c:1 f+0x1/0x2\n"
        self.assertEqual(qemu.classify(con, "0", False)[0], "fail")

    def test_no_init_is_boot_failure(self):
        self.assertEqual(qemu.classify("[0.0] Linux version\n", None, False)[0],
                         "boot-failure")
        self.assertEqual(qemu.classify("", None, True)[0], "hang")


class Cpio(unittest.TestCase):
    def test_kernel_format_round_trip(self):
        """cpio(1) reads back what the writer produced: names, modes, data."""
        with tempfile.TemporaryDirectory() as d:
            init = os.path.join(d, "init")
            with open(init, "w", encoding="utf-8") as f:
                f.write("#!/bin/sh\necho hi\n")
            payload = os.path.join(d, "p")
            with open(payload, "wb") as f:
                f.write(b"x" * 4097)
            out = initramfs.pack(os.path.join(d, "rd.cpio"), init, init,
                                 {"usr/lib/deep/dir/p": payload}, ["t1", "t2"],
                                 cmd=None)
            res = subprocess.run(["cpio", "-itv", "-F", out], capture_output=True,
                                 text=True, check=True)
            listing = res.stdout
            for name in ("init", "bin/busybox", "dev/console", "usr/lib/deep/dir/p",
                         "etc/uringrace/tests"):
                self.assertIn(name, listing)
            self.assertRegex(listing, r"crw------- .* 5,\s+1 .* dev/console")
            x = os.path.join(d, "x")
            os.mkdir(x)
            subprocess.run(["cpio", "-idm", "-F", out], cwd=x, check=True,
                           capture_output=True)
            with open(os.path.join(x, "usr/lib/deep/dir/p"), "rb") as f:
                self.assertEqual(f.read(), b"x" * 4097)
            with open(os.path.join(x, "etc/uringrace/tests"), encoding="utf-8") as f:
                self.assertEqual(f.read(), "t1\nt2\n")

    def test_missing_busybox_is_a_clear_error(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaisesRegex(Exception, "busybox"):
                initramfs.pack(os.path.join(d, "rd"), "/nonexistent/busybox", "/dev/null",
                               {}, [])


class ConfigValidation(unittest.TestCase):
    def test_dropped_and_changed_lines_are_listed(self):
        want = kbuild.wanted_lines(ArchConfig.load("x86_64"))
        self.assertTrue(any(s == "CONFIG_KCSAN" for s, _, _ in want))
        with tempfile.NamedTemporaryFile("w", suffix=".config", delete=False) as f:
            for sym, val, _ in want:
                if sym == "CONFIG_KCSAN_STRICT":
                    continue                      # dropped
                if sym == "CONFIG_KCSAN_REPORT_ONCE_IN_MS":
                    val = "3000"                  # changed
                if val != "n":
                    f.write(f"{sym}={val}\n")
        try:
            lost = kbuild.validate_config(f.name, ArchConfig.load("x86_64"))
        finally:
            os.unlink(f.name)
        self.assertEqual(len(lost), 2, lost)
        self.assertTrue(any("CONFIG_KCSAN_STRICT=y" in x and "is not set" in x for x in lost))
        self.assertTrue(any("REPORT_ONCE_IN_MS=3000" in x for x in lost))

    def test_complete_config_passes(self):
        with tempfile.NamedTemporaryFile("w", suffix=".config", delete=False) as f:
            for sym, val, _ in kbuild.wanted_lines(ArchConfig.load("arm64")):
                f.write(f"{sym}={val}\n")
        try:
            self.assertEqual(kbuild.validate_config(f.name, ArchConfig.load("arm64")), [])
        finally:
            os.unlink(f.name)


class TreeChecks(unittest.TestCase):
    def test_bad_trees_fail_before_any_build(self):
        from uringrace import tree
        from uringrace.common import PipelineError
        rec = ArchConfig.load("arm64")
        with self.assertRaisesRegex(PipelineError, "no such directory"):
            tree.check_tree("/nonexistent/linux", rec)
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaisesRegex(PipelineError, "not a kernel tree"):
                tree.check_tree(d, rec)
            for sub in ("scripts/kconfig", "arch/arm64", "kernel"):
                os.makedirs(os.path.join(d, sub))
            with open(os.path.join(d, "Kconfig"), "w", encoding="utf-8"):
                pass
            with open(os.path.join(d, "Makefile"), "w", encoding="utf-8") as f:
                f.write("VERSION = 5\nPATCHLEVEL = 4\nSUBLEVEL = 0\n")
            with open(os.path.join(d, "arch/arm64/Kconfig"), "w", encoding="utf-8") as f:
                f.write("config ARM64\n\tselect HAVE_ARCH_KASAN\n")
            with self.assertRaisesRegex(PipelineError, "no KCSAN support on arm64"):
                tree.check_tree(d, rec)


if __name__ == "__main__":
    unittest.main()


class SyncSources(unittest.TestCase):
    """The module's sources are copied by content, not by mtime: an older
    checkout's file replaces a newer different one, a scenario file the
    checkout no longer has is removed (kmod/Makefile builds every sc_*.c)."""

    def test_content_not_mtime(self):
        from uringrace import artifacts
        src, dst = tempfile.mkdtemp(), tempfile.mkdtemp()
        for d, files in ((src, {"main.c": "new", "same.h": "x", "Makefile": "m"}),
                         (dst, {"main.c": "old", "same.h": "x", "sc_gone.c": "g",
                                "uringrace.mod.c": "kbuild", "main.o": "obj"})):
            for n, text in files.items():
                with open(os.path.join(d, n), "w", encoding="utf-8") as f:
                    f.write(text)
        os.utime(os.path.join(src, "main.c"), (1, 1))  # older than the copy
        changed = artifacts.sync_sources(src, dst)
        self.assertEqual(sorted(changed), ["Makefile", "main.c", "sc_gone.c"])
        with open(os.path.join(dst, "main.c"), encoding="utf-8") as f:
            self.assertEqual("new", f.read())
        self.assertGreater(os.path.getmtime(os.path.join(dst, "main.c")), 1)
        self.assertEqual(sorted(os.listdir(dst)),
                         ["Makefile", "main.c", "main.o", "same.h", "uringrace.mod.c"])
        self.assertEqual([], artifacts.sync_sources(src, dst))


class GitTreeAsPatch(unittest.TestCase):
    """KSRC_B as a git tree: B's difference from A's commit as a patch that
    rebuilds B from A (tree.diff_as_patch), or the reason it cannot."""

    def git(self, d, *a):
        subprocess.run(["git", "-C", d, "-c", "user.name=u", "-c", "user.email=u@x"] + list(a),
                       check=True, capture_output=True)

    def test_b_rebuilt_from_a(self):
        from uringrace import tree
        with tempfile.TemporaryDirectory() as d:
            a, b, c = (os.path.join(d, x) for x in "abc")
            os.makedirs(os.path.join(a, "io_uring"))
            with open(os.path.join(a, "io_uring", "x.c"), "w", encoding="utf-8") as f:
                f.write("one\ntwo\n")
            self.git(d, "init", "-q", a)
            self.git(a, "add", ".")
            self.git(a, "commit", "-qm", "a")
            self.git(d, "clone", "-q", a, b)
            with open(os.path.join(b, "io_uring", "x.c"), "w", encoding="utf-8") as f:
                f.write("one\nTWO\n")
            with open(os.path.join(b, "io_uring", "new.c"), "w", encoding="utf-8") as f:
                f.write("new\n")
            patch, why = tree.diff_as_patch(a, b, os.path.join(d, "out"))
            self.assertIsNone(why)
            shutil.copytree(a, c)
            subprocess.run(["patch", "-p1", "-d", c, "-i", patch], check=True,
                           capture_output=True)
            for name in ("x.c", "new.c"):
                with open(os.path.join(b, "io_uring", name), encoding="utf-8") as f1, \
                        open(os.path.join(c, "io_uring", name), encoding="utf-8") as f2:
                    self.assertEqual(f1.read(), f2.read())
            with open(os.path.join(a, "io_uring", "x.c"), "a", encoding="utf-8") as f:
                f.write("dirty\n")
            self.assertIn("uncommitted", tree.diff_as_patch(a, b, d)[1])
            self.assertIn("not a git tree", tree.diff_as_patch(d, b, d)[1])


class FastSymbols(unittest.TestCase):
    """vmlinux frames placed by one nm and one addr2line (symbolize's fast
    path), with kallsyms' sizes: the distance to the next symbol."""

    def test_frame_to_line(self):
        from uringrace import symbolize
        with tempfile.TemporaryDirectory() as d:
            c = os.path.join(d, "t.c")
            with open(c, "w", encoding="utf-8") as f:
                f.write("int g;\n__attribute__((noinline)) void one(void)\n{\n"
                        "\tg = 1;\n}\n__attribute__((noinline)) void two(void)\n{\n"
                        "\tg = 2;\n}\nint main(void)\n{\n\tone();\n\ttwo();\n"
                        "\treturn 0;\n}\n")
            exe = os.path.join(d, "t")
            subprocess.run(["gcc", "-g", "-O1", "-no-pie", "-o", exe, c], check=True)
            nm = subprocess.run(["nm", "-n", exe], capture_output=True, text=True,
                                check=True).stdout.split("\n")
            syms = [ln.split() for ln in nm if len(ln.split()) == 3]
            addr = {w[2]: int(w[0], 16) for w in syms}
            after = min(a for a in addr.values() if a > addr["one"])
            frame = f"one+0x0/0x{after - addr['one']:x}"
            got = symbolize.resolve_vmlinux(exe, [frame, "one+0x0/0x1"], roots=(d,))
            self.assertEqual(["t.c:4 (one)"], got.get(frame))  # its store
            self.assertNotIn("one+0x0/0x1", got)  # a size that is not kallsyms': not placed
            # a return address: main's frame after its call of one() is that
            # call's line, not the line of the instruction it returns to
            dis = subprocess.run(["objdump", "-d", exe], capture_output=True, text=True,
                                 check=True).stdout
            body = dis.split("<main>:", 1)[1]
            call = next(ln for ln in body.splitlines() if "call" in ln and "<one>" in ln)
            ret = int(body.split(call, 1)[1].strip().split(":", 1)[0], 16)
            main_len = min(a for a in addr.values() if a > addr["main"]) - addr["main"]
            back = f"main+0x{ret - addr['main']:x}/0x{main_len:x}"
            got = symbolize.resolve_vmlinux(exe, [back], roots=(d,))
            self.assertEqual(["t.c:12 (main)"], got.get(back))


class SideKey(unittest.TestCase):
    """A side is reused only with the same inputs: any guest file's content,
    the storms, their seconds or the knobs change its key."""

    def test_key_follows_every_input(self):
        import types
        from uringrace import storms
        from uringrace.config import Settings
        with tempfile.TemporaryDirectory() as d:
            drv = os.path.join(d, "uringrace")
            with open(drv, "w", encoding="utf-8") as f:
                f.write("v1")
            rec = types.SimpleNamespace(arch="x86_64")
            kinfo = types.SimpleNamespace(key="k1")
            parts = (rec, kinfo, d, {"usr/bin/uringrace": drv}, [])
            args = Settings()
            st = (("nop-raw", "nop --via raw"),)

            def key(**kw):
                a = dict(args=args, parts=parts, storms=st, secs="8", jobs=1, seed0=1,
                         epath=None, symbols=True)
                a.update(kw)
                return storms.side_key(**a)
            base = key()
            self.assertEqual(base, key())
            self.assertNotEqual(base, key(secs="9"))
            self.assertNotEqual(base, key(storms=st + (("cq-raw", "cq"),)))
            self.assertNotEqual(base, key(args=dataclasses.replace(args, smp=4)))
            self.assertNotEqual(base, key(parts=(rec, types.SimpleNamespace(key="k2"), d,
                                                 parts[3], [])))
            with open(drv, "w", encoding="utf-8") as f:
                f.write("v2")
            self.assertNotEqual(base, key())
