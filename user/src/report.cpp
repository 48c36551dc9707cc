#include "report.hpp"

#include <cstdio>
#include <sstream>

#include "fences.hpp"

namespace uringrace {

std::string json_escape(const std::string& s) {
    std::string o;
    for (unsigned char c : s) {
        switch (c) {
        case '"':
            o += "\\\"";
            break;
        case '\\':
            o += "\\\\";
            break;
        case '\n':
            o += "\\n";
            break;
        case '\t':
            o += "\\t";
            break;
        default:
            if (c < 0x20) {
                char b[8];
                std::snprintf(b, sizeof(b), "\\u%04x", c);
                o += b;
            } else {
                o += char(c);
            }
        }
    }
    return o;
}

std::string to_json(const Result& r) {
    std::ostringstream o;
    char secs[32];
    std::snprintf(secs, sizeof(secs), "%.3f", r.seconds);
    auto map = [&o](const std::map<std::string, uint64_t>& m) {
        bool first = true;
        o << "{";
        for (const auto& [k, v] : m) {
            o << (first ? "" : ",") << "\"" << json_escape(k) << "\":" << v;
            first = false;
        }
        o << "}";
    };
    o << kResultTag << "{\"label\":\"" << json_escape(r.label.empty() ? r.workload : r.label)
      << "\",\"workload\":\"" << json_escape(r.workload) << "\",\"path\":\"" << json_escape(r.path)
      << "\",\"fence\":\"" << json_escape(r.fence) << "\"";
    // the C++ model's verdict on the form (fences.hpp), for the readers' tables
    if (auto f = fence_from(r.fence))
        o << ",\"fence_model\":\"" << fence_model(*f, r.workload) << "\"";
    o << ",\"ops\":" << r.ops << ",\"seconds\":" << secs;
    if (!r.skipped.empty())
        o << ",\"skipped\":\"" << json_escape(r.skipped) << "\"";
    o << ",\"anomaly_total\":" << r.anomaly_total() << ",\"anomalies\":";
    map(r.anomalies);
    o << ",\"counts\":";
    map(r.counts);
    o << "}";
    return o.str();
}

std::string to_text(const Result& r) {
    std::ostringstream o;
    char line[160];
    if (!r.skipped.empty())
        return r.workload + " (" + r.path +
               (r.counts.count("errors") ? "): error: " : "): skipped: ") + r.skipped;
    std::snprintf(line, sizeof(line), "%-15s %-9s fence %-3s %12llu ops in %7.2f s = %12.0f/s",
                  r.workload.c_str(), r.path.c_str(), r.fence.c_str(),
                  static_cast<unsigned long long>(r.ops), r.seconds, r.rate());
    o << line;
    for (const auto* m : {&r.anomalies, &r.counts})
        for (const auto& [k, v] : *m) {
            std::snprintf(line, sizeof(line), "; %s %llu (%.1f/M)", k.c_str(),
                          static_cast<unsigned long long>(v), r.per_million(k));
            o << line;
        }
    return o.str();
}

} // namespace uringrace
