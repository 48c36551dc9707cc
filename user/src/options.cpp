#include "options.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

#include "scenarios.hpp"
#include "workloads.hpp"

namespace uringrace {

const std::vector<std::pair<std::string, std::string>>& workloads() {
    static const std::vector<std::pair<std::string, std::string>> w = [] {
        std::vector<std::pair<std::string, std::string>> v;
        for (const auto& r : real_workloads())
            v.emplace_back(r.name, r.help);
        for (auto& m : module_workloads())
            v.push_back(m);
        v.emplace_back("litmus", "store-buffering litmus forms of the SB scenarios");
        v.emplace_back("model", "the BPF ringbuf protocol on host threads: the kernel's "
                                "producer rule vs libbpf's consumer (--fence F)");
        return v;
    }();
    return w;
}

std::string usage() {
    std::ostringstream o;
    o << "usage: uringrace <workload> [options]\n\nworkloads:\n";
    for (const auto& [name, help] : workloads())
        o << "  " << name << std::string(name.size() < 16 ? 16 - name.size() : 1, ' ') << help
          << "\n";
    o << "\noptions:\n"
         "  --threads N      threads (1..64, default 2)\n"
         "  --duration S     wall-time bound in seconds (0.01..3600, default 5)\n"
         "  --ops N          stop after N operations (default: duration only)\n"
         "  --entries N      ring entries, power of two 2..4096 (default 64)\n"
         "  --pin            pin threads to CPUs\n"
         "  --shared-creds   storm threads share the process's credentials, as\n"
         "                   plain threads do (default: each takes a copy, and\n"
         "                   io_uring's get_cred() of them does not race)\n"
         "  --seed N         random seed\n"
         "  --fence F        the application's store->load ordering (fences.hpp):\n"
         "                   on (seq_cst), off (none, and the litmus kernel side too),\n"
         "                   acq_rel, signal, none, fetch_xor; reorder: EMULATED, the\n"
         "                   load done first, the store --reorder-ns later (default 1000)\n"
         "  --via raw|liburing   real io_uring path (default raw)\n"
         "  --variant buggy|fixed  module workloads: the kernel side\n"
         "  --mode user|user_mm    module workloads: who posts (user_mm: a kthread in our mm)\n"
         "  --protocol P     litmus: ";
    for (const auto& p : litmus_protocols())
        o << p << ", ";
    o << "or both (default)\n"
         "  --until-witness  litmus, bpf_ringbuf*, *_wait: stop at the first\n"
         "                   witness or lost notification (duration: the limit)\n"
         "  --idle-ms N      SQPOLL sq_thread_idle (0..1000, default 1)\n"
         "  --watchdog-ms N  stall limit (1..10000, default 100)\n"
         "  --aim-before-ns N, --aim-after-ns N  sqpoll_aim: submit from N ns before\n"
         "                   to N ns after the tick edge (0..4000000; default 0, 1300);\n"
         "                   bpf_ringbuf*: the consumer's callback spins 0..after ns;\n"
         "                   defer_wait, eventfd_wait, msg_wait: the writer spins\n"
         "                   0..after ns once cued; sqpoll_flags: the flush after a\n"
         "                   wake-up of the SQ thread comes 0..after ns later\n"
         "  --aim-edge 0|1|2 sqpoll_aim: aim at the 1st or 2nd tick edge after the\n"
         "                   thread's last work (0: both; default 2, where every\n"
         "                   lost wake-up here was: 1 ms idle ends on the 2nd tick)\n"
         "  --json           one 'uringrace-result {json}' line per result\n"
         "  --label NAME     name this run in its result line\n"
         "exit: 0 done (anomalies are counted, not an exit status), 1 an error (setup\n"
         "failed, counters disagree), 2 usage, 4 skipped (no io_uring, no permission,\n"
         "no module)\n";
    return o.str();
}

namespace {

template <typename T> bool number(const std::string& s, T lo, T hi, T& out) {
    T v{};
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi)
        return false;
    out = v;
    return true;
}

bool seconds(const std::string& s, double& out) {
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end || !std::isfinite(v) || v < 0.01 || v > 3600)
        return false;
    out = v;
    return true;
}

} // namespace

std::optional<Options> parse_options(const std::vector<std::string>& args, std::string& err) {
    Options o;
    if (args.empty()) {
        err = "no workload given";
        return std::nullopt;
    }
    o.workload = args[0];
    bool known = false;
    for (const auto& w : workloads())
        known |= w.first == o.workload;
    if (!known) {
        err = "unknown workload '" + o.workload + "'";
        return std::nullopt;
    }
    for (size_t i = 1; i < args.size(); i++) {
        const std::string& a = args[i];
        auto value = [&](std::string& v) {
            if (i + 1 >= args.size())
                return false;
            v = args[++i];
            return true;
        };
        std::string v;
        bool ok = true;
        if (a == "--pin") {
            o.pin = true;
        } else if (a == "--shared-creds") {
            o.shared_creds = true;
        } else if (a == "--json") {
            o.json = true;
        } else if (a == "--until-witness") {
            o.until_witness = true;
        } else if (!value(v)) {
            err = a.rfind("--", 0) == 0 ? a + " needs a value" : "unexpected '" + a + "'";
            return std::nullopt;
        } else if (a == "--aim-edge") {
            ok = number(v, 0u, 2u, o.aim_edge);
        } else if (a == "--reorder-ns") {
            ok = number(v, 0u, 4000000u, o.reorder_ns);
        } else if (a == "--aim-before-ns") {
            ok = number(v, 0u, 4000000u, o.aim_before_ns);
        } else if (a == "--aim-after-ns") {
            ok = number(v, 0u, 4000000u, o.aim_after_ns);
        } else if (a == "--threads") {
            ok = number(v, 1u, 64u, o.threads);
        } else if (a == "--duration") {
            ok = seconds(v, o.duration_s);
        } else if (a == "--ops") {
            ok = number(v, uint64_t{1}, uint64_t{1} << 48, o.max_ops);
        } else if (a == "--entries") {
            ok = number(v, 2u, 4096u, o.entries) && (o.entries & (o.entries - 1)) == 0;
        } else if (a == "--seed") {
            ok = number(v, uint64_t{0}, ~uint64_t{0}, o.seed);
        } else if (a == "--fence") {
            auto f = fence_from(v);
            ok = f.has_value();
            o.fence = f.value_or(Fence::on);
        } else if (a == "--via") {
            ok = v == "raw" || v == "liburing";
            o.via = v == "liburing" ? Via::liburing : Via::raw;
        } else if (a == "--variant") {
            ok = id_of(kVariants, v).has_value();
            o.variant = v;
        } else if (a == "--mode") {
            // the application is us: every mode but a kthread playing it
            ok = id_of(kModes, v).value_or(URINGRACE_MODE_KTHREAD) != URINGRACE_MODE_KTHREAD;
            o.mode = v;
        } else if (a == "--protocol") {
            auto p = litmus_protocols();
            ok = v == "both" || std::find(p.begin(), p.end(), v) != p.end();
            o.protocol = v;
        } else if (a == "--label") {
            ok = !v.empty();
            o.label = v;
        } else if (a == "--idle-ms") {
            ok = number(v, 0u, 1000u, o.idle_ms);
        } else if (a == "--watchdog-ms") {
            ok = number(v, 1u, 10000u, o.watchdog_ms);
        } else {
            err = "unknown option '" + a + "'";
            return std::nullopt;
        }
        if (!ok) {
            err = "bad value '" + v + "' for " + a;
            return std::nullopt;
        }
    }
    return o;
}

} // namespace uringrace
