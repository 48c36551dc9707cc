# uringrace: this Makefile only delegates to scripts/.
# Knobs (environment or make line): ARCHES="x86_64 arm64", KVER=6.12|6.1,
# KSRC=/path/to/tree, SMP=2, MEM=2048, TIMEOUT=900, ACCEL=auto|tcg|kvm,
# KCSAN_ARGS="kcsan.skip_watch=200", CMD="shell command for the guest", OUT=dir,
# EXPECT=file (expected/forbidden races; default expect/<major.minor>.txt).
ARCHES ?= x86_64 arm64
export ARCHES KVER KSRC SMP MEM TIMEOUT ACCEL KCSAN_ARGS CMD OUT EXPECT LOCKDEP LAVA_URL \
	LAVA_KERNEL_URL
URR := python3 scripts/urr

.PHONY: all deps run check check-lockdep lava check-lava kernel bench-pipeline bench-scenarios bench-driver bench-sb bench-real compare mutate mutate-score bench-patch \
	lint unit clean

all: run

deps:
	@bash scripts/deps.sh

run: deps
	@$(URR) run

check: deps
	@$(URR) check

# the module's tests on a PROVE_LOCKING kernel (x86-64; a build of its own):
# any lockdep report fails the test it is charged to
check-lockdep: deps
	@LOCKDEP=1 ARCHES=$${LOCKDEP_ARCHES:-x86_64} $(URR) run

# LAVA job definitions (YAML) per arch with the kernel and initramfs they
# boot; LAVA_URL=<base> for a lab that serves the run directory there,
# LAVA_KERNEL_URL=<url> for the lab's own build of the same tree (KSRC=)
lava: deps
	@$(URR) lava

# the job run by LAVA's own dispatcher (lava-run) on a local QEMU device,
# against make run on the same kernel; then a panicking kernel's job must
# fail. x86-64 unless LAVA_ARCHES says otherwise
check-lava: deps
	@ARCHES=$${LAVA_ARCHES:-x86_64} $(URR) check-lava

kernel: deps
	@$(URR) kernel

bench-pipeline: deps
	@$(URR) bench-pipeline

bench-scenarios: deps
	@$(URR) bench-scenarios

bench-driver: deps
	@$(URR) bench-driver

# every form of the application's store->load ordering, host and guests;
# SB_LITMUS_SECONDS (3), SB_AIM_SECONDS (60), SB_MODEL_SECONDS (10)
bench-sb: deps
	@$(URR) bench-sb

# KSRC_A/KSRC_B (or KVER_A/KVER_B, default 6.1 vs 6.12), EXPECT_A/EXPECT_B,
# STORM_SECONDS, JOBS (guests per tree, run at once, seeds differ)
compare: deps
	@$(URR) compare

# the mutant catalog of the tree (KSRC or KVER), each built through the
# patch loop and scored; MUTANTS=id,... picks some
mutate: deps
	@$(URR) mutate

# the catalog of the tree scored from the newest run of each mutant in OUT
mutate-score:
	@$(URR) mutate-score

# PATCH= (default: the catalog's first mutant); RUNS fresh B builds (5)
bench-patch: deps
	@$(URR) bench-patch

# RUNS (5), JOBS (2), STORM_SECONDS, BENCH_STORMS="iowq-raw,...",
# KNOBS="label=kernel args@smp;..." and the compare tree knobs
bench-real: deps
	@$(URR) bench-real

unit:
	@python3 -m unittest discover -s tests -t . -v

lint:
	@bash scripts/lint.sh

clean:
	rm -rf out selftests/out
