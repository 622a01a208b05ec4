#include "progress_bar.h"

#include <unistd.h>

#include <cstdio>

#include "text_format.h"

namespace l2a::cli {
namespace {

constexpr auto kQuietPeriod = std::chrono::seconds(1);
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

}  // namespace

ProgressBar::ProgressBar(std::string what, bool enabled)
    : what_(std::move(what)),
      enabled_(enabled),
      terminal_(::isatty(2) == 1),
      start_(Clock::now()) {}

ProgressBar::~ProgressBar() { clear(); }

void ProgressBar::update(double fraction, std::string_view stage) {
    if (!enabled_ || !terminal_ || done_) return;
    const auto now = Clock::now();
    if (now - start_ < kQuietPeriod) return;
    if (drawn_ && now - last_draw_ < kRedrawInterval) return;
    last_draw_ = now;
    drawn_ = true;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    std::fprintf(stderr, "\r%s [%s] %3d%%  %.*s  %s\x1b[K", what_.c_str(),
                 fraction_bar(fraction, 30).c_str(), static_cast<int>(fraction * 100 + 0.5),
                 static_cast<int>(stage.size()), stage.data(), format_seconds(seconds).c_str());
    std::fflush(stderr);
}

void ProgressBar::clear() {
    if (drawn_) {
        std::fputs("\r\x1b[K", stderr);
        std::fflush(stderr);
        drawn_ = false;
    }
}

void ProgressBar::finish() {
    if (done_) return;
    done_ = true;
    clear();
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    if (enabled_ && !terminal_ && seconds >= 1.0) {
        std::fprintf(stderr, "l2a: %s done in %s\n", what_.c_str(),
                     format_seconds(seconds).c_str());
    }
}

}  // namespace l2a::cli
