#include "study_printer.h"

#include <cstdio>

#include "tensor_parallel_option.h"

namespace l2a::cli {

StudyPrinter::StudyPrinter(bool quiet) : quiet_(quiet || tensor_parallel_worker()) {}

StudyEvents StudyPrinter::events() {
    StudyEvents events;
    events.step = [this](const std::string& step) {
        finish();
        bar_ = std::make_unique<ProgressBar>(step, !quiet_);
    };
    events.progress = [this](double /*job*/, double step, const std::string& stage) {
        if (bar_) bar_->update(step, stage);
    };
    events.warning = [](const std::string& warning) {
        std::fprintf(stderr, "l2a: warning: %s\n", warning.c_str());
    };
    return events;
}

void StudyPrinter::finish() {
    if (bar_) bar_->finish();
    bar_.reset();
}

}  // namespace l2a::cli
