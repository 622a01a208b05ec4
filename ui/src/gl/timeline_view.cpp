// The timeline. Lanes: the host ranges by nesting depth, then one lane per GPU stream with its
// kernels and memory operations. Each lane's events are sorted by begin; a frame binary-searches
// the first visible one and walks right, folding runs of events narrower than kFoldPx into one
// box labelled with their count, and jumps past each fold by another binary search, so a frame
// costs about the number of boxes on screen, not the number of events.
#include "l2a/ui/timeline_view.h"

#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

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

// A duration or a time since the run began: "0", "12.40 µs", "3.125 ms", "1.204 s".
std::string duration_text(std::int64_t ns) {
    char buffer[32];
    if (ns == 0) return "0";
    const double v = static_cast<double>(ns);
    if (std::abs(v) >= 1e9) {
        std::snprintf(buffer, sizeof buffer, "%.3f s", v * 1e-9);
    } else if (std::abs(v) >= 1e6) {
        std::snprintf(buffer, sizeof buffer, "%.3f ms", v * 1e-6);
    } else {
        std::snprintf(buffer, sizeof buffer, "%.2f \u00b5s", v * 1e-3);
    }
    return buffer;
}

// An axis tick: one unit for the whole axis, chosen by the largest time on it, with the
// decimals the step between ticks needs ("0", "0.5 ms", "1.0 ms", "17.6062 ms", ...).
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
    const double step = step_ns * scale;
    const int decimals = std::clamp(static_cast<int>(std::ceil(-std::log10(step))) + 1, 0, 7);
    char buffer[40];
    std::snprintf(buffer, sizeof buffer, "%.*f %s", decimals, ns * scale, unit);
    return buffer;
}

std::vector<Lane> build_lanes(const Profile& p) {
    std::vector<Lane> lanes;
    std::map<int, std::size_t> host_lane;  // depth -> lane
    for (const TimedRange& r : p.ranges) {
        if (!host_lane.count(r.depth)) {
            host_lane[r.depth] = lanes.size();
            lanes.push_back({"host " + std::to_string(r.depth), {}});
        }
        lanes[host_lane[r.depth]].events.push_back(
            {r.begin_ns, std::max(r.end_ns, r.begin_ns), range_name(r), layer_of(r),
             phase_colour(r.phase), is_layer_part(r.phase) ? phase_name(r.phase) : ""});
    }
    if (!lanes.empty()) lanes.front().label = "host";
    for (std::size_t i = 1; i < lanes.size(); ++i) lanes[i].label = "host / phases";
    std::map<std::pair<int, int>, std::size_t> stream_lane;
    auto lane_for = [&](int device, int stream) -> Lane& {
        const auto key = std::make_pair(device, stream);
        if (!stream_lane.count(key)) {
            stream_lane[key] = lanes.size();
            lanes.push_back({"GPU " + std::to_string(device) + " stream " + std::to_string(stream), {}});
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
    for (Lane& lane : lanes) {
        std::stable_sort(lane.events.begin(), lane.events.end(),
                         [](const Event& a, const Event& b) { return a.begin < b.begin; });
    }
    return lanes;
}

}  // namespace

struct TimelineView::State {
    Session* session = nullptr;
    Selection* selection = nullptr;
    ProfilePtr shown;
    std::vector<Lane> lanes;
    std::int64_t run_end = 1;
    double view_begin = 0.0, view_end = 1.0;  // ns
    long long boxes = 0;
    QRectF event_area;
    QStringList ticks;
    bool dragging = false;
    ImVec2 press_pos{};
    double press_begin = 0.0, press_end = 0.0;
};

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

void TimelineView::drawFrame() {
    State& s = *state_;
    const ProfilePtr& p = s.session->base();
    if (p != s.shown) {
        const bool fresh = !s.shown;
        s.shown = p;
        s.lanes = p ? build_lanes(*p) : std::vector<Lane>{};
        s.run_end = 1;
        for (const Lane& lane : s.lanes) {
            for (const Event& e : lane.events) s.run_end = std::max(s.run_end, e.end);
        }
        if (p) s.run_end = std::max(s.run_end, static_cast<std::int64_t>(p->wall_seconds * 1e9));
        if (fresh || s.view_end > static_cast<double>(s.run_end) * 1.5) {
            s.view_begin = 0.0;
            s.view_end = static_cast<double>(s.run_end);
        }
    }
    s.boxes = 0;
    ImGui::AlignTextToFramePadding();
    if (!p || s.lanes.empty()) {
        ImGui::TextDisabled(p ? "This run recorded no timeline." : "No run yet.");
        return;
    }
    ImGui::Text("%s", p->timeline_source.empty() ? "host timers" : p->timeline_source.c_str());
    // The hint when it fits on the line, else a shorter one.
    ImGui::SameLine();
    {
        const float room = ImGui::GetContentRegionAvail().x;
        const char* hint =
            "  wheel: zoom, drag: pan, double-click: whole run, click a layer: select it";
        if (ImGui::CalcTextSize(hint).x > room)
            hint = "  wheel: zoom, drag: pan, double-click: all";
        if (ImGui::CalcTextSize(hint).x <= room) ImGui::TextDisabled("%s", hint);
    }

    const ImVec2 origin = ImGui::GetWindowPos();
    const ImVec2 size = ImGui::GetWindowSize();
    ImDrawList* draw = ImGui::GetWindowDrawList();
    const ImU32 muted = IM_COL32(0x5a, 0x63, 0x72, 255);
    // Colour legend on the second line: the phases, then what GPU lanes add.
    {
        bool memory = !p->memory_ops.empty();
        struct Key {
            const char* label;
            ImU32 colour;
        };
        std::vector<Key> keys;
        for (Phase phase : kLayerPhases) keys.push_back({phase_name(phase), phase_colour(phase)});
        keys.push_back({"layer, other", phase_colour(Phase::Other)});
        keys.push_back({"folded: too narrow", kFoldColour});
        if (memory) keys.insert(keys.end() - 1, Key{"memcpy, memset", kMemoryColour});
        float x = origin.x + 6;
        const float y = origin.y + 24;
        for (const Key& k : keys) {
            draw->AddRectFilled(ImVec2(x, y + 2), ImVec2(x + 12, y + 12), k.colour);
            draw->AddText(ImVec2(x + 16, y), muted, k.label);
            x += 16 + ImGui::CalcTextSize(k.label).x + 14;
        }
    }
    float label_w = kMinLabelW;
    for (const Lane& lane : s.lanes) {
        label_w = std::max(label_w, ImGui::CalcTextSize(lane.label.c_str()).x + 12);
    }
    const ImVec2 area_min(origin.x + label_w, origin.y + kTopBar + kAxisH);
    const ImVec2 area_max(origin.x + size.x - 4, origin.y + size.y - 2);
    if (area_max.x <= area_min.x + 8) return;
    s.event_area = QRectF(QPointF(area_min.x - origin.x, area_min.y - origin.y),
                          QPointF(area_max.x - origin.x, area_max.y - origin.y));
    const double width = area_max.x - area_min.x;
    ImGuiIO& io = ImGui::GetIO();
    const bool hovered = io.MousePos.x >= area_min.x && io.MousePos.x < area_max.x &&
                         io.MousePos.y >= area_min.y - kAxisH && io.MousePos.y < area_max.y;
    auto time_at = [&](float x) {
        return s.view_begin + (x - area_min.x) / width * (s.view_end - s.view_begin);
    };
    auto x_of = [&](double t) {
        return static_cast<float>(area_min.x + (t - s.view_begin) / (s.view_end - s.view_begin) * width);
    };
    if (hovered && io.MouseWheel != 0.0f) {
        const double anchor = time_at(io.MousePos.x);
        const double span = std::clamp((s.view_end - s.view_begin) * std::pow(0.8, io.MouseWheel),
                                       1000.0, static_cast<double>(s.run_end) * 2);
        s.view_begin = anchor - (anchor - s.view_begin) * span / (s.view_end - s.view_begin);
        s.view_end = s.view_begin + span;
    }
    if (hovered && ImGui::IsMouseClicked(0)) {
        s.dragging = true;
        s.press_pos = io.MousePos;
        s.press_begin = s.view_begin;
        s.press_end = s.view_end;
    }
    if (hovered && ImGui::IsMouseDoubleClicked(0)) {
        s.view_begin = s.press_begin = 0.0;
        s.view_end = s.press_end = static_cast<double>(s.run_end);
    }
    if (s.dragging && ImGui::IsMouseDown(0)) {
        const double shift = (io.MousePos.x - s.press_pos.x) / width * (s.press_end - s.press_begin);
        s.view_begin = s.press_begin - shift;
        s.view_end = s.press_end - shift;
    }
    const bool clicked = s.dragging && ImGui::IsMouseReleased(0) &&
                         std::abs(io.MousePos.x - s.press_pos.x) + std::abs(io.MousePos.y - s.press_pos.y) < 4.0f;
    if (ImGui::IsMouseReleased(0)) s.dragging = false;

    // Time axis.
    s.ticks.clear();
    for (int tick = 0; tick <= 5; ++tick) {
        const double t = s.view_begin + (s.view_end - s.view_begin) * tick / 5.0;
        const float x = x_of(t);
        draw->AddLine(ImVec2(x, area_min.y - 4), ImVec2(x, area_max.y), IM_COL32(0xe3, 0xe7, 0xee, 255));
        const std::string text = tick_text(t, (s.view_end - s.view_begin) / 5.0,
                                           std::max(std::abs(s.view_begin), std::abs(s.view_end)));
        s.ticks << QString::fromStdString(text);
        const float w = ImGui::CalcTextSize(text.c_str()).x;
        draw->AddText(ImVec2(std::clamp(x - w / 2, area_min.x, area_max.x - w), area_min.y - kAxisH),
                      muted, text.c_str());
    }

    const int selected_layer = s.selection->layer();
    const Event* hover_event = nullptr;
    long long hover_fold = 0;
    float y = area_min.y;
    for (const Lane& lane : s.lanes) {
        if (y + kLaneH > area_max.y) break;
        draw->AddText(ImVec2(origin.x + 4, y + 3), muted, lane.label.c_str());
        draw->PushClipRect(ImVec2(area_min.x, y), ImVec2(area_max.x, y + kLaneH), true);
        const auto& ev = lane.events;
        // First event that may be visible: events do not overlap within a lane, so the one
        // before the first begin past view_begin may still reach into view.
        auto it = std::upper_bound(ev.begin(), ev.end(), s.view_begin,
                                   [](double t, const Event& e) { return t < static_cast<double>(e.begin); });
        if (it != ev.begin()) --it;
        while (it != ev.end() && static_cast<double>(it->begin) < s.view_end) {
            const float x0 = std::max(x_of(static_cast<double>(it->begin)), area_min.x - 1);
            const float x1 = x_of(static_cast<double>(it->end));
            if (x1 < area_min.x) {
                ++it;
                continue;
            }
            if (x1 - x0 >= kFoldPx) {
                const bool selected = selected_layer >= 0 && it->layer == selected_layer;
                draw->AddRectFilled(ImVec2(x0, y + 1), ImVec2(x1, y + kLaneH - 1), it->colour);
                if (selected) {
                    draw->AddRect(ImVec2(x0, y + 1), ImVec2(x1, y + kLaneH - 1),
                                  IM_COL32(0x1d, 0x23, 0x30, 255), 0.0f, 0, 2.0f);
                }
                // The whole name when it fits, else its last part ("mlp" of "layer 3 / mlp"),
                // never a name cut in the middle.
                if (x1 - x0 > 12) {
                    const std::string* label = &it->name;
                    if (ImGui::CalcTextSize(label->c_str()).x > x1 - x0 - 6) label = &it->part;
                    if (!label->empty() && ImGui::CalcTextSize(label->c_str()).x <= x1 - x0 - 6) {
                        draw->AddText(ImVec2(x0 + 3, y + 3), IM_COL32(0x1d, 0x23, 0x30, 255),
                                      label->c_str());
                    }
                }
                if (io.MousePos.x >= x0 && io.MousePos.x < x1 && io.MousePos.y >= y &&
                    io.MousePos.y < y + kLaneH) {
                    hover_event = &*it;
                    hover_fold = 0;
                }
                ++s.boxes;
                ++it;
                continue;
            }
            // Fold: everything that begins within kFoldPx of where this box ends.
            long long count = 0;
            float fold_end = x1;
            auto j = it;
            while (j != ev.end()) {
                const float bx = x_of(static_cast<double>(j->begin));
                const float ex = x_of(static_cast<double>(j->end));
                if (bx > fold_end + kFoldPx || ex - bx >= kFoldPx || bx > area_max.x) break;
                fold_end = std::max(fold_end, ex);
                ++count;
                ++j;
                // Jump over a long run of tiny events at once.
                const double limit = time_at(fold_end + kFoldPx);
                auto far = std::upper_bound(j, ev.end(), limit, [](double t, const Event& e) {
                    return t < static_cast<double>(e.begin);
                });
                if (far - j > 8) {
                    count += far - j;
                    fold_end = std::max(fold_end, x_of(static_cast<double>(std::prev(far)->end)));
                    j = far;
                }
            }
            const float right = std::max(fold_end, x0 + kFoldPx);
            draw->AddRectFilled(ImVec2(x0, y + 1), ImVec2(right, y + kLaneH - 1), kFoldColour);
            if (right - x0 > 24) {
                const std::string label = std::to_string(count);
                draw->AddText(ImVec2(x0 + 2, y + 3), IM_COL32(255, 255, 255, 255), label.c_str());
            }
            if (io.MousePos.x >= x0 && io.MousePos.x < right && io.MousePos.y >= y &&
                io.MousePos.y < y + kLaneH) {
                hover_event = &*it;
                hover_fold = count;
            }
            ++s.boxes;
            it = j;
        }
        draw->PopClipRect();
        y += kLaneH;
    }

    if (hover_event && !s.dragging) {
        ImGui::BeginTooltip();
        if (hover_fold > 1) {
            ImGui::Text("%lld events folded (zoom in to see them)", hover_fold);
            ImGui::TextDisabled("first: %s", hover_event->name.c_str());
        } else {
            ImGui::Text("%s", hover_event->name.c_str());
            ImGui::Text("start %s, duration %s", duration_text(hover_event->begin).c_str(),
                        duration_text(hover_event->end - hover_event->begin).c_str());
            if (hover_event->layer >= 0) ImGui::TextDisabled("layer %d (click to select)", hover_event->layer);
        }
        ImGui::EndTooltip();
        if (clicked && hover_event->layer >= 0) s.selection->setLayer(hover_event->layer);
    }
}

}  // namespace l2a::ui
