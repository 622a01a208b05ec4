// Builds without Qt: the PDF report is not available; say so and how to get it.
#include "l2a/engine/error.h"
#include "l2a/profiler/report_pdf.h"

namespace l2a {

bool pdf_export_available() { return false; }

void export_pdf(const Profile&, const std::filesystem::path& path, const Profile*) {
    fail(path.string(),
         "PDF export needs a build with Qt 6 (this one was configured without it, e.g. "
         "-DL2A_WITH_GUI=OFF); export --format html and print that, or rebuild with Qt");
}

}  // namespace l2a
