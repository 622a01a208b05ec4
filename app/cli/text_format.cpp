#include "text_format.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

namespace l2a::cli {

std::string group_digits(std::int64_t value) {
    std::string digits = std::to_string(value < 0 ? -value : value);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return value < 0 ? "-" + out : out;
}

std::string format_fixed(double value, int decimals) {
    if (!std::isfinite(value)) return std::isnan(value) ? "n/a" : (value > 0 ? "inf" : "-inf");
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
    return buffer;
}

std::string format_bytes(std::int64_t bytes) {
    static constexpr std::array<const char*, 5> units = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 1024) return std::to_string(bytes) + " B";
    double value = static_cast<double>(bytes);
    std::size_t unit = 0;
    value /= 1024.0;
    while (value >= 1024.0 && unit + 1 < units.size()) {
        value /= 1024.0;
        ++unit;
    }
    return format_fixed(value, value < 10 ? 2 : (value < 100 ? 1 : 0)) + " " + units[unit];
}

std::string format_seconds(double seconds) {
    if (!std::isfinite(seconds)) return "n/a";
    if (seconds < 10) return format_fixed(seconds, 2) + " s";
    if (seconds < 60) return format_fixed(seconds, 1) + " s";
    const auto whole = static_cast<std::int64_t>(std::llround(seconds));
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%lld min %02lld s", static_cast<long long>(whole / 60),
                  static_cast<long long>(whole % 60));
    return buffer;
}

std::string format_count_short(std::int64_t value) {
    const double v = static_cast<double>(value);
    if (value >= 1'000'000'000) return format_fixed(v / 1e9, 2) + "B";
    if (value >= 1'000'000) return format_fixed(v / 1e6, 1) + "M";
    if (value >= 1'000) return format_fixed(v / 1e3, 1) + "K";
    return std::to_string(value);
}

std::string fraction_bar(double fraction, int width) {
    static constexpr std::array<const char*, 8> partial = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    if (!std::isfinite(fraction)) fraction = 0;
    fraction = std::clamp(fraction, 0.0, 1.0);
    const auto eighths = static_cast<int>(std::lround(fraction * width * 8));
    std::string out;
    int cells = 0;
    for (; cells < eighths / 8; ++cells) out += "█";
    if (eighths % 8 != 0) {
        out += partial[static_cast<std::size_t>(eighths % 8)];
        ++cells;
    }
    for (; cells < width; ++cells) out += ' ';
    return out;
}

std::string first_line(const std::string& text) {
    const auto newline = text.find('\n');
    std::string line = newline == std::string::npos ? text : text.substr(0, newline);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    return line;
}

}  // namespace l2a::cli
