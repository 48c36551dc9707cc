// uringrace: the UAPI header's lists (scenarios, variants, modes, anomaly
// kinds), expanded once for the driver. Names are never spelled here.
#pragma once

#include <linux/uringrace.h>

#include <optional>
#include <span>
#include <string_view>

namespace uringrace {

struct Named {
    unsigned id;
    std::string_view name;
    std::string_view what;
};

// clang-format off
inline constexpr Named kScenarios[] = {
#define URINGRACE_SCENARIO(ID, nm, modes, an, what) Named{URINGRACE_SC_##ID, #nm, what},
#include <linux/uringrace_list.h>
};
inline constexpr Named kVariants[] = {
#define URINGRACE_VARIANT(ID, nm, what) Named{URINGRACE_VAR_##ID, #nm, what},
#include <linux/uringrace_list.h>
};
inline constexpr Named kModes[] = {
#define URINGRACE_MODE(ID, nm, what) Named{URINGRACE_MODE_##ID, #nm, what},
#include <linux/uringrace_list.h>
};
inline constexpr Named kAnomalies[] = {
#define URINGRACE_ANOMALY(ID, nm, what) Named{URINGRACE_AN_##ID, #nm, what},
#include <linux/uringrace_list.h>
};
// clang-format on

inline constexpr std::string_view name_of(std::span<const Named> list, unsigned id) {
    for (const auto& n : list)
        if (n.id == id)
            return n.name;
    return "?";
}

inline std::optional<unsigned> id_of(std::span<const Named> list, std::string_view name) {
    for (const auto& n : list)
        if (n.name == name)
            return n.id;
    return std::nullopt;
}

} // namespace uringrace
