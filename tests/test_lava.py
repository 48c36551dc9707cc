"""The LAVA job: its monitor pattern read as LAVA reads a console against
the KTAP parser's own cases, the verdict comparison of check-lava, the
YAML writer, and the job's settings taken from the local run's."""

import os
import re
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts"))
from uringrace import lava, qemu  # noqa: E402
from uringrace.common import PipelineError  # noqa: E402
from uringrace.config import ArchConfig, Settings  # noqa: E402


def reads_of(text, size):
    """The console as reads of `size` characters."""
    return [text[i:i + size] for i in range(0, len(text), size)]


def reads_by_line(text):
    """The console as a paced writer's reads: a line each."""
    return text.splitlines(keepends=True)


def monitor(console, split):
    """[(case, result)] as lava_dispatcher's monitor records them: from the
    start string on, the console arriving in the reads split(text) gives, pexpect's search after each read: the earliest match of
    the end string or the pattern (compiled with DOTALL) in the last WINDOW
    characters; a match consumes the buffer up to its end; the result
    mapped through fixupdict; until the end string."""
    body = console.split(lava.START, 1)[1]
    pats = [re.compile(re.escape(lava.END), re.DOTALL), re.compile(lava.PATTERN, re.DOTALL)]
    out, buf = [], ""
    for r in split(body):
        buf += r
        while True:
            start = max(0, len(buf) - WINDOW)
            found = [m for m in (p.search(buf, start) for p in pats) if m]
            if not found:
                break
            m = min(found, key=lambda m: m.start())
            if m.re is pats[0]:
                return out
            res = lava.FIXUP.get(m.group("result"), m.group("result"))
            out.append((lava.case_id(m.group("test_case_id")), res))
            buf = buf[m.end():]
    return out


# lava_dispatcher's ShellCommand: searchwindowsize=4000, reads of up to
# spawn_maxread (4092) characters
WINDOW, MAXREAD = 4000, 4092


def as_console(ktap, noise, eol="\r\r\n"):
    """A serial console with the KTAP stream's lines and kernel lines between,
    each line ending as LAVA reads it: the guest's tty and LAVA's pty each
    add a carriage return."""
    lines = ["[    0.912] uringrace: init started"]
    for i, line in enumerate(ktap.splitlines()):
        lines.append(line)
        if i % 7 == 3:
            lines.append(noise)
    lines.append("[  530.576] uringrace: exit status 0")
    return eol.join(lines) + eol


class Monitor(unittest.TestCase):
    def test_every_ktap_line_becomes_its_case(self):
        for name in ("x86_64-6.12-check.ktap", "arm64-6.12-scenarios.ktap"):
            with open(os.path.join(HERE, "logs", name), encoding="utf-8") as f:
                ktap = f.read()
            want = lava.ktap_cases(ktap)
            self.assertGreater(len(want), 25, name)
            for eol in ("\r\r\n", "\r\n", "\n"):
                console = as_console(ktap, "[   12.345] random: crng init done ok 5 x", eol)
                self.assertEqual(want, monitor(console, reads_by_line), f"{name} {eol!r}")
            console = as_console(ktap, "[   12.345] random: crng init done ok 5 x")
            # a read may end anywhere in a line
            for n in (1, 7, 64, 1000):
                self.assertEqual(want, monitor(console, lambda t, n=n: reads_of(t, n)),
                                 f"{name}, reads of {n}")

    def test_why_the_lab_console_is_paced(self):
        """Full reads (the guest writing faster than LAVA reads) hide the
        KTAP lines near a read's start from LAVA's 4000-character search
        window, here with kernel messages between them; so guest/init keeps the
        kernel's messages off the console in a lab until the tests are done
        and writes the KTAP stream a line at a time, paced: then each read
        holds a line or a few, and every case is seen."""
        with open(os.path.join(HERE, "logs", "x86_64-6.12-check.ktap"), encoding="utf-8") as f:
            ktap = f.read()
        want = lava.ktap_cases(ktap)
        kcsan = "\r\n".join(f"[  41.{i:06d}] BUG: KCSAN: data-race in ur_io_sq_thread / "
                             "ur_sq_app_submit, a line of a long report" for i in range(90))
        full = lambda t: reads_of(t, MAXREAD)  # noqa: E731
        self.assertNotEqual(want, monitor(as_console(ktap, kcsan), full))
        self.assertEqual(want, monitor(as_console(ktap, "[ 1.0] x"), reads_by_line))

    def test_pass_fail_skip(self):
        ktap = ("TAP version 13\n1..3\n    ok 1 a.b # SKIP not-observable under tcg\n"
                "    not ok 2 c:d\nnot ok 1 selftests: uringrace: x\nok 2 y # SKIP no io_uring\n"
                "ok 3 selftests: uringrace: z\n")
        want = [("a_b", "skip"), ("c_d", "fail"), ("selftests_uringrace_x", "fail"),
                ("y", "skip"), ("selftests_uringrace_z", "pass")]
        self.assertEqual(want, lava.ktap_cases(ktap))
        self.assertEqual(want, monitor(as_console(ktap, "[ 1.0] x"), reads_by_line))


class Agree(unittest.TestCase):
    def test_missing_and_different(self):
        local = [("a", "pass"), ("b", "pass"), ("a", "fail")]
        self.assertFalse([r for r in lava.agree(local, local) if r[1] != r[2]])
        rows = lava.agree([("a", "pass"), ("b", "fail")], local)
        self.assertEqual([("a", "pass", "pass"), ("b", "fail", "pass"), ("a", None, "fail")],
                         rows)
        rows = lava.agree(local + [("c", "pass")], local)
        self.assertIn(("c", "pass", None), rows)
        self.assertEqual([], lava.agree([], []))


class Job(unittest.TestCase):
    def test_job_takes_the_local_runs_settings(self):
        args = Settings(timeout=900, kcsan_args="kcsan.skip_watch=200")
        for arch in ("x86_64", "arm64"):
            rec = ArchConfig.load(arch)
            kinfo = type("K", (), {"version": "6.12.117", "identity": "debian:6.12"})()
            j = lava.job(args, rec, kinfo, "file:///k", "file:///i")
            kernel = j["actions"][0]["deploy"]["images"]["kernel"]
            self.assertIn(f'-append "{qemu.kernel_append(rec, "tcg", args.kcsan_args, args.timeout)}"',
                          kernel["image_arg"])
            for bit in ("panic=-1", "oops=panic", "kcsan.skip_watch=200"):
                self.assertIn(bit, kernel["image_arg"])
            self.assertIn("-no-reboot", j["context"]["extra_options"])
            self.assertEqual(15, j["actions"][2]["test"]["timeout"]["minutes"])
            self.assertEqual(qemu.INIT_MARK, j["actions"][1]["boot"]["prompts"][0])

    @unittest.skipUnless(shutil.which("lava-run"), "lava-run not installed (make deps)")
    def test_lavas_validator_passes_ours_and_refuses_a_broken_one(self):
        """The check step's validator can fail: a job whose kernel is not
        there, or that has no test action, is refused by lava-run."""
        try:
            lava.device_types()
        except PipelineError as exc:
            self.skipTest(str(exc))
        rec = ArchConfig.load("x86_64")
        kinfo = type("K", (), {"version": "6.12.117", "identity": "debian:6.12"})()
        with tempfile.TemporaryDirectory() as tmp:
            for f in ("k", "i"):
                with open(os.path.join(tmp, f), "w", encoding="utf-8") as fh:
                    fh.write("x")
            good = lava.job(Settings(), rec, kinfo, f"file://{tmp}/k", f"file://{tmp}/i")
            no_kernel = lava.job(Settings(), rec, kinfo, f"file://{tmp}/gone", f"file://{tmp}/i")
            no_test = dict(good, actions=good["actions"][:2] + [{"test": {"timeout": {
                "minutes": 1}}}])
            for name, j, want in (("good", good, True), ("no-kernel", no_kernel, False),
                                  ("no-test", no_test, False)):
                path = os.path.join(tmp, f"{name}.yaml")
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(lava.to_yaml(j) + "\n")
                ok, detail = lava.validate(path, j, os.path.join(tmp, name))
                self.assertEqual(want, ok, f"{name}: {detail}")

    def test_yaml(self):
        text = lava.to_yaml({"a": 1, "b": True, "c": ["x", {"d": "e", "f": []}],
                             "fixupdict": {"ok": "pass", "ok ": "skip"}})
        self.assertEqual(text.splitlines(), [
            "a: 1", "b: true", "c:", '  - "x"', '  - d: "e"', "    f: []", "fixupdict:",
            '  ok: "pass"', '  "ok ": "skip"'])


if __name__ == "__main__":
    unittest.main()
