"""What the steps hand each other, typed: a kernel build, one guest boot
with its outcome, and one side of a compare. Each turns into plain JSON
with to_json() for the artifacts; renderers only read them."""

import dataclasses
import enum
from typing import Optional


class Outcome(str, enum.Enum):
    """How a guest run ended. Only PASS (an exit status 0 that arrived, no
    panic, no WARNING) is a pass."""
    PASS = "pass"
    FAIL = "fail"
    PANIC = "panic"
    HANG = "hang"
    BOOT_FAILURE = "boot-failure"
    NO_STATUS = "no-status"

    def __str__(self):
        return self.value


@dataclasses.dataclass
class KernelBuild:
    src: str
    identity: str
    arch: str
    key: str
    objdir: str
    image: str
    vmlinux: str
    seconds: float
    compiled: int
    cold_seconds: Optional[float] = None
    version: Optional[str] = None
    # a patched tree's build: (B's dir, A's path) pairs every make against
    # it runs under (kbuild.in_place_of); its make paths are A's
    binds: tuple = ()

    @property
    def make_objdir(self):
        """The object directory as make must be told it."""
        return self.binds[1][1] if self.binds else self.objdir


@dataclasses.dataclass
class BootResult:
    arch: str
    accel: str
    smp: int
    outcome: Outcome
    status: Optional[int]
    reason: str
    seconds: float
    qemu_rc: Optional[int]
    to_init_s: Optional[float]
    cmdline: str

    @property
    def passed(self):
        return self.outcome is Outcome.PASS


@dataclasses.dataclass
class Side:
    """One tree's storms on one arch, merged over its guests (storms.merge):
    per guest its outcome; per storm its operations per second and anomaly
    counts; KCSAN reports by title (classified), each report as an event on
    the timeline, and the io_uring/module reports in full."""
    outcomes: list
    workloads: dict
    titles: list
    events: list
    reports: list
    arch: Optional[str] = None
    tree: Optional[str] = None
    version: Optional[str] = None
    expect: Optional[str] = None
    jobs: int = 1
    seconds_per_storm: Optional[int] = None

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def to_json(obj):
    """json.dump's default= for these records."""
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")
