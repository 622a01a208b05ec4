// The report as PDF: the same sections as the HTML report (export.h), laid out on A4 pages with
// Qt's PDF writer and vector charts. Available in builds with Qt 6 (the desktop app's builds);
// elsewhere export_pdf throws l2a::Error saying so.
#pragma once

#include <filesystem>

#include "l2a/engine/profile.h"

namespace l2a {

// True when this build can write PDF.
bool pdf_export_available();

// Writes atomically (temporary file + rename); throws l2a::Error naming the file. Works without
// a display: with no Qt application running it starts a headless one for the call.
void export_pdf(const Profile& profile, const std::filesystem::path& path,
                const Profile* compare = nullptr);

}  // namespace l2a
