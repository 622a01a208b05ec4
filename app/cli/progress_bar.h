// Progress of a long run on stderr. Short runs print nothing: progress appears only after one
// second. On a terminal it redraws one line; elsewhere (logs, pipes) it prints a line whenever
// the stage changes (at most one a second) and a final line with the time taken.
// L2A_PROGRESS_SECONDS=S sets that second to S (0: every stage from the start).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace l2a {
struct RunProgress;
}

namespace l2a::cli {

class ProgressBar {
public:
    // `what` names the work in the final line, e.g. "prefill of 8,192 tokens".
    ProgressBar(std::string what, bool enabled);
    ~ProgressBar();

    void update(double fraction, std::string_view stage);
    // A prefill's progress, in the words of describe(RunProgress).
    void update(const RunProgress& progress);
    // Clears the bar; on a non-terminal stderr, reports the time taken (runs over the quiet
    // period, or any run that printed a stage). Destroying an unfinished bar only clears it:
    // errors and cancellation print their own line.
    void finish();

private:
    using Clock = std::chrono::steady_clock;
    void clear();

    std::string what_;
    bool enabled_;
    bool terminal_;
    Clock::duration quiet_;
    bool drawn_ = false;
    bool done_ = false;
    bool logged_ = false;  // non-terminal: a stage line was printed
    std::string logged_stage_;
    Clock::time_point start_;
    Clock::time_point last_draw_;
};

}  // namespace l2a::cli
