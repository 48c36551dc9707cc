// uringrace: the user-space driver. See `uringrace --help`.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "options.hpp"
#include "report.hpp"
#include "ringbuf_model.hpp"
#include "workloads.hpp"

using namespace uringrace;

namespace {

void on_sigint(int) {
    g_interrupted.store(true);
}

int emit(const Options& o, Result r) {
    r.label = o.label;
    std::cout << (o.json ? to_json(r) : to_text(r)) << std::endl;
    return r.counts.count("errors") ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h" || args[0] == "help")) {
        std::cout << usage();
        return 0;
    }
    std::string err;
    auto opt = parse_options(args, err);
    if (!opt) {
        std::cerr << "uringrace: " << err << "\n\n" << usage();
        return 2;
    }
    const Options& o = *opt;
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    share_creds(o.shared_creds);
    std::vector<Result> results;
    const auto& real = real_workloads();
    auto it = std::find_if(real.begin(), real.end(),
                           [&](const RealWorkload& w) { return o.workload == w.name; });
    if (it != real.end())
        results.push_back(it->run(o));
    else if (o.workload == "model")
        results.push_back(run_ringbuf_model(o));
    else if (o.workload == "litmus") {
        for (const auto& p : litmus_protocols())
            if (o.protocol == "both" || o.protocol == p)
                results.push_back(run_litmus(o, p));
    } else
        results.push_back(run_module(o));

    int rc = 0, skipped = 0;
    for (const auto& r : results) {
        rc |= emit(o, r);
        skipped += !r.skipped.empty();
    }
    // skipped for want of io_uring, permission or the module: 4; a setup
    // error (counted in "errors") stays an error even when nothing ran
    if (rc == 0 && skipped == static_cast<int>(results.size()))
        return 4;
    return rc;
}
