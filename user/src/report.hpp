// uringrace: results of one workload, as a human summary or a JSON line.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace uringrace {

struct Result {
    std::string workload;
    std::string path;  // raw | liburing | module | host
    std::string fence; // on | off
    uint64_t ops = 0;
    double seconds = 0;
    // what went wrong on the ring: every key here is an anomaly, and a run
    // that must be clean needs all of them 0 (readers sum, never pick)
    std::map<std::string, uint64_t> anomalies;
    std::map<std::string, uint64_t> counts; // everything else ("errors": setup failed)
    std::string skipped;                    // non-empty: why the workload was skipped
    std::string label;                      // --label: the name the caller gave this run

    double rate() const { return seconds > 0 ? ops / seconds : 0; }
    uint64_t anomaly_total() const {
        uint64_t n = 0;
        for (const auto& kv : anomalies)
            n += kv.second;
        return n;
    }
    double per_million(const std::string& k) const {
        uint64_t v = 0;
        if (auto a = anomalies.find(k); a != anomalies.end())
            v = a->second;
        else if (auto c = counts.find(k); c != counts.end())
            v = c->second;
        return ops ? 1e6 * double(v) / double(ops) : 0;
    }
};

std::string json_escape(const std::string& s);
// One line on the results channel: "uringrace-result {json}" (parsed by the
// selftests and the host alike: scripts/uringrace/results.py).
inline constexpr const char* kResultTag = "uringrace-result ";
std::string to_json(const Result& r);
std::string to_text(const Result& r);

} // namespace uringrace
