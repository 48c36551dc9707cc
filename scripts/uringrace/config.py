"""The configuration of a run, read once into typed objects: the command
line and the environment (Settings) and each arch's QEMU and kernel-build
record (ArchConfig, from qemu/<arch>.conf). Every step reads these; no step
reads the environment itself."""

import dataclasses
import os
import shlex
from typing import Optional

from .common import REPO, PipelineError

ARCHES = ("x86_64", "arm64")
DEFAULT_KVER = "6.12"


@dataclasses.dataclass(frozen=True)
class ArchConfig:
    """qemu/<arch>.conf, plus the kernel config fragments of this run."""
    arch: str
    karch: str
    cross_compile: str
    ktargets: tuple
    kimage: str
    qemu: str
    machine: str
    cpu: str
    console: str
    virtio_serial: str
    cc: str
    cxx: str
    deb_arch: str
    triplet: str
    fragments: tuple = ()

    @classmethod
    def load(cls, arch, lockdep=False):
        """Parse qemu/<arch>.conf (KEY=value, shell quoting allowed); every
        field must be there and no other. lockdep adds Kconfig.fragment.lockdep
        (a kernel build of its own)."""
        if arch not in ARCHES:
            raise PipelineError(f"unknown ARCH '{arch}': use one of {', '.join(ARCHES)}")
        path = os.path.join(REPO, "qemu", f"{arch}.conf")
        vals = {}
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                key, eq, val = line.partition("=")
                if not eq:
                    raise PipelineError(f"{path}:{n}: want KEY=value")
                vals[key.strip().lower()] = " ".join(shlex.split(val))
        keys = {f.name for f in dataclasses.fields(cls)} - {"arch", "fragments"}
        if set(vals) != keys:
            raise PipelineError(f"{path}: missing {sorted(keys - set(vals))}, "
                                f"unknown {sorted(set(vals) - keys)}")
        vals["ktargets"] = tuple(vals["ktargets"].split())
        frags = [os.path.join(REPO, "Kconfig.fragment"),
                 os.path.join(REPO, f"Kconfig.fragment.{arch}")]
        if lockdep:
            frags.append(os.path.join(REPO, "Kconfig.fragment.lockdep"))
        return cls(arch=arch, fragments=tuple(frags), **vals)


def _env_int(name, default):
    val = os.environ.get(name) or ""
    if not val:
        return default
    if not val.isdigit():
        raise PipelineError(f"{name}={val}: want a whole number")
    return int(val)


def _arches(text):
    return [a for a in text.replace(",", " ").split() if a]


# Measured (docs/MEASUREMENTS.md, "Tuning"): on 2 vCPUs, checking 1 access
# in 200 instead of KCSAN's 1 in 4000 doubled io_uring reports per minute and
# halved the time to the first io-wq race on Debian 6.1, for a 4x slower
# io-wq storm.
DEFAULT_KCSAN_ARGS = "kcsan.skip_watch=200"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a command may be told, from its options and the
    environment (the Makefile's variables), read once by from_env()."""
    ksrc: Optional[str] = None
    kver: str = DEFAULT_KVER
    arch: tuple = ("x86_64",)
    smp: int = 2
    mem: int = 2048
    timeout: int = 900
    accel: str = "auto"
    kcsan_args: str = DEFAULT_KCSAN_ARGS
    out: str = os.path.join(REPO, "out")
    cmd: Optional[str] = None          # CMD=: a shell command instead of the tests
    expect: Optional[str] = None       # EXPECT=: an expectation file for the tree
    lockdep: bool = False              # LOCKDEP=1: the PROVE_LOCKING kernel
    storm_seconds: int = 8             # STORM_SECONDS: per real-io_uring storm
    jobs: Optional[int] = None         # JOBS: guests at once (default per command)
    runs: int = 5                      # RUNS: repetitions of a bench
    fixed_seconds: int = 2             # FIXED_SECONDS: bench-scenarios' fixed runs
    bench_seconds: int = 3             # BENCH_SECONDS: bench-driver's runs
    bench_storms: tuple = ()           # BENCH_STORMS: a subset of the storms
    knobs: str = ""                    # KNOBS: bench-real's KCSAN settings
    cold: bool = False                 # COLD=1: bench-pipeline builds cold
    sb_seconds: tuple = (3, 60, 10)    # SB_LITMUS/AIM/MODEL_SECONDS: bench-sb per form
    patches: tuple = ()                # PATCH=a.patch,b.patch: tree B = the tree + these
    mutants: tuple = ()                # MUTANTS=id,...: make mutate runs only these
    reuse_a: bool = True               # REUSE_A=0: run tree A's side of a patch loop again
    keep_b: int = 8                    # KEEP_B: tree B object copies kept in the cache
    keep_a: int = 3                    # KEEP_A: builds of one tree and arch kept (configs)
    side_a: tuple = (None, "6.1", None)   # (KSRC_A, KVER_A, EXPECT_A) of a compare
    side_b: tuple = (None, "6.12", None)  # (KSRC_B, KVER_B, EXPECT_B)
    lava_url: Optional[str] = None     # LAVA_URL: where a lab serves make lava's directory
    lava_kernel: Optional[str] = None  # LAVA_KERNEL_URL: the lab's own build of the tree

    @classmethod
    def defaults_from_env(cls):
        """The settings the environment gives; options may override them."""
        env = os.environ.get
        kargs = env("KCSAN_ARGS") or DEFAULT_KCSAN_ARGS
        return cls(
            ksrc=env("KSRC") or None, kver=env("KVER") or cls.kver,
            arch=tuple(_arches(env("ARCHES") or "x86_64")),
            smp=_env_int("SMP", cls.smp), mem=_env_int("MEM", cls.mem),
            timeout=_env_int("TIMEOUT", cls.timeout), accel=env("ACCEL") or cls.accel,
            kcsan_args="" if kargs == "none" else kargs,
            out=env("OUT") or cls.out, cmd=env("CMD") or None,
            expect=env("EXPECT") or None, lockdep=env("LOCKDEP") == "1",
            storm_seconds=_env_int("STORM_SECONDS", cls.storm_seconds),
            jobs=_env_int("JOBS", None), runs=_env_int("RUNS", cls.runs),
            fixed_seconds=_env_int("FIXED_SECONDS", cls.fixed_seconds),
            bench_seconds=_env_int("BENCH_SECONDS", cls.bench_seconds),
            bench_storms=tuple(_arches(env("BENCH_STORMS") or "")),
            knobs=env("KNOBS") or "", cold=env("COLD") == "1",
            sb_seconds=tuple(_env_int(f"SB_{k}_SECONDS", d) for k, d in
                             zip(("LITMUS", "AIM", "MODEL"), cls.sb_seconds)),
            patches=tuple(_arches(env("PATCH") or "")),
            mutants=tuple(_arches(env("MUTANTS") or "")),
            reuse_a=env("REUSE_A") != "0", keep_b=_env_int("KEEP_B", cls.keep_b),
            keep_a=_env_int("KEEP_A", cls.keep_a),
            side_a=(env("KSRC_A") or None, env("KVER_A") or "6.1", env("EXPECT_A") or None),
            side_b=(env("KSRC_B") or None, env("KVER_B") or "6.12", env("EXPECT_B") or None),
            lava_url=env("LAVA_URL") or None, lava_kernel=env("LAVA_KERNEL_URL") or None)

    def arch_config(self, arch):
        return ArchConfig.load(arch, lockdep=self.lockdep)

    def for_tree(self, ksrc, kver, patches=()):
        """These settings aimed at another tree (one side of a compare),
        plus patches on it."""
        return dataclasses.replace(self, ksrc=ksrc, kver=kver, patches=tuple(patches))
