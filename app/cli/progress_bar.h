// Progress of a long run on stderr. Short runs print nothing: the bar appears only after one
// second. On a terminal it redraws one line; elsewhere (logs, pipes) it prints one final line.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace l2a::cli {

class ProgressBar {
public:
    // `what` names the work in the final line, e.g. "prefill of 8,192 tokens".
    ProgressBar(std::string what, bool enabled);
    ~ProgressBar();

    void update(double fraction, std::string_view stage);
    // Clears the bar; on a non-terminal stderr, reports the time taken (runs over one second).
    // Destroying an unfinished bar only clears it: errors and cancellation print their own line.
    void finish();

private:
    using Clock = std::chrono::steady_clock;
    void clear();

    std::string what_;
    bool enabled_;
    bool terminal_;
    bool drawn_ = false;
    bool done_ = false;
    Clock::time_point start_;
    Clock::time_point last_draw_;
};

}  // namespace l2a::cli
