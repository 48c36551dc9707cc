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
    std::map<std::string, uint64_t> counts; // anomalies and other counters
    std::string skipped;                    // non-empty: why the workload was skipped

    double rate() const { return seconds > 0 ? ops / seconds : 0; }
    double per_million(const std::string& k) const {
        auto it = counts.find(k);
        return ops && it != counts.end() ? 1e6 * double(it->second) / double(ops) : 0;
    }
};

std::string json_escape(const std::string& s);
std::string to_json(const Result& r);
std::string to_text(const Result& r);

} // namespace uringrace
