#include "progress_bar.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "l2a/engine/prefill.h"
#include "text_format.h"

namespace l2a::cli {
namespace {

constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

// One second, or L2A_PROGRESS_SECONDS when it holds a number from 0 to 3600.
std::chrono::steady_clock::duration quiet_period() {
    double seconds = 1.0;
    if (const char* text = std::getenv("L2A_PROGRESS_SECONDS")) {
        char* end = nullptr;
        const double value = std::strtod(text, &end);
        if (end != text && *end == '\0' && std::isfinite(value) && value >= 0 && value <= 3600) {
            seconds = value;
        }
    }
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(seconds));
}

}  // namespace

ProgressBar::ProgressBar(std::string what, bool enabled)
    : what_(std::move(what)),
      enabled_(enabled),
      terminal_(::isatty(2) == 1),
      quiet_(quiet_period()),
      start_(Clock::now()) {}

ProgressBar::~ProgressBar() { clear(); }

void ProgressBar::update(double fraction, std::string_view stage) {
    if (!enabled_ || done_) return;
    const auto now = Clock::now();
    if (now - start_ < quiet_) return;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const int percent = static_cast<int>(fraction * 100 + 0.5);
    if (!terminal_) {
        // A log gets one line per stage, and no more than one line per quiet period.
        if (stage == logged_stage_ || (logged_ && now - last_draw_ < quiet_)) return;
        logged_ = true;
        logged_stage_ = stage;
        last_draw_ = now;
        std::fprintf(stderr, "l2a: %s: %.*s (%d%%, %s)\n", what_.c_str(),
                     static_cast<int>(stage.size()), stage.data(), percent,
                     format_elapsed(seconds).c_str());
        std::fflush(stderr);
        return;
    }
    if (drawn_ && now - last_draw_ < kRedrawInterval) return;
    last_draw_ = now;
    drawn_ = true;
    std::fprintf(stderr, "\r%s [%s] %3d%%  %.*s  %s\x1b[K", what_.c_str(),
                 fraction_bar(fraction, 30).c_str(), percent, static_cast<int>(stage.size()),
                 stage.data(), format_elapsed(seconds).c_str());
    std::fflush(stderr);
}

void ProgressBar::update(const RunProgress& progress) {
    update(progress.fraction, describe(progress));
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
    const auto elapsed = Clock::now() - start_;
    if (enabled_ && !terminal_ && (logged_ || elapsed >= quiet_)) {
        std::fprintf(stderr, "l2a: %s done in %s\n", what_.c_str(),
                     format_elapsed(std::chrono::duration<double>(elapsed).count()).c_str());
    }
}

}  // namespace l2a::cli
