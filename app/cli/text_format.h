// Text for a terminal: what the CLI alone draws. Numbers with units come from
// l2a/engine/units.h, which the reports and the app share.
#pragma once

#include <cstdint>
#include <string>

#include "l2a/engine/units.h"

namespace l2a::cli {

// A bar `width` cells wide drawn with eighth blocks; fraction is clamped to [0, 1].
std::string fraction_bar(double fraction, int width);
// Keeps the first line of a message (library errors can carry stack traces).
std::string first_line(const std::string& text);

}  // namespace l2a::cli
