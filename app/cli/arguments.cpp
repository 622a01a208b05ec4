#include "arguments.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace l2a::cli {
namespace {

std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

}  // namespace

Arguments::Arguments(std::string command, const std::vector<OptionSpec>& specs,
                     std::span<const std::string_view> args)
    : command_(std::move(command)) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view arg = args[i];
        if (arg == "--help" || arg == "-h") {
            help_ = true;
            continue;
        }
        if (arg.size() < 3 || arg.substr(0, 2) != "--") {
            if (!arg.empty() && arg[0] == '-' && arg != "-") {
                usage_error("unknown option " + quoted(arg));
            }
            usage_error("unexpected argument " + quoted(arg));
        }
        std::string_view name = arg;
        std::optional<std::string_view> inline_value;
        if (auto eq = arg.find('='); eq != std::string_view::npos) {
            name = arg.substr(0, eq);
            inline_value = arg.substr(eq + 1);
        }
        const OptionSpec* spec = nullptr;
        for (const OptionSpec& s : specs) {
            if (s.name == name) spec = &s;
        }
        if (!spec) usage_error("unknown option " + quoted(name));
        if (values_.contains(name)) usage_error("option " + quoted(name) + " given twice");
        std::string value;
        if (spec->takes_value) {
            if (inline_value) {
                value = *inline_value;
            } else if (i + 1 < args.size() &&
                       (args[i + 1].substr(0, 2) != "--" || args[i + 1] == "-")) {
                value = args[++i];
            } else {
                usage_error("option " + quoted(name) + " needs a value");
            }
        } else if (inline_value) {
            usage_error("option " + quoted(name) + " takes no value");
        }
        // An empty value ("$DOC" of an unset variable) is a mistake, never a choice: without this
        // check `--doc ""` would run the built-in document.
        if (spec->takes_value && value.empty() && !spec->empty_allowed) {
            usage_error("option " + quoted(name) + " needs a value (it is empty)");
        }
        values_.emplace(std::string(name), std::move(value));
    }
}

bool Arguments::has(std::string_view name) const { return values_.find(name) != values_.end(); }

std::optional<std::string> Arguments::value(std::string_view name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second;
}

std::optional<std::int64_t> Arguments::integer(std::string_view name, std::int64_t min,
                                               std::int64_t max) const {
    auto text = value(name);
    if (!text) return std::nullopt;
    std::int64_t result = 0;
    const char* end = text->data() + text->size();
    auto [ptr, ec] = std::from_chars(text->data(), end, result);
    if (ec != std::errc() || ptr != end || text->empty()) {
        usage_error(std::string(name) + ": " + quoted(*text) + " is not a whole number");
    }
    if (result < min || result > max) {
        usage_error(std::string(name) + ": " + *text + " is out of range (" + std::to_string(min) +
                    " to " + std::to_string(max) + ")");
    }
    return result;
}

std::optional<std::uint64_t> Arguments::unsigned_integer(std::string_view name) const {
    auto text = value(name);
    if (!text) return std::nullopt;
    std::uint64_t result = 0;
    const char* end = text->data() + text->size();
    auto [ptr, ec] = std::from_chars(text->data(), end, result);
    if (ec != std::errc() || ptr != end || text->empty()) {
        usage_error(std::string(name) + ": " + quoted(*text) +
                    " is not a whole number from 0 to 18446744073709551615");
    }
    return result;
}

std::optional<double> Arguments::number(std::string_view name) const {
    auto text = value(name);
    if (!text) return std::nullopt;
    double result = 0;
    const char* end = text->data() + text->size();
    auto [ptr, ec] = std::from_chars(text->data(), end, result);
    if (ec != std::errc() || ptr != end || text->empty() || !std::isfinite(result)) {
        usage_error(std::string(name) + ": " + quoted(*text) + " is not a number");
    }
    return result;
}

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> items;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        items.push_back(text.substr(start, comma - start));
        start = comma + 1;
    }
    return items;
}

std::optional<std::vector<double>> Arguments::numbers(std::string_view name) const {
    auto text = value(name);
    if (!text) return std::nullopt;
    std::vector<double> result;
    for (const std::string& item : split_list(*text)) {
        double x = 0;
        auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), x);
        if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() ||
            !std::isfinite(x)) {
            usage_error(std::string(name) + ": " + quoted(item) + " (in " + quoted(*text) +
                        ") is not a number");
        }
        result.push_back(x);
    }
    return result;
}

void Arguments::usage_error(const std::string& message) const {
    throw UsageError(command_, message);
}

}  // namespace l2a::cli
