// The timeline. Two kinds of lane, each with its own builder and draw function (as Tracy's
// timeline items): the host ranges, one lane per nesting depth, then one lane per GPU stream
// with its kernels and memory operations. Each lane's events are sorted by begin; a frame
// binary-searches the first visible one and walks right, folding runs of events narrower than
// kFoldPx into one box labelled with their count, and jumps past each fold by another binary
// search, so a frame costs about the number of boxes on screen, not the number of events.
#include "l2a/ui/timeline_view.h"

#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "l2a/engine/units.h"
#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"

namespace l2a::ui {
namespace {

constexpr float kFoldPx = 3.0f;
constexpr float kLaneH = 20.0f;
constexpr float kMinLabelW = 60.0f;  // lane labels: at least this, else their widest
constexpr float kTopBar = 44.0f;     // the source line and the colour legend
constexpr float kAxisH = 18.0f;

struct Event {
    std::int64_t begin = 0;
    std::int64_t end = 0;
    std::string name;
    int layer = -1;  // the layer it belongs to, -1 for none
    ImU32 colour = 0;
    std::string part;  // a layer part's phase ("mlp" of "layer 3 / mlp"): the shorter label
};

struct Lane {
    std::string label;
    std::vector<Event> events;  // sorted by begin, not overlapping
};

// The lanes by kind, in the order they are drawn.
struct Lanes {
    std::vector<Lane> host;     // host ranges, one lane per nesting depth
    std::vector<Lane> streams;  // one lane per GPU stream: its kernels and memory operations

    std::size_t size() const { return host.size() + streams.size(); }
    bool empty() const { return size() == 0; }
    std::int64_t end() const {
        std::int64_t last = 0;
        for (const auto* kind : {&host, &streams}) {
            for (const Lane& lane : *kind) {
                for (const Event& e : lane.events) last = std::max(last, e.end);
            }
        }
        return last;
    }
};

// The layer a range belongs to, -1 for none.
int layer_of(const TimedRange& range) { return is_layer_phase(range.phase) ? range.layer : -1; }

ImU32 phase_colour(Phase phase) {
    switch (phase) {
        case Phase::Local:
            return IM_COL32(0x7a, 0xa6, 0xd8, 255);
        case Phase::Router:
            return IM_COL32(0xf2, 0xb8, 0x4b, 255);
        case Phase::Global:
            return IM_COL32(0xd9, 0x53, 0x4f, 255);
        case Phase::Mlp:
            return IM_COL32(0x8b, 0xbf, 0x72, 255);
        default:
            return IM_COL32(0xb7, 0xbf, 0xcc, 255);
    }
}

const ImU32 kMemoryColour = IM_COL32(0x9b, 0x7f, 0xc9, 255);
const ImU32 kFoldColour = IM_COL32(0x8a, 0x93, 0xa3, 255);
const ImU32 kMutedColour = IM_COL32(0x5a, 0x63, 0x72, 255);  // lane labels, legend, axis
const ImU32 kInkColour = IM_COL32(0x1d, 0x23, 0x30, 255);    // names on boxes, selection

// A duration or a time since the run began: "0", "12.40 µs", "3.125 ms", "1.204 s".
std::string duration_text(std::int64_t ns) {
    return format_duration(static_cast<double>(ns) * 1e-9, {.s = 3, .ms = 3, .us = 2});
}

// An axis tick: one unit for the whole axis, chosen by the largest time on it, with the
// decimals the round step between ticks needs ("0", "0.5 ms", "1 ms", "17.61 ms", ...).
std::string tick_text(double ns, double step_ns, double axis_max_ns) {
    if (std::abs(ns) < step_ns * 1e-6) return "0";
    const double span = std::abs(axis_max_ns);
    const char* unit = "s";
    double scale = 1e-9;
    if (span < 1e6) {
        unit = "\u00b5s";
        scale = 1e-3;
    } else if (span < 1e9) {
        unit = "ms";
        scale = 1e-6;
    }
    const int decimals = exact_decimals(step_ns * scale, 10);
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f %s", decimals, ns * scale, unit);
    return buffer;
}

void sort_by_begin(std::vector<Lane>& lanes) {
    for (Lane& lane : lanes) {
        std::stable_sort(lane.events.begin(), lane.events.end(),
                         [](const Event& a, const Event& b) { return a.begin < b.begin; });
    }
}

// The host ranges, one lane per nesting depth: "host" the outermost, "host / phases" the rest;
// in a tensor-parallel run each other rank's below, as "rank 1" and "rank 1 / phases".
std::vector<Lane> build_host_lanes(const Profile& p) {
    std::vector<Lane> lanes;
    std::map<std::pair<std::int32_t, int>, std::size_t> host_lane;  // (rank, depth) -> lane
    for (const TimedRange& r : p.ranges) host_lane.try_emplace({r.rank, r.depth}, 0);
    std::int32_t previous_rank = -1;
    for (auto& [key, lane] : host_lane) {
        const auto [rank, depth] = key;
        const std::string owner = rank == 0 ? std::string("host") : "rank " + std::to_string(rank);
        lane = lanes.size();
        lanes.push_back({rank == previous_rank ? owner + " / phases" : owner, {}});
        previous_rank = rank;
    }
    for (const TimedRange& r : p.ranges) {
        lanes[host_lane[{r.rank, r.depth}]].events.push_back(
            {r.begin_ns, std::max(r.end_ns, r.begin_ns), range_name(r), layer_of(r),
             phase_colour(r.phase), is_layer_part(r.phase) ? phase_name(r.phase) : ""});
    }
    sort_by_begin(lanes);
    return lanes;
}

// One lane per GPU stream in order of first use: its kernels in the colour of the phase that
// launched them, its memory operations in their own colour.
std::vector<Lane> build_stream_lanes(const Profile& p) {
    std::vector<Lane> lanes;
    std::map<std::pair<int, int>, std::size_t> stream_lane;
    auto lane_for = [&](int device, int stream) -> Lane& {
        const auto key = std::make_pair(device, stream);
        if (!stream_lane.count(key)) {
            stream_lane[key] = lanes.size();
            lanes.push_back(
                {"GPU " + std::to_string(device) + " stream " + std::to_string(stream), {}});
        }
        return lanes[stream_lane[key]];
    };
    // The range a kernel or memory operation lies in; an Other range for none.
    const TimedRange outside;
    auto launched_in = [&](std::int64_t range) -> const TimedRange& {
        if (range < 0 || static_cast<std::size_t>(range) >= p.ranges.size()) return outside;
        return p.ranges[static_cast<std::size_t>(range)];
    };
    for (const KernelRecord& k : p.kernels) {
        const TimedRange& r = launched_in(k.range);
        lane_for(k.device_id, k.stream_id)
            .events.push_back({k.begin_ns,
                               std::max(k.end_ns, k.begin_ns),
                               k.name,
                               layer_of(r),
                               phase_colour(r.phase),
                               {}});
    }
    for (const MemoryOpRecord& m : p.memory_ops) {
        const int layer = layer_of(launched_in(m.range));
        lane_for(m.device_id, m.stream_id)
            .events.push_back(
                {m.begin_ns,
                 std::max(m.end_ns, m.begin_ns),
                 std::string(memory_op_kind_name(m.kind)) + " " + std::to_string(m.bytes) + " B",
                 layer,
                 kMemoryColour,
                 {}});
    }
    sort_by_begin(lanes);
    return lanes;
}

// One frame's geometry: the screen rectangle of the lanes' events and the time window on it.
struct Frame {
    ImVec2 origin;                            // the window's top left
    ImVec2 area_min, area_max;                // the events' area
    double view_begin = 0.0, view_end = 1.0;  // ns

    double width() const { return area_max.x - area_min.x; }
    double time_at(float x) const {
        return view_begin + (x - area_min.x) / width() * (view_end - view_begin);
    }
    float x_of(double t) const {
        return static_cast<float>(area_min.x +
                                  (t - view_begin) / (view_end - view_begin) * width());
    }
};

// The event under the mouse: a box, or the first event of a fold of `fold` events.
struct Hover {
    const Event* event = nullptr;
    long long fold = 0;
};

bool mouse_in(const ImVec2& mouse, float x0, float x1, float y) {
    return mouse.x >= x0 && mouse.x < x1 && mouse.y >= y && mouse.y < y + kLaneH;
}

// First line: where the times come from, and the controls' hint when it fits (else a shorter one).
void draw_source_line(const Profile& p) {
    ImGui::Text("%s", p.timeline_source.empty() ? "host timers" : p.timeline_source.c_str());
    ImGui::SameLine();
    const float room = ImGui::GetContentRegionAvail().x;
    const char* hint =
        "  wheel: zoom, drag: pan, double-click: whole run, click a layer: select it";
    if (ImGui::CalcTextSize(hint).x > room) hint = "  wheel: zoom, drag: pan, double-click: all";
    if (ImGui::CalcTextSize(hint).x <= room) ImGui::TextDisabled("%s", hint);
}

// Colour legend on the second line: the phases, then what GPU lanes add. In a narrow window the
// longer labels shorten ("folded", "other", "memory"), and a key that still has no room is left
// out whole rather than cut.
void draw_legend(ImDrawList* draw, const ImVec2& origin, float width, bool memory) {
    struct Key {
        const char* label;
        const char* short_label;
        ImU32 colour;
    };
    std::vector<Key> keys;
    for (Phase phase : kLayerPhases) {
        keys.push_back({phase_name(phase), phase_name(phase), phase_colour(phase)});
    }
    keys.push_back({"layer, other", "other", phase_colour(Phase::Other)});
    keys.push_back({"folded: too narrow", "folded", kFoldColour});
    if (memory) keys.insert(keys.end() - 1, Key{"memcpy, memset", "memory", kMemoryColour});
    const auto key_width = [](const char* label) { return 16 + ImGui::CalcTextSize(label).x + 14; };
    float full = 0;
    for (const Key& k : keys) full += key_width(k.label);
    const bool shorten = 6 + full - 14 > width;
    float x = origin.x + 6;
    const float y = origin.y + 24;
    for (const Key& k : keys) {
        const char* label = shorten ? k.short_label : k.label;
        if (x + 16 + ImGui::CalcTextSize(label).x > origin.x + width) break;
        draw->AddRectFilled(ImVec2(x, y + 2), ImVec2(x + 12, y + 12), k.colour);
        draw->AddText(ImVec2(x + 16, y), kMutedColour, label);
        x += key_width(label);
    }
}

// The step between the time axis's ticks: 1, 2 or 5 times a power of ten, the smallest that
// leaves at most eight intervals across the view and room for each label (so that the ticks
// fall on round times: 100, 200, 300 ms, never 75, 150, 225 ms of a 376 ms view); in a view too
// narrow for that, the largest step that still leaves one interval. 0: no ticks, for a view so
// short against its distance from 0 that its times cannot be told apart.
double tick_step(const Frame& f) {
    const double span = f.view_end - f.view_begin;
    const double axis_max = std::max(std::abs(f.view_begin), std::abs(f.view_end));
    if (!(span > 0.0) || !std::isfinite(span) || span < axis_max * 1e-12) return 0.0;
    // Each label as wide as the wider of the view's ends at that step, and 40 px of gap.
    return axis_step(span, f.width(), [&](double step) {
        const std::string label = tick_text(f.view_end, step, axis_max);
        const std::string other = tick_text(f.view_begin, step, axis_max);
        return std::max(ImGui::CalcTextSize(label.c_str()).x,
                        ImGui::CalcTextSize(other.c_str()).x) +
               40.0;
    });
}

// The time axis above the lanes: a tick with a grid line at each round multiple of the step
// inside the view (tick_step); returns their labels.
QStringList draw_axis(ImDrawList* draw, const Frame& f) {
    QStringList ticks;
    const double step = tick_step(f);
    if (step <= 0.0) return ticks;
    const double first = std::ceil(f.view_begin / step - 1e-6);
    // At most a few dozen ticks fit; the count bounds the loop even where k + 1 == k.
    for (int i = 0; i < 64; ++i) {
        const double t = (first + i) * step;
        if (!(t <= f.view_end + step * 1e-6)) break;
        const float x = f.x_of(t);
        draw->AddLine(ImVec2(x, f.area_min.y - 4), ImVec2(x, f.area_max.y),
                      IM_COL32(0xe3, 0xe7, 0xee, 255));
        const std::string text =
            tick_text(t, step, std::max(std::abs(f.view_begin), std::abs(f.view_end)));
        ticks << QString::fromStdString(text);
        const float w = ImGui::CalcTextSize(text.c_str()).x;
        draw->AddText(
            ImVec2(std::clamp(x - w / 2, f.area_min.x, f.area_max.x - w), f.area_min.y - kAxisH),
            kMutedColour, text.c_str());
    }
    return ticks;
}

// One pass of a frame over its lanes, top to bottom: where the next lane goes, the boxes drawn
// so far and the event under the mouse.
struct LanePass {
    LanePass(ImDrawList* d, const Frame& f, int selected)
        : draw(d), frame(f), selected_layer(selected), y(f.area_min.y) {}

    ImDrawList* draw;
    const Frame& frame;
    int selected_layer;
    float y;  // the next lane's top
    long long boxes = 0;
    Hover hover;

    bool full() const { return y + kLaneH > frame.area_max.y; }
};

// An event's box in its colour, outlined when its layer is the selected one.
void draw_box(const LanePass& pass, const Event& e, float x0, float x1) {
    const float y = pass.y;
    pass.draw->AddRectFilled(ImVec2(x0, y + 1), ImVec2(x1, y + kLaneH - 1), e.colour);
    if (pass.selected_layer >= 0 && e.layer == pass.selected_layer) {
        pass.draw->AddRect(ImVec2(x0, y + 1), ImVec2(x1, y + kLaneH - 1), kInkColour, 0.0f, 0,
                           2.0f);
    }
}

bool fits(const std::string& text, float x0, float x1) {
    return ImGui::CalcTextSize(text.c_str()).x <= x1 - x0 - 6;
}

// A name on a box when the box is wide enough for all of it, never a name cut in the middle.
void draw_box_label(const LanePass& pass, const std::string& text, float x0, float x1) {
    if (x1 - x0 <= 12 || text.empty() || !fits(text, x0, x1)) return;
    pass.draw->AddText(ImVec2(x0 + 3, pass.y + 3), kInkColour, text.c_str());
}

using EventIt = std::vector<Event>::const_iterator;

// A fold from `it`, whose box ends at x1: every event that begins within kFoldPx of where the
// fold ends so far and is itself narrower than kFoldPx, one grey box labelled with their count.
// Returns the first event after the fold.
EventIt draw_fold(LanePass& pass, EventIt it, EventIt end, float x0, float x1) {
    const Frame& f = pass.frame;
    const float y = pass.y;
    long long count = 0;
    float fold_end = x1;
    auto j = it;
    while (j != end) {
        const float bx = f.x_of(static_cast<double>(j->begin));
        const float ex = f.x_of(static_cast<double>(j->end));
        if (bx > fold_end + kFoldPx || ex - bx >= kFoldPx || bx > f.area_max.x) break;
        fold_end = std::max(fold_end, ex);
        ++count;
        ++j;
        // Jump over a long run of tiny events at once.
        const double limit = f.time_at(fold_end + kFoldPx);
        auto far = std::upper_bound(j, end, limit, [](double t, const Event& e) {
            return t < static_cast<double>(e.begin);
        });
        if (far - j > 8) {
            count += far - j;
            fold_end = std::max(fold_end, f.x_of(static_cast<double>(std::prev(far)->end)));
            j = far;
        }
    }
    const float right = std::max(fold_end, x0 + kFoldPx);
    pass.draw->AddRectFilled(ImVec2(x0, y + 1), ImVec2(right, y + kLaneH - 1), kFoldColour);
    if (right - x0 > 24) {
        const std::string label = std::to_string(count);
        pass.draw->AddText(ImVec2(x0 + 2, y + 3), IM_COL32(255, 255, 255, 255), label.c_str());
    }
    if (mouse_in(ImGui::GetIO().MousePos, x0, right, y)) pass.hover = {&*it, count};
    return j;
}

// One lane at pass.y, whatever its kind: its label, then its visible events left to right,
// narrow runs folded, each event wide enough to see drawn by draw_event(event, x0, x1). Moves
// pass.y to the next lane.
template <typename DrawEvent>
void draw_lane(LanePass& pass, const Lane& lane, DrawEvent draw_event) {
    const Frame& f = pass.frame;
    const float y = pass.y;
    pass.draw->AddText(ImVec2(f.origin.x + 4, y + 3), kMutedColour, lane.label.c_str());
    pass.draw->PushClipRect(ImVec2(f.area_min.x, y), ImVec2(f.area_max.x, y + kLaneH), true);
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    const auto& ev = lane.events;
    // First event that may be visible: events do not overlap within a lane, so the one before
    // the first begin past view_begin may still reach into view.
    auto it = std::upper_bound(ev.begin(), ev.end(), f.view_begin, [](double t, const Event& e) {
        return t < static_cast<double>(e.begin);
    });
    if (it != ev.begin()) --it;
    while (it != ev.end() && static_cast<double>(it->begin) < f.view_end) {
        const float x0 = std::max(f.x_of(static_cast<double>(it->begin)), f.area_min.x - 1);
        const float x1 = f.x_of(static_cast<double>(it->end));
        if (x1 < f.area_min.x) {
            ++it;
            continue;
        }
        ++pass.boxes;
        if (x1 - x0 >= kFoldPx) {
            draw_event(*it, x0, x1);
            if (mouse_in(mouse, x0, x1, y)) pass.hover = {&*it, 0};
            ++it;
        } else {
            it = draw_fold(pass, it, ev.end(), x0, x1);
        }
    }
    pass.draw->PopClipRect();
    pass.y += kLaneH;
}

// The host lanes: layers, phases and the other named ranges in their phase's colour. A box
// says its range's whole name when it fits, else its phase ("mlp" of "layer 3 / mlp").
void draw_host_lanes(LanePass& pass, const std::vector<Lane>& lanes) {
    for (const Lane& lane : lanes) {
        if (pass.full()) return;
        draw_lane(pass, lane, [&pass](const Event& e, float x0, float x1) {
            draw_box(pass, e, x0, x1);
            draw_box_label(pass, fits(e.name, x0, x1) ? e.name : e.part, x0, x1);
        });
    }
}

// The GPU stream lanes: kernels in the colour of the phase that launched them, memory
// operations in theirs. A box says its kernel's (or operation's) name when it fits.
void draw_stream_lanes(LanePass& pass, const std::vector<Lane>& lanes) {
    for (const Lane& lane : lanes) {
        if (pass.full()) return;
        draw_lane(pass, lane, [&pass](const Event& e, float x0, float x1) {
            draw_box(pass, e, x0, x1);
            draw_box_label(pass, e.name, x0, x1);
        });
    }
}

// The hovered event's name, start and duration (or how many a fold holds); a click on an event
// of a layer selects that layer.
void draw_tooltip(const Hover& hover, bool clicked, Selection* selection) {
    const Event& e = *hover.event;
    ImGui::BeginTooltip();
    if (hover.fold > 1) {
        ImGui::Text("%lld events folded (zoom in to see them)", hover.fold);
        ImGui::TextDisabled("first: %s", e.name.c_str());
    } else {
        ImGui::Text("%s", e.name.c_str());
        ImGui::Text("start %s, duration %s", duration_text(e.begin).c_str(),
                    duration_text(e.end - e.begin).c_str());
        if (e.layer >= 0) ImGui::TextDisabled("layer %d (click to select)", e.layer);
    }
    ImGui::EndTooltip();
    if (clicked && e.layer >= 0) selection->setLayer(e.layer);
}

}  // namespace

struct TimelineView::State {
    Session* session = nullptr;
    Selection* selection = nullptr;
    ProfilePtr shown;
    Lanes lanes;
    std::int64_t run_end = 1;
    double view_begin = 0.0, view_end = 1.0;  // ns
    long long boxes = 0;
    QRectF event_area;
    QStringList ticks;
    bool dragging = false;
    ImVec2 press_pos{};
    double press_begin = 0.0, press_end = 0.0;

    void show(const ProfilePtr& p);
    bool layOut(Frame& f);
    bool handleInput(Frame& f);
};

// Lanes of a newly shown profile; the whole run in view for the first one, or when the
// view reached far past the new run's end.
void TimelineView::State::show(const ProfilePtr& p) {
    if (p == shown) return;
    const bool fresh = !shown;
    shown = p;
    lanes = p ? Lanes{build_host_lanes(*p), build_stream_lanes(*p)} : Lanes{};
    run_end = std::max<std::int64_t>(1, lanes.end());
    if (p) run_end = std::max(run_end, static_cast<std::int64_t>(p->wall_seconds * 1e9));
    if (fresh || view_end > static_cast<double>(run_end) * 1.5) {
        view_begin = 0.0;
        view_end = static_cast<double>(run_end);
    }
}

// The events' area right of the lane labels and below the legend and the axis; false when
// the window is too narrow for it.
bool TimelineView::State::layOut(Frame& f) {
    const ImVec2 size = ImGui::GetWindowSize();
    f.origin = ImGui::GetWindowPos();
    float label_w = kMinLabelW;
    for (const auto* kind : {&lanes.host, &lanes.streams}) {
        for (const Lane& lane : *kind) {
            label_w = std::max(label_w, ImGui::CalcTextSize(lane.label.c_str()).x + 12);
        }
    }
    f.area_min = ImVec2(f.origin.x + label_w, f.origin.y + kTopBar + kAxisH);
    f.area_max = ImVec2(f.origin.x + size.x - 4, f.origin.y + size.y - 2);
    if (f.area_max.x <= f.area_min.x + 8) return false;
    event_area = QRectF(QPointF(f.area_min.x - f.origin.x, f.area_min.y - f.origin.y),
                        QPointF(f.area_max.x - f.origin.x, f.area_max.y - f.origin.y));
    f.view_begin = view_begin;
    f.view_end = view_end;
    return true;
}

// Wheel zooms about the cursor, drag pans, double-click shows the whole run; the frame gets
// the time window the input leaves. Returns whether the mouse was clicked (released where it
// was pressed).
bool TimelineView::State::handleInput(Frame& f) {
    ImGuiIO& io = ImGui::GetIO();
    const double width = f.width();
    const bool hovered = io.MousePos.x >= f.area_min.x && io.MousePos.x < f.area_max.x &&
                         io.MousePos.y >= f.area_min.y - kAxisH && io.MousePos.y < f.area_max.y;
    if (hovered && io.MouseWheel != 0.0f) {
        const double anchor = f.time_at(io.MousePos.x);
        const double span = std::clamp((view_end - view_begin) * std::pow(0.8, io.MouseWheel),
                                       1000.0, static_cast<double>(run_end) * 2);
        view_begin = anchor - (anchor - view_begin) * span / (view_end - view_begin);
        view_end = view_begin + span;
    }
    if (hovered && ImGui::IsMouseClicked(0)) {
        dragging = true;
        press_pos = io.MousePos;
        press_begin = view_begin;
        press_end = view_end;
    }
    if (hovered && ImGui::IsMouseDoubleClicked(0)) {
        view_begin = press_begin = 0.0;
        view_end = press_end = static_cast<double>(run_end);
    }
    if (dragging && ImGui::IsMouseDown(0)) {
        const double shift = (io.MousePos.x - press_pos.x) / width * (press_end - press_begin);
        view_begin = press_begin - shift;
        view_end = press_end - shift;
    }
    const bool clicked =
        dragging && ImGui::IsMouseReleased(0) &&
        std::abs(io.MousePos.x - press_pos.x) + std::abs(io.MousePos.y - press_pos.y) < 4.0f;
    if (ImGui::IsMouseReleased(0)) dragging = false;
    f.view_begin = view_begin;
    f.view_end = view_end;
    return clicked;
}

TimelineView::TimelineView(Session* session, Selection* selection, QWidget* parent)
    : ImGuiWidget(parent), state_(std::make_unique<State>()) {
    state_->session = session;
    state_->selection = selection;
    connect(session, &Session::baseChanged, this, [this] {
        state_->shown.reset();
        update();
    });
    connect(selection, &Selection::layerChanged, this, [this] { update(); });
}

TimelineView::~TimelineView() = default;

int TimelineView::laneCount() const { return static_cast<int>(state_->lanes.size()); }

long long TimelineView::boxesDrawnLastFrame() const { return state_->boxes; }

void TimelineView::setVisibleTime(double begin_s, double end_s) {
    state_->view_begin = begin_s * 1e9;
    state_->view_end = std::max(begin_s * 1e9 + 1.0, end_s * 1e9);
    update();
}

QRectF TimelineView::eventArea() const { return state_->event_area; }

QStringList TimelineView::tickLabels() const { return state_->ticks; }

// The frame as Tracy's timeline items: the source line, the legend, the axis, the host lanes,
// the GPU stream lanes, the tooltip.
void TimelineView::drawFrame() {
    State& s = *state_;
    const ProfilePtr& p = s.session->base();
    s.show(p);
    s.boxes = 0;
    ImGui::AlignTextToFramePadding();
    if (!p || s.lanes.empty()) {
        ImGui::TextDisabled(p ? "This run recorded no timeline." : "No run yet.");
        return;
    }
    draw_source_line(*p);
    ImDrawList* draw = ImGui::GetWindowDrawList();
    draw_legend(draw, ImGui::GetWindowPos(), ImGui::GetWindowWidth(), !p->memory_ops.empty());
    Frame frame;
    if (!s.layOut(frame)) return;
    const bool clicked = s.handleInput(frame);
    s.ticks = draw_axis(draw, frame);
    LanePass lanes(draw, frame, s.selection->layer());
    draw_host_lanes(lanes, s.lanes.host);
    draw_stream_lanes(lanes, s.lanes.streams);
    s.boxes = lanes.boxes;
    if (lanes.hover.event && !s.dragging) draw_tooltip(lanes.hover, clicked, s.selection);
}

}  // namespace l2a::ui
