// The timeline: layer/phase ranges on a host lane and kernels and memory operations on one lane
// per GPU stream, over the run's time axis. Wheel zooms about the cursor, drag pans. Events
// narrower than a few pixels are folded into one box that says how many it holds (Tracy's
// approach); only the visible time range is walked (binary search on sorted begin times).
// Hover shows name, range, duration; a click on a layer's range selects that layer.
#pragma once

#include <QRectF>
#include <QStringList>
#include <memory>

#include "l2a/ui/imgui_widget.h"

namespace l2a::ui {

class Selection;
class Session;

class TimelineView : public ImGuiWidget {
    Q_OBJECT
public:
    TimelineView(Session* session, Selection* selection, QWidget* parent = nullptr);
    ~TimelineView() override;

    // Lanes shown (host ranges by depth, then one per stream) and boxes drawn in the last frame
    // (folded boxes count once). Tests check folding with them.
    int laneCount() const;
    long long boxesDrawnLastFrame() const;
    // The visible time window in seconds since the start of the run.
    void setVisibleTime(double begin_s, double end_s);
    // Where the last frame drew the lanes' events (widget coordinates; the first lane at the
    // top) and the time axis's labels, left to right. For tests.
    QRectF eventArea() const;
    QStringList tickLabels() const;

protected:
    void drawFrame() override;

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace l2a::ui
