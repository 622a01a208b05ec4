#include "text_format.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

namespace l2a::cli {

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
