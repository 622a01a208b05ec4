// A study's events on stderr: a progress bar per step (ProgressBar: quiet for short steps, one
// line per stage without a terminal) and every warning as "l2a: warning: ..." lines.
#pragma once

#include <memory>

#include "l2a/profiler/study.h"
#include "progress_bar.h"

namespace l2a::cli {

class StudyPrinter {
public:
    // `quiet`: no progress bars (warnings are printed all the same). The ranks other than 0 of a
    // tensor-parallel run are always quiet: rank 0 shows the progress.
    explicit StudyPrinter(bool quiet);

    // Callbacks that draw into this printer, which must outlive them.
    StudyEvents events();
    // Ends the current step's bar (its "done in" line).
    void finish();

private:
    bool quiet_;
    std::unique_ptr<ProgressBar> bar_;
};

}  // namespace l2a::cli
