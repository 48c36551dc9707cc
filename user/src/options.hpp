// uringrace: command-line options, validated.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fences.hpp"

namespace uringrace {

enum class Via { raw, liburing };

struct Options {
    std::string workload;
    unsigned threads = 2;
    double duration_s = 5.0;   // upper bound on wall time
    uint64_t max_ops = 0;      // 0: no bound but the duration
    unsigned entries = 64;     // ring entries (power of two)
    bool pin = false;          // pin threads to CPUs round-robin
    bool shared_creds = false; // storm threads keep the process's credentials
    uint64_t seed = 1;
    Fence fence = Fence::on;       // the protocol's fence (see fences.hpp)
    Via via = Via::raw;            // real io_uring: own ring code or liburing
    std::string variant = "fixed"; // module workloads: kernel side variant
    std::string mode = "user";     // module workloads: user | user_mm
    unsigned idle_ms = 1;          // SQPOLL sq_thread_idle
    unsigned watchdog_ms = 100;    // stall limit
    bool json = false;             // JSON lines instead of the human summary
    std::string protocol = "both"; // litmus: one of litmus_protocols() or both
    bool until_witness = false;    // litmus: stop at the first witness
    std::string label;             // --label: carried into the result line
    unsigned aim_before_ns = 0;    // sqpoll_aim: offsets swept from -before ...
    unsigned aim_after_ns = 1300;  // ... to +after ns around the tick edge
    unsigned aim_edge = 2;         // sqpoll_aim: the 1st or 2nd tick edge, 0 both
    unsigned reorder_ns = 1000;    // --fence reorder: load, then store this much later
};

// The workloads and a line of help each.
const std::vector<std::pair<std::string, std::string>>& workloads();

// The module scenarios with an application side (module.cpp) and the
// store-buffering scenarios with a litmus form (litmus.cpp).
std::vector<std::pair<std::string, std::string>> module_workloads();
std::vector<std::string> litmus_protocols();

// Parse argv; on error return nullopt and set err to a one-line reason.
std::optional<Options> parse_options(const std::vector<std::string>& args, std::string& err);

std::string usage();

} // namespace uringrace
