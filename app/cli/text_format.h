// Numbers as people read them in a terminal.
#pragma once

#include <cstdint>
#include <string>

namespace l2a::cli {

std::string group_digits(std::int64_t value);        // 12345 -> "12,345"
std::string format_bytes(std::int64_t bytes);        // "512 B", "1.50 KiB", "3.20 MiB"
std::string format_seconds(double seconds);          // "0.84 s", "12.3 s", "2 min 05 s"
std::string format_count_short(std::int64_t value);  // 5712640 -> "5.7M"
std::string format_fixed(double value, int decimals);
// A bar `width` cells wide drawn with eighth blocks; fraction is clamped to [0, 1].
std::string fraction_bar(double fraction, int width);
// Keeps the first line of a message (library errors can carry stack traces).
std::string first_line(const std::string& text);

}  // namespace l2a::cli
