// The PDF report's pages painted anywhere Qt paints (a preview in the desktop app, an image in
// tests). Only in builds with Qt 6; needs a QGuiApplication (fonts).
#pragma once

#include <QImage>

#include "l2a/engine/profile.h"

namespace l2a {

// Pages the report takes on A4 at any resolution (the layout is in points).
int report_page_count(const Profile& profile, const Profile* compare = nullptr);

// One A4 page (0-based) at `dpi`, white background. Throws l2a::Error for a page outside the
// report or a profile the report cannot show.
QImage render_report_page(const Profile& profile, const Profile* compare, int page, double dpi);

}  // namespace l2a
