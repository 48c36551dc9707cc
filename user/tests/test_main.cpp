// uringrace driver host tests (GoogleTest): ring math, options, watchdog,
// JSON, and brief real runs on the host kernel (skipped where not allowed).
#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "options.hpp"
#include "report.hpp"
#include "ring.hpp"
#include "ringbuf_model.hpp"
#include "workloads.hpp"

using namespace uringrace;

TEST(RingMath, RejectsWhatIsNotAPowerOfTwo) {
    EXPECT_FALSE(RingMath::make(0));
    EXPECT_FALSE(RingMath::make(1));
    EXPECT_FALSE(RingMath::make(6));
    EXPECT_FALSE(RingMath::make(1u << 31));
    ASSERT_TRUE(RingMath::make(8));
    EXPECT_EQ(7u, RingMath::make(8)->mask());
}

TEST(RingMath, CountersWrapAround) {
    RingMath m = *RingMath::make(8);
    uint32_t head = 0xfffffffeu, tail = 2; // tail wrapped past zero
    EXPECT_EQ(4u, m.used(head, tail));
    EXPECT_EQ(4u, m.space(head, tail));
    EXPECT_EQ(6u, m.slot(head));
    EXPECT_EQ(2u, m.slot(tail));
    EXPECT_FALSE(m.full(head, tail));
    EXPECT_TRUE(m.full(head, head + 8));
    EXPECT_FALSE(m.corrupt(head, head + 8));
    EXPECT_TRUE(m.corrupt(head, head + 9));
}

static std::optional<Options> parse(std::vector<std::string> a, std::string& err) {
    return parse_options(a, err);
}

TEST(Options, ParsesEveryKnob) {
    std::string err;
    auto o = parse({"sqpoll",        "--threads", "4",      "--duration",    "0.5",       "--ops",
                    "1000",          "--entries", "128",    "--pin",         "--seed",    "7",
                    "--fence",       "off",       "--via",  "liburing",      "--idle-ms", "2",
                    "--watchdog-ms", "50",        "--json", "--shared-creds"},
                   err);
    ASSERT_TRUE(o) << err;
    EXPECT_EQ(4u, o->threads);
    EXPECT_DOUBLE_EQ(0.5, o->duration_s);
    EXPECT_EQ(1000u, o->max_ops);
    EXPECT_EQ(128u, o->entries);
    EXPECT_TRUE(o->pin);
    EXPECT_EQ(7u, o->seed);
    EXPECT_EQ(Fence::off, o->fence);
    EXPECT_EQ(Via::liburing, o->via);
    EXPECT_EQ(2u, o->idle_ms);
    EXPECT_EQ(50u, o->watchdog_ms);
    EXPECT_TRUE(o->json);
    EXPECT_TRUE(o->shared_creds);
    EXPECT_FALSE(parse({"sqpoll"}, err)->shared_creds);
}

TEST(Litmus, UntilWitnessStopsAtTheFirstOne) {
    std::string err;
    auto o = parse({"litmus", "--fence", "off", "--duration", "30", "--until-witness"}, err);
    ASSERT_TRUE(o) << err;
    ASSERT_TRUE(o->until_witness);
    // on the host CPU store buffering shows thousands of times per million
    Result r = run_litmus(*o, "sqpoll_wakeup");
    EXPECT_EQ(1u, r.anomalies["witnesses"]);
    EXPECT_LT(r.seconds, 30.0);
}

TEST(Options, RejectsBadInputWithAReason) {
    const std::vector<std::vector<std::string>> bad = {
        {},
        {"nosuch"},
        {"nop", "--threads", "0"},
        {"nop", "--threads", "65"},
        {"nop", "--threads", "3x"},
        {"nop", "--duration", "0"},
        {"nop", "--duration", "nan"},
        {"nop", "--duration", "7200"},
        {"nop", "--entries", "100"},
        {"nop", "--fence", "maybe"},
        {"nop", "--fence", "SEQ_CST"},
        {"sqpoll_aim", "--aim-after-ns", "5000000"},
        {"nop", "--via", "magic"},
        {"nop", "--watchdog-ms", "0"},
        {"litmus", "--protocol", "dekker"},
        {"nop", "--threads"},
        {"nop", "--frobnicate", "1"},
        {"nop", "extra"},
    };
    for (const auto& a : bad) {
        std::string err;
        EXPECT_FALSE(parse(a, err)) << "accepted: " << (a.empty() ? "(nothing)" : a.back());
        EXPECT_FALSE(err.empty());
    }
}

TEST(Fences, EveryFormHasOneNameAndTheLoadFormsReadTheValue) {
    for (const auto& [f, name] : kFenceNames) {
        EXPECT_EQ(f, fence_from(name).value());
        EXPECT_EQ(name, fence_name(f));
        std::string err;
        auto o = parse({"litmus", "--fence", std::string(name)}, err);
        ASSERT_TRUE(o) << err;
        EXPECT_EQ(f, o->fence);
        uint32_t flags = 0x5;
        EXPECT_EQ(0x5u, load_after_store(&flags, f, std::memory_order_relaxed));
        EXPECT_EQ(0x5u, flags); // fetch_xor(0) leaves the flags as they are
        // only "off" drops the litmus kernel side's barrier as well
        EXPECT_EQ(f != Fence::off, kernel_fenced(f));
    }
    EXPECT_EQ(Fence::on, fence_from("seq_cst").value());
    // an RMW on the flags is ordered with the kernel's atomic_or; the ringbuf
    // producer's position is a plain store, so there it is only allowed
    EXPECT_EQ("forbidden", fence_model(Fence::fetch_xor, "sqpoll_aim"));
    EXPECT_EQ("allowed", fence_model(Fence::fetch_xor, "model:ringbuf_notify"));
    EXPECT_EQ("forbidden", fence_model(Fence::on, "litmus:ringbuf_notify"));
}

// libbpf's loop, on a ring of unit records: the producer publishes record 1
// while the consumer's callback handles record 0. Every ordered form reads
// the producer position again after its store and takes record 1; the
// EMULATED reorder decides on the position read before its store (stops at
// 1: a lost notification if the producer then saw it behind); a busy header
// ends the pass.
TEST(RingbufConsumer, ReorderDecidesOnTheStalePositionAndBusyStops) {
    for (Fence f : {Fence::on, Fence::none, Fence::acq_rel, Fence::reorder}) {
        uint32_t prod = 1, stored = 0, cons = 0;
        std::vector<uint32_t> committed{1, 1, 0};
        libbpf_process(
            cons, f, [&](Fence) { return prod; }, [&](uint32_t c) { return committed[c]; },
            [&](uint32_t c) {
                if (c == 0)
                    prod = 2;
            },
            [&](uint32_t c) { stored = c; });
        EXPECT_EQ(f == Fence::reorder ? 1u : 2u, cons) << fence_name(f);
        EXPECT_EQ(cons, stored) << fence_name(f);
        prod = 3; // record 2 reserved, its header still busy
        libbpf_process(
            cons, f, [&](Fence) { return prod; }, [&](uint32_t c) { return committed[c]; },
            [](uint32_t) {}, [&](uint32_t c) { stored = c; });
        EXPECT_EQ(2u, cons) << fence_name(f);
    }
}

TEST(Watchdog, FiresOncePerArmingAfterTheLimit) {
    using namespace std::chrono;
    Watchdog w{milliseconds(100)};
    auto t = steady_clock::now();
    EXPECT_FALSE(w.expired(t + seconds(1))); // not armed
    w.arm(t);
    EXPECT_FALSE(w.expired(t + milliseconds(99)));
    EXPECT_TRUE(w.expired(t + milliseconds(100)));
    EXPECT_FALSE(w.expired(t + milliseconds(200))); // once
    w.arm(t);
    w.disarm();
    EXPECT_FALSE(w.expired(t + seconds(1)));
}

TEST(Json, OneLineWithEscapesAndCounts) {
    Result r;
    r.workload = "nop";
    r.path = "raw";
    r.fence = "on";
    r.ops = 42;
    r.seconds = 1.5;
    r.anomalies["stalls"] = 3;
    r.anomalies["bad_cqe"] = 1;
    r.counts["wakeups"] = 5;
    r.skipped = "why \"not\"\n";
    EXPECT_EQ("uringrace-result {\"label\":\"nop\",\"workload\":\"nop\",\"path\":\"raw\","
              "\"fence\":\"on\",\"fence_model\":\"forbidden\",\"ops\":42,\"seconds\":1.500,"
              "\"skipped\":\"why \\\"not\\\"\\n\","
              "\"anomaly_total\":4,\"anomalies\":{\"bad_cqe\":1,\"stalls\":3},"
              "\"counts\":{\"wakeups\":5}}",
              to_json(r));
    r.label = "storm-1";
    EXPECT_NE(std::string::npos, to_json(r).find("{\"label\":\"storm-1\",\"workload\":\"nop\""));
    EXPECT_EQ("\\u0001", json_escape("\x01"));
}

TEST(Setup, ScratchFileIsUnlinkedAndAFailureIsAnError) {
    Result r;
    int fd = scratch_file(r, "test");
    ASSERT_LE(0, fd) << r.skipped;
    struct stat st {};
    ASSERT_EQ(0, fstat(fd, &st));
    EXPECT_EQ(0u, st.st_nlink); // nothing left behind in /tmp
    close(fd);
    EXPECT_EQ(0u, r.counts.count("errors"));
    errno = ENOSPC;
    setup_failed(r, "mkstemp");
    EXPECT_EQ(1u, r.counts["errors"]); // never a skip, never a pass
    EXPECT_EQ("mkstemp: " + std::string(std::strerror(ENOSPC)), r.skipped);
    EXPECT_EQ(0u, to_text(r).find(" (): error: mkstemp: "));
}

// One rule for a setup step's error: a kernel without io_uring, or one that
// forbids it, is a skip; anything else (EINVAL for a flag included) is an
// error; and 0 is no failure at all.
TEST(Setup, OnlyAMissingIoUringIsASkip) {
    Result ok;
    EXPECT_TRUE(ring_ready(ok, 0, "io_uring_setup"));
    EXPECT_TRUE(ok.skipped.empty());
    for (int e : {ENOSYS, EPERM, EACCES}) {
        Result r;
        EXPECT_FALSE(ring_ready(r, -e, "io_uring_setup(SQPOLL)", "mmap"));
        EXPECT_EQ(0u, r.counts.count("errors")) << e;
        EXPECT_EQ(0u, r.skipped.find("io_uring_setup(SQPOLL) mmap: ")) << r.skipped;
    }
    Result r;
    EXPECT_FALSE(ring_ready(r, -EINVAL, "io_uring_setup(DEFER_TASKRUN)"));
    EXPECT_EQ(1u, r.counts["errors"]);
    EXPECT_EQ(0u, r.skipped.find("io_uring_setup(DEFER_TASKRUN): ")) << r.skipped;
    EXPECT_NE(std::string::npos, r.skipped.find("needs 6.1")) << r.skipped;
}

// The file holds what was asked, and a short write (the file size limit
// cuts it) is a setup error, never a storm over a shorter file.
TEST(Setup, ScratchFileHoldsItsContentOrFails) {
    const std::string content(8192, 'c');
    Result r;
    int fd = scratch_file(r, "test", content.data(), content.size());
    ASSERT_LE(0, fd) << r.skipped;
    std::string back(content.size(), '\0');
    EXPECT_EQ(ssize_t(back.size()), pread(fd, back.data(), back.size(), 0));
    EXPECT_EQ(content, back);
    close(fd);
    rlimit old{};
    ASSERT_EQ(0, getrlimit(RLIMIT_FSIZE, &old));
    rlimit cut = old;
    cut.rlim_cur = 4096;
    auto was = signal(SIGXFSZ, SIG_IGN);
    ASSERT_EQ(0, setrlimit(RLIMIT_FSIZE, &cut));
    Result s;
    EXPECT_EQ(-1, scratch_file(s, "test", content.data(), content.size()));
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, was);
    EXPECT_EQ(1u, s.counts["errors"]);
    EXPECT_EQ("write: " + std::string(std::strerror(EFBIG)), s.skipped);
}

// Every named anomaly counter is reported, and is 0.
static void expect_clean(Result& r, std::initializer_list<const char*> names) {
    for (const char* a : names) {
        ASSERT_EQ(1u, r.anomalies.count(a)) << a;
        EXPECT_EQ(0u, r.anomalies[a]) << a;
    }
}

static Options brief(const std::string& w, Via via = Via::raw) {
    Options o;
    o.workload = w;
    o.duration_s = 0.3;
    o.threads = 2;
    o.via = via;
    return o;
}

TEST(HostIoUring, NopStormRawAndLiburingAgree) {
    Result raw = run_nop(brief("nop"));
    if (!raw.skipped.empty())
        GTEST_SKIP() << raw.skipped;
    Result lib = run_nop(brief("nop", Via::liburing));
    EXPECT_LT(0u, raw.ops);
    EXPECT_LT(0u, lib.ops);
    EXPECT_EQ(0u, raw.anomalies["bad_cqe"]);
    EXPECT_EQ(0u, lib.anomalies["bad_cqe"]);
    EXPECT_EQ(0u, raw.counts.count("errors"));
}

TEST(HostIoUring, ReadAndIowqStormsComplete) {
    Result rd = run_read(brief("read"));
    if (!rd.skipped.empty())
        GTEST_SKIP() << rd.skipped;
    EXPECT_LT(0u, rd.ops);
    EXPECT_EQ(0u, rd.anomalies["short_reads"]);
    Result wq = run_iowq(brief("iowq"));
    EXPECT_LT(0u, wq.ops);
    EXPECT_EQ(0u, wq.anomalies["bad_cqe"]);
}

TEST(HostIoUring, SharedCqReapersSeeEveryCompletionOnce) {
    Options o = brief("cq");
    o.threads = 3;
    Result r = run_cq(o);
    if (!r.skipped.empty())
        GTEST_SKIP() << r.skipped;
    EXPECT_LT(0u, r.ops);
    EXPECT_EQ(0u, r.anomalies["duplicate_cqe"]);
    EXPECT_EQ(0u, r.anomalies["lost_cqe"]);
}

TEST(HostIoUring, SqpollWithTheFenceNeverStalls) {
    Options o = brief("sqpoll");
    o.duration_s = 0.5;
    Result r = run_sqpoll(o);
    if (!r.skipped.empty())
        GTEST_SKIP() << r.skipped;
    EXPECT_LT(0u, r.ops);
    ASSERT_TRUE(r.skipped.empty() ? r.anomalies.count("lost_wakeups") : true);
    EXPECT_EQ(0u, r.anomalies["lost_wakeups"]);
}

TEST(HostIoUring, RingsJoinAndLeaveOneSqThread) {
    Options o = brief("sqpoll_share");
    o.idle_ms = 10;
    Result r = run_sqpoll_share(o);
    if (!r.skipped.empty())
        GTEST_SKIP() << r.skipped;
    EXPECT_LT(0u, r.ops);
    EXPECT_LT(0u, r.counts["rings"]);
    EXPECT_LT(0u, r.counts["parks"]);
    EXPECT_EQ(0u, r.counts.count("errors"));
    EXPECT_EQ(0u, r.anomalies["bad_cqe"]);
    EXPECT_EQ(0u, r.anomalies["lost_cqe"]);
}

TEST(HostIoUring, SqThreadCyclesWhileBurstsOverflowItsCq) {
    Options o = brief("sqpoll_flags");
    o.entries = 4;
    o.watchdog_ms = 500;
    Result r = run_sqpoll_flags(o);
    if (!r.skipped.empty())
        GTEST_SKIP() << r.skipped;
    EXPECT_LT(0u, r.counts["bursts"]);
    EXPECT_LT(0u, r.counts["flushes"]);
    EXPECT_LT(0u, r.counts["nops"]);
    EXPECT_EQ(0u, r.counts.count("errors"));
    expect_clean(r, {"bad_cqe", "lost_cqe", "overflow_flag_lost", "overflow_flag_stale", "nop_lost",
                     "wakeup_flag_lost"});
}

TEST(HostIoUring, MultishotPollSeesEveryWakeUp) {
    for (auto run : {run_poll_multi, run_poll_multi_taskrun, run_poll_multi_defer}) {
        Options o = brief("poll_multi");
        o.watchdog_ms = 500;
        Result r = run(o);
        if (!r.skipped.empty())
            GTEST_SKIP() << r.skipped;
        EXPECT_LT(0u, r.ops);
        EXPECT_LT(0u, r.counts["writes"]);
        EXPECT_EQ(0u, r.counts.count("errors"));
        expect_clean(r, {"bad_cqe", "lost_wakeup"});
    }
}

TEST(HostIoUring, ThreadsExitWithIoWqReadsInFlight) {
    Options o = brief("iowq_exit");
    o.watchdog_ms = 500;
    Result r = run_iowq_exit(o);
    if (!r.skipped.empty())
        GTEST_SKIP() << r.skipped;
    EXPECT_LT(0u, r.counts["lives"]);
    EXPECT_LT(0u, r.counts["done"] + r.counts["cancelled"]);
    EXPECT_EQ(0u, r.counts.count("errors"));
    expect_clean(r, {"bad_cqe", "lost_cqe"});
}

TEST(HostIoUring, SplicesAsleepInIoWqAllComeBack) {
    Options o = brief("iowq_splice");
    o.entries = 8;
    o.watchdog_ms = 1000;
    Result r = run_iowq_splice(o);
    if (!r.skipped.empty())
        GTEST_SKIP() << r.skipped;
    EXPECT_LT(0u, r.ops);
    EXPECT_LT(0u, r.counts["written"]);
    EXPECT_EQ(0u, r.counts.count("errors"));
    expect_clean(r, {"bad_cqe", "lost_cqe"});
}

TEST(HostIoUring, OverflowStormsGetEveryCompletionBack) {
    for (auto run : {run_overflow, run_overflow_defer}) {
        Options o = brief("overflow");
        o.entries = 2;
        o.watchdog_ms = 2000;
        Result r = run(o);
        if (!r.skipped.empty())
            GTEST_SKIP() << r.skipped;
        EXPECT_LT(0u, r.counts["rounds"]);
        EXPECT_LT(0u, r.counts["overflow_seen"]);
        EXPECT_EQ(0u, r.counts.count("errors"));
        expect_clean(r, {"bad_cqe", "duplicate_cqe", "lost_cqe"});
    }
}

TEST(HostIoUring, MessagesThroughAnOverflowedCqArriveInOrder) {
    Options o = brief("overflow_msg");
    o.entries = 2;
    o.watchdog_ms = 500;
    Result r = run_overflow_msg(o);
    if (!r.skipped.empty())
        GTEST_SKIP() << r.skipped;
    EXPECT_LT(0u, r.ops);
    EXPECT_LT(0u, r.counts["overflow_seen"]);
    EXPECT_LT(0u, r.counts["sender_flushes"]);
    EXPECT_EQ(0u, r.counts.count("errors"));
    expect_clean(r, {"out_of_order", "bad_cqe", "lost_cqe"});
}

TEST(Module, MissingModuleIsASkipNotAFailure) {
    Options o = brief("sq_head");
    Result r = run_module(o);
    if (r.skipped.empty())
        GTEST_SKIP() << "the module is loaded here";
    EXPECT_EQ(0u, r.counts.count("errors"));
}
