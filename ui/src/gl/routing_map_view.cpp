// The routing map. The decisions of a run become a pyramid of RGBA textures (level k: 2^k tokens
// per texel, colour = "any routed" lifting the alpha to a visible floor, plus the routed share on
// top), uploaded once per profile. Each frame draws the level whose texels are about one screen
// pixel wide, as a few textured quads: wide documents are wrapped into rows of the GL's maximum
// texture width, one quad per wrapped row segment in view.
#include "l2a/ui/routing_map_view.h"

#include <imgui.h>

#include <QOpenGLFramebufferObject>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "l2a/engine/units.h"
#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"

namespace l2a::ui {
namespace {

constexpr unsigned char kRouted[3] = {0xc0, 0x39, 0x2b};
constexpr int kLeftAxis = 44;   // px for the axis title and the layer labels
constexpr int kTextStrip = 16;  // px under the map for the tokens' text at deep zoom
constexpr int kBottomAxis = 18 + 18 + kTextStrip;  // text strip, token positions, title/legend
constexpr int kTopBar = 24;                        // px for the toolbar line
constexpr float kTokenTextPx = 11.0f;  // token text shows once a token is this wide or wider

// Alpha of a texel: 0 without a routed token; else a floor that keeps a lone routed token
// visible at any zoom, rising with the routed share.
unsigned char texel_alpha(std::uint32_t routed, std::uint32_t count) {
    if (routed == 0) return 0;
    const double share = static_cast<double>(routed) / static_cast<double>(count);
    return static_cast<unsigned char>(std::lround(255.0 * (0.35 + 0.65 * share)));
}

ImU32 colour(unsigned char r, unsigned char g, unsigned char b, unsigned char a = 255) {
    return IM_COL32(r, g, b, a);
}

const ImU32 kBackground = IM_COL32(0xf1, 0xf3, 0xf7, 255);  // a token that stayed local
const ImU32 kPrunedFill = IM_COL32(0xd5, 0xd9, 0xe0, 255);
const ImU32 kPrunedHatch = IM_COL32(0x8a, 0x93, 0xa3, 255);
const ImU32 kMuted = IM_COL32(0x5a, 0x63, 0x72, 255);

// Grey with diagonal hatching: a layer whose global attention was removed, unlike a layer whose
// router chose no token (plain background).
void draw_pruned(ImDrawList* draw, ImVec2 a, ImVec2 b) {
    draw->AddRectFilled(a, b, kPrunedFill);
    draw->PushClipRect(a, b, true);
    const float h = b.y - a.y;
    for (float x = a.x - h; x < b.x; x += 7.0f) {
        draw->AddLine(ImVec2(x, b.y), ImVec2(x + h, a.y), kPrunedHatch, 1.0f);
    }
    draw->PopClipRect();
}

// Text read from bottom to top, centred on `centre` (ImGui draws text horizontally only: the
// glyphs' vertices are turned a quarter turn after they are added).
void add_vertical_text(ImDrawList* draw, ImVec2 centre, ImU32 col, const char* text) {
    const int first = draw->VtxBuffer.Size;
    const ImVec2 size = ImGui::CalcTextSize(text);
    // Glyphs outside the clip rectangle are dropped before the turn: clip after it instead.
    draw->PushClipRect(ImVec2(centre.x - size.x, centre.y - size.x),
                       ImVec2(centre.x + size.x, centre.y + size.x), false);
    draw->AddText(ImVec2(centre.x - size.x / 2, centre.y - size.y / 2), col, text);
    draw->PopClipRect();
    for (int i = first; i < draw->VtxBuffer.Size; ++i) {
        ImVec2& p = draw->VtxBuffer[i].pos;
        const float dx = p.x - centre.x, dy = p.y - centre.y;
        p = ImVec2(centre.x + dy, centre.y - dx);
    }
}

// A token's text as one line: newlines and tabs shown as symbols, control bytes as "·".
std::string printable(std::string text) {
    std::string out;
    for (char c : text) {
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (static_cast<unsigned char>(c) < 0x20) {
            out += '.';
        } else {
            out += c;
        }
    }
    return out;
}

// One frame's geometry: the map's screen rectangle, the document's size and the visible tokens.
struct MapFrame {
    ImVec2 origin;            // the window's top left
    ImVec2 map_min, map_max;  // the map
    double map_w = 1.0;
    double tokens = 1.0;  // tokens of the profile shown
    int layers = 1;
    double row_h = 1.0;  // px per layer
    double view_first = 0.0, view_last = 1.0;

    double token_at(float x) const {
        return view_first + (x - map_min.x) / map_w * (view_last - view_first);
    }
    float x_of(double token) const {
        return static_cast<float>(map_min.x +
                                  (token - view_first) / (view_last - view_first) * map_w);
    }
    int layer_at(float y) const {
        return std::clamp(static_cast<int>((y - map_min.y) / row_h), 0, layers - 1);
    }
};

// Toolbar line: the run's size, base or variant, and the controls' hint when it fits.
void draw_toolbar(const Profile& shown, bool has_variant, bool& show_variant) {
    ImGui::Text("%lld tokens x %lld layers", static_cast<long long>(shown.num_tokens()),
                static_cast<long long>(shown.num_layers));
    if (has_variant) {
        ImGui::SameLine();
        if (ImGui::RadioButton("base", !show_variant)) show_variant = false;
        ImGui::SameLine();
        if (ImGui::RadioButton("what-if variant", show_variant)) show_variant = true;
    }
    ImGui::SameLine();
    const float room = ImGui::GetContentRegionAvail().x;
    const char* hint = "  wheel: zoom, drag: pan, double-click: whole document";
    if (ImGui::CalcTextSize(hint).x > room) hint = "  wheel: zoom, drag: pan";
    if (ImGui::CalcTextSize(hint).x <= room) ImGui::TextDisabled("%s", hint);
}

// Pruned layers of the run shown: hatched, so that they do not read as layers whose router
// chose no token.
void draw_pruned_layers(ImDrawList* draw, const MapFrame& f, const std::vector<int>& prune) {
    for (int layer : prune) {
        if (layer < 0 || layer >= f.layers) continue;
        const ImVec2 a(f.map_min.x, static_cast<float>(f.map_min.y + f.row_h * layer));
        const ImVec2 b(f.map_max.x, static_cast<float>(f.map_min.y + f.row_h * (layer + 1)));
        draw_pruned(draw, a, b);
        if (f.row_h >= 14) {
            const char* label = "pruned";
            const ImVec2 size = ImGui::CalcTextSize(label);
            const ImVec2 at(a.x + 6, (a.y + b.y - size.y) / 2);
            draw->AddRectFilled(ImVec2(at.x - 3, at.y - 1),
                                ImVec2(at.x + size.x + 3, at.y + size.y + 1), kPrunedFill);
            draw->AddText(at, colour(0x39, 0x41, 0x4f), label);
        }
    }
}

// The layer axis left of the map: its title read upwards and every layer's number that fits.
void draw_layer_axis(ImDrawList* draw, const MapFrame& f) {
    add_vertical_text(draw,
                      ImVec2(f.origin.x + 9, static_cast<float>((f.map_min.y + f.map_max.y) / 2)),
                      kMuted, "layer");
    const int label_every = std::max(1, static_cast<int>(std::ceil(14.0 / f.row_h)));
    for (int l = 0; l < f.layers; l += label_every) {
        const std::string text = std::to_string(l);
        const float w = ImGui::CalcTextSize(text.c_str()).x;
        draw->AddText(ImVec2(f.map_min.x - 4 - w,
                             static_cast<float>(f.map_min.y + f.row_h * l + f.row_h / 2 - 7)),
                      kMuted, text.c_str());
    }
}

// The strip under the map: each visible token's text once tokens are kTokenTextPx wide (a
// token too wide for its cell shows its first character), else how to get there. Returns the
// texts drawn.
int draw_token_texts(ImDrawList* draw, const MapFrame& f, const Profile& p) {
    const float px_per_token = static_cast<float>(f.map_w / (f.view_last - f.view_first));
    const float strip_y = f.map_max.y + 2;
    if (px_per_token < kTokenTextPx) {
        draw->AddText(ImVec2(f.map_min.x, strip_y), colour(0x9a, 0xa1, 0xab),
                      "zoom in (wheel) to read the tokens");
        return 0;
    }
    int drawn = 0;
    draw->PushClipRect(ImVec2(f.map_min.x, f.map_max.y),
                       ImVec2(f.map_max.x, f.map_max.y + kTextStrip), true);
    const auto first = static_cast<std::int64_t>(std::floor(f.view_first));
    const auto last =
        std::min<std::int64_t>(p.num_tokens(), static_cast<std::int64_t>(std::ceil(f.view_last)));
    for (std::int64_t t = std::max<std::int64_t>(0, first); t < last; ++t) {
        const auto i = static_cast<std::size_t>(t);
        if (i >= p.token_begin.size() || p.token_end[i] > p.document_text.size() ||
            p.token_end[i] < p.token_begin[i]) {
            continue;
        }
        const std::string text =
            printable(p.document_text.substr(p.token_begin[i], p.token_end[i] - p.token_begin[i]));
        const float x0 = f.x_of(static_cast<double>(t));
        const float w = ImGui::CalcTextSize(text.c_str()).x;
        if (w > px_per_token - 1) {
            // Too wide for its cell: its first character and an ellipsis mark.
            draw->AddText(ImVec2(x0 + 1, strip_y), colour(0x1d, 0x23, 0x30),
                          text.substr(0, 1).c_str());
        } else {
            draw->AddText(ImVec2(x0 + (px_per_token - w) / 2, strip_y), colour(0x1d, 0x23, 0x30),
                          text.c_str());
        }
        ++drawn;
        if (t > first) {
            draw->AddLine(ImVec2(x0, f.map_max.y), ImVec2(x0, f.map_max.y + kTextStrip - 2),
                          colour(0xd5, 0xd9, 0xe0));
        }
    }
    draw->PopClipRect();
    return drawn;
}

// Colour legend, right-aligned on the line at title_y.
void draw_legend(ImDrawList* draw, const MapFrame& f, float title_y) {
    struct Key {
        const char* label;
        int kind;  // 0: routed, 1: local, 2: pruned
    };
    const Key keys[] = {{"global attention", 0}, {"local only", 1}, {"pruned layer", 2}};
    float width = 0;
    for (const Key& k : keys) width += 14 + 4 + ImGui::CalcTextSize(k.label).x + 14;
    float x = std::max(f.map_min.x + 240.0f, f.map_max.x - width);
    for (const Key& k : keys) {
        const ImVec2 a(x, title_y + 2), b(x + 14, title_y + 12);
        if (k.kind == 0) draw->AddRectFilled(a, b, colour(kRouted[0], kRouted[1], kRouted[2]));
        if (k.kind == 1) draw->AddRectFilled(a, b, kBackground);
        if (k.kind == 2) draw_pruned(draw, a, b);
        draw->AddRect(a, b, colour(0x9a, 0xa1, 0xab));
        draw->AddText(ImVec2(b.x + 4, title_y), kMuted, k.label);
        x = b.x + 4 + ImGui::CalcTextSize(k.label).x + 14;
    }
}

// The last token position the axis labels: the view's, within the document.
double last_labelled(const MapFrame& f) { return std::min(f.view_last, f.tokens) - 0.5; }

// The step between the token axis's ticks: 1, 2 or 5 times a power of ten tokens (at least
// one), the smallest that leaves at most eight intervals across the view and room for each
// label (0, 2000, 4000 of an 8,206-token document, never 2051, 4103); in a map too narrow for
// that, the widest step no longer than the view, so that a tick remains. 0 for an empty view.
long long token_tick_step(const MapFrame& f) {
    const double span = f.view_last - f.view_first;
    if (!(span > 0.0) || !std::isfinite(span)) return 0;
    const auto widest_token = static_cast<long long>(std::max(0.0, last_labelled(f)));
    const std::string widest = std::to_string(widest_token);
    const double room = ImGui::CalcTextSize(widest.c_str()).x + 24.0;
    return static_cast<long long>(axis_step(
        span, f.map_w, [room](double) { return room; }, 1.0));
}

// The token axis under the text strip: a tick under the middle of each token at a round
// position (token_tick_step) in view, then the axis title and the legend on one line. Returns
// the ticks' labels.
QStringList draw_token_axis(ImDrawList* draw, const MapFrame& f) {
    QStringList labels;
    const float ticks_y = f.map_max.y + kTextStrip + 2;
    const long long step = token_tick_step(f);
    if (step > 0) {
        // Token t spans [t, t + 1): the first whose middle is in view, up to the last token
        // of the document in view.
        long long token =
            std::max(0LL, static_cast<long long>(std::ceil((f.view_first - 0.5) / step)) * step);
        const double last = last_labelled(f);
        const auto room = static_cast<float>(f.map_w);
        float previous_right = -1e30f;  // where the last label drawn ends
        // At most a few dozen fit; the count bounds the loop.
        for (int i = 0; i < 64 && static_cast<double>(token) <= last; ++i, token += step) {
            const std::string text = std::to_string(token);
            const float x = f.x_of(static_cast<double>(token) + 0.5);
            const float w = ImGui::CalcTextSize(text.c_str()).x;
            draw->AddLine(ImVec2(x, f.map_max.y), ImVec2(x, f.map_max.y + 3), kMuted);
            // A label the map cannot hold, or that would run into the one before, is left out.
            if (w > room) continue;
            const float left = std::clamp(x - w / 2, f.map_min.x, f.map_max.x - w);
            if (left < previous_right + 4) continue;
            draw->AddText(ImVec2(left, ticks_y), kMuted, text.c_str());
            previous_right = left + w;
            labels << QString::fromStdString(text);
        }
    }
    const float title_y = ticks_y + 17;
    draw->AddText(ImVec2(f.map_min.x, title_y), kMuted, "token position in the document");
    draw_legend(draw, f, title_y);
    return labels;
}

// The selection: the token as a vertical line, the layer as a band outline.
void draw_selection(ImDrawList* draw, const MapFrame& f, const Selection& selection,
                    std::int64_t tokens) {
    if (const int layer = selection.layer(); layer >= 0 && layer < f.layers) {
        draw->AddRect(ImVec2(f.map_min.x, static_cast<float>(f.map_min.y + f.row_h * layer)),
                      ImVec2(f.map_max.x, static_cast<float>(f.map_min.y + f.row_h * (layer + 1))),
                      colour(0x1d, 0x23, 0x30, 200));
    }
    if (const qint64 token = selection.token(); token >= 0 && token < tokens) {
        const float x = f.x_of(static_cast<double>(token) + 0.5);
        if (x >= f.map_min.x && x <= f.map_max.x) {
            draw->AddLine(ImVec2(x, f.map_min.y), ImVec2(x, f.map_max.y), colour(0x1d, 0x23, 0x30),
                          2.0f);
        }
    }
}

// Crosshair and tooltip under the mouse: the token and its text, the layer's decision, the
// router's logit and probability; `tokens_per_texel` when the map is zoomed out past one token
// per texel (0 otherwise).
void draw_tooltip(ImDrawList* draw, const MapFrame& f, const Profile& p, int tokens_per_texel) {
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    draw->AddLine(ImVec2(mouse.x, f.map_min.y), ImVec2(mouse.x, f.map_max.y),
                  colour(0x39, 0x41, 0x4f, 90));
    draw->AddLine(ImVec2(f.map_min.x, mouse.y), ImVec2(f.map_max.x, mouse.y),
                  colour(0x39, 0x41, 0x4f, 90));
    const auto token =
        static_cast<std::int64_t>(std::clamp(f.token_at(mouse.x), 0.0, f.tokens - 1));
    const int layer = f.layer_at(mouse.y);
    const auto i = static_cast<std::size_t>(layer * p.num_tokens() + token);
    std::string text;
    const auto t = static_cast<std::size_t>(token);
    if (t < p.token_begin.size() && p.token_end[t] <= p.document_text.size()) {
        text = p.document_text.substr(p.token_begin[t], p.token_end[t] - p.token_begin[t]);
    }
    for (char& c : text) {
        if (c == '\n') c = ' ';
    }
    const double z = p.router_logits[i];
    const double temp = p.model.sigmoid_temp > 0 ? p.model.sigmoid_temp : 1.0;
    const bool pruned =
        std::find(p.options.prune.begin(), p.options.prune.end(), layer) != p.options.prune.end();
    ImGui::BeginTooltip();
    ImGui::Text("token %lld  \"%s\"", static_cast<long long>(token), text.c_str());
    ImGui::Text("layer %d: %s", layer,
                pruned           ? "pruned (no global attention)"
                : p.decisions[i] ? "global attention"
                                 : "local only");
    if (std::isfinite(z)) {
        ImGui::Text("router logit %.3f, p = %.3f", z, 1.0 / (1.0 + std::exp(-z / temp)));
    }
    if (tokens_per_texel > 0) ImGui::TextDisabled("%d tokens per texel here", tokens_per_texel);
    ImGui::EndTooltip();
}

}  // namespace

RoutingPyramid RoutingPyramid::build(const std::vector<unsigned char>& decisions, long long tokens,
                                     int layers) {
    RoutingPyramid pyramid;
    if (tokens <= 0 || layers <= 0) return pyramid;
    // Level 0 counts, then each level sums pairs of the one below (routed, count) per layer.
    std::vector<std::uint32_t> routed(static_cast<std::size_t>(tokens * layers));
    std::vector<std::uint32_t> count(routed.size(), 1);
    for (std::size_t i = 0; i < routed.size(); ++i) routed[i] = decisions[i] != 0;
    long long width = tokens;
    int step = 1;
    for (;;) {
        Level level;
        level.tokens_per_texel = step;
        level.width = static_cast<int>(width);
        level.height = layers;
        level.texels.resize(static_cast<std::size_t>(width * layers) * 2);
        for (std::size_t i = 0; i < static_cast<std::size_t>(width * layers); ++i) {
            level.texels[2 * i] = static_cast<unsigned char>(
                std::lround(255.0 * routed[i] / std::max<std::uint32_t>(1, count[i])));
            level.texels[2 * i + 1] = routed[i] ? 255 : 0;
        }
        pyramid.levels.push_back(std::move(level));
        if (width == 1) break;
        const long long next = (width + 1) / 2;
        std::vector<std::uint32_t> r2(static_cast<std::size_t>(next * layers));
        std::vector<std::uint32_t> c2(r2.size());
        for (int l = 0; l < layers; ++l) {
            for (long long x = 0; x < next; ++x) {
                const auto a = static_cast<std::size_t>(l * width + 2 * x);
                const auto o = static_cast<std::size_t>(l * next + x);
                r2[o] = routed[a];
                c2[o] = count[a];
                if (2 * x + 1 < width) {
                    r2[o] += routed[a + 1];
                    c2[o] += count[a + 1];
                }
            }
        }
        routed.swap(r2);
        count.swap(c2);
        width = next;
        step *= 2;
    }
    return pyramid;
}

struct RoutingMapView::State {
    Session* session = nullptr;
    Selection* selection = nullptr;
    ProfilePtr shown;  // the profile the textures hold
    bool show_variant = false;
    RoutingPyramid pyramid;
    bool dirty = true;  // textures to (re)build on the next frame

    // One GL texture per level: the level's rows wrapped at max_width texels.
    struct Texture {
        GLuint id = 0;
        int width = 0;     // texels per wrapped row
        int segments = 0;  // wrapped segments (each `layers` rows tall)
        int tokens_per_texel = 1;
        long long texels = 0;  // texels per layer
    };
    std::vector<Texture> textures;
    int max_width = 4096;

    // View: tokens [view_first, view_last) across the width.
    double view_first = 0.0, view_last = 1.0;
    bool dragging = false;
    bool double_clicked = false;  // the press was a double-click: its release selects nothing
    ImVec2 press_pos{};
    double press_first = 0.0, press_last = 0.0;
    // The selection before the first click of a possible double-click, which the
    // double-click puts back.
    QRectF map_area;
    int token_texts = 0;
    QStringList ticks;  // the token axis's labels in the last frame
    qint64 token_before_click = -1;
    int layer_before_click = -1;

    bool layOut(MapFrame& f, const Profile& p);
    bool handleInput(const MapFrame& f);
    std::size_t drawTexture(ImDrawList* draw, const MapFrame& f) const;
};

// The map's area between the toolbar line, the layer axis and the axes below; false when the
// widget is too small for it or nothing was uploaded.
bool RoutingMapView::State::layOut(MapFrame& f, const Profile& p) {
    const ImVec2 size = ImGui::GetWindowSize();
    f.origin = ImGui::GetWindowPos();
    f.map_min = ImVec2(f.origin.x + kLeftAxis, f.origin.y + kTopBar);
    f.map_max = ImVec2(f.origin.x + size.x - 4, f.origin.y + size.y - kBottomAxis);
    if (f.map_max.x <= f.map_min.x + 4 || f.map_max.y <= f.map_min.y + 4 || textures.empty()) {
        return false;
    }
    f.map_w = f.map_max.x - f.map_min.x;
    const double map_h = f.map_max.y - f.map_min.y;
    map_area = QRectF(QPointF(f.map_min.x - f.origin.x, f.map_min.y - f.origin.y),
                      QPointF(f.map_max.x - f.origin.x, f.map_max.y - f.origin.y));
    f.tokens = static_cast<double>(p.num_tokens());
    f.layers = static_cast<int>(p.num_layers);
    f.row_h = map_h / f.layers;
    f.view_first = view_first;
    f.view_last = view_last;
    return true;
}

// Wheel zooms about the cursor, drag pans, a click selects a token and a layer, a double-click
// shows the whole document (and keeps the selection of before its first click). Returns
// whether the mouse is over the map.
bool RoutingMapView::State::handleInput(const MapFrame& f) {
    const double T = f.tokens;
    ImGuiIO& io = ImGui::GetIO();
    const bool hovered = io.MousePos.x >= f.map_min.x && io.MousePos.x < f.map_max.x &&
                         io.MousePos.y >= f.map_min.y && io.MousePos.y < f.map_max.y;
    if (hovered && io.MouseWheel != 0.0f) {
        const double anchor = f.token_at(io.MousePos.x);
        const double factor = std::pow(0.8, io.MouseWheel);
        double span = std::clamp((view_last - view_first) * factor, std::min(16.0, T), T);
        double first = anchor - (anchor - view_first) * span / (view_last - view_first);
        first = std::clamp(first, 0.0, std::max(0.0, T - span));
        view_first = first;
        view_last = first + span;
    }
    if (hovered && ImGui::IsMouseClicked(0)) {
        dragging = true;
        press_pos = io.MousePos;
        press_first = view_first;
        press_last = view_last;
        double_clicked = ImGui::IsMouseDoubleClicked(0);
        if (!double_clicked) {
            token_before_click = selection->token();
            layer_before_click = selection->layer();
        }
    }
    if (hovered && ImGui::IsMouseDoubleClicked(0)) {
        view_first = press_first = 0.0;
        view_last = press_last = T;
        selection->setToken(token_before_click);
        selection->setLayer(layer_before_click);
    }
    if (dragging && ImGui::IsMouseDown(0)) {
        const double span = press_last - press_first;
        double first = press_first - (io.MousePos.x - press_pos.x) / f.map_w * span;
        first = std::clamp(first, 0.0, std::max(0.0, T - span));
        view_first = first;
        view_last = first + span;
    }
    if (dragging && ImGui::IsMouseReleased(0)) {
        dragging = false;
        const float moved =
            std::abs(io.MousePos.x - press_pos.x) + std::abs(io.MousePos.y - press_pos.y);
        if (moved < 4.0f && hovered && !double_clicked) {
            MapFrame now = f;  // the view as this frame's input left it
            now.view_first = view_first;
            now.view_last = view_last;
            const auto token =
                static_cast<qint64>(std::clamp(now.token_at(io.MousePos.x), 0.0, T - 1));
            selection->setToken(token);
            selection->setLayer(f.layer_at(io.MousePos.y));
        }
    }
    return hovered;
}

// The background and the level of the pyramid whose texels are at least a pixel wide (nearest
// sampling of finer texels would skip some, and a routed token could vanish between pixels),
// one quad per wrapped row segment in view. Returns the level drawn.
std::size_t RoutingMapView::State::drawTexture(ImDrawList* draw, const MapFrame& f) const {
    const int L = f.layers;
    draw->AddRectFilled(f.map_min, f.map_max, kBackground);
    const double tokens_per_px = (f.view_last - f.view_first) / f.map_w;
    std::size_t level = 0;
    while (level + 1 < textures.size() && textures[level].tokens_per_texel < tokens_per_px) {
        ++level;
    }
    const Texture& tex = textures[level];
    const auto tex_id = reinterpret_cast<ImTextureID>(static_cast<std::intptr_t>(tex.id));
    const double first_texel = f.view_first / tex.tokens_per_texel;
    const double last_texel = f.view_last / tex.tokens_per_texel;
    const int rows = tex.segments * L;
    for (int segment = static_cast<int>(first_texel) / tex.width;
         segment < tex.segments && static_cast<double>(segment) * tex.width < last_texel;
         ++segment) {
        const double seg_first = std::max(first_texel, static_cast<double>(segment) * tex.width);
        const double seg_last = std::min({last_texel, static_cast<double>(segment + 1) * tex.width,
                                          static_cast<double>(tex.texels)});
        if (seg_last <= seg_first) continue;
        const float x0 = static_cast<float>(f.map_min.x + (seg_first - first_texel) /
                                                              (last_texel - first_texel) * f.map_w);
        const float x1 = static_cast<float>(f.map_min.x + (seg_last - first_texel) /
                                                              (last_texel - first_texel) * f.map_w);
        const ImVec2 uv0(static_cast<float>((seg_first - segment * tex.width) / tex.width),
                         static_cast<float>(segment * L) / rows);
        const ImVec2 uv1(static_cast<float>((seg_last - segment * tex.width) / tex.width),
                         static_cast<float>((segment + 1) * L) / rows);
        draw->AddImage(tex_id, ImVec2(x0, f.map_min.y), ImVec2(x1, f.map_max.y), uv0, uv1);
    }
    return level;
}

RoutingMapView::RoutingMapView(Session* session, Selection* selection, QWidget* parent)
    : ImGuiWidget(parent), state_(std::make_unique<State>()) {
    state_->session = session;
    state_->selection = selection;
    setToolTip({});
    auto rebuild = [this] {
        state_->dirty = true;
        update();
    };
    connect(session, &Session::baseChanged, this, [this, rebuild] {
        const ProfilePtr& p = state_->session->base();
        state_->view_first = 0.0;
        state_->view_last =
            p ? static_cast<double>(std::max<std::int64_t>(1, p->num_tokens())) : 1.0;
        rebuild();
    });
    connect(session, &Session::variantChanged, this, rebuild);
    connect(selection, &Selection::tokenChanged, this, [this](qint64 token) {
        State& s = *state_;
        if (token >= 0 && (token < s.view_first || token >= s.view_last)) {
            // Centred on the token, within the document as a drag keeps it.
            const double span = s.view_last - s.view_first;
            const ProfilePtr& p = s.session->base();
            const double tokens = p ? static_cast<double>(p->num_tokens()) : span;
            s.view_first = std::clamp(static_cast<double>(token) - span / 2, 0.0,
                                      std::max(0.0, tokens - span));
            s.view_last = s.view_first + span;
        }
        update();
    });
    connect(selection, &Selection::layerChanged, this, [this] { update(); });
}

RoutingMapView::~RoutingMapView() {
    if (isValid()) {
        makeCurrent();
        releaseResources();
        doneCurrent();
    }
}

QSize RoutingMapView::textureSize() const {
    if (state_->textures.empty()) return {};
    const State::Texture& t = state_->textures.front();
    return {static_cast<int>(t.texels), static_cast<int>(state_->pyramid.levels.front().height)};
}

void RoutingMapView::setVisibleTokens(double first, double last) {
    state_->view_first = first;
    state_->view_last = std::max(first + 1.0, last);
    update();
}

QRectF RoutingMapView::mapArea() const { return state_->map_area; }

void RoutingMapView::setShowVariant(bool variant) {
    state_->show_variant = variant;
    update();
}

int RoutingMapView::tokenTextsDrawn() const { return state_->token_texts; }

QStringList RoutingMapView::tickLabels() const { return state_->ticks; }

void RoutingMapView::initializeResources() {
    GLint max_size = 0;
    glGetIntegerv(GL_MAX_TEXTURE_SIZE, &max_size);
    state_->max_width = std::clamp(static_cast<int>(max_size), 256, 16384);
    state_->textures.clear();  // ids of a lost context are gone with it
    state_->dirty = true;
}

void RoutingMapView::releaseResources() {
    for (State::Texture& t : state_->textures) {
        if (t.id) glDeleteTextures(1, &t.id);
    }
    state_->textures.clear();
}

long long RoutingMapView::routedTexelsOnGpu() {
    if (state_->textures.empty()) return 0;
    makeCurrent();
    const State::Texture& t = state_->textures.front();
    const int layers = state_->pyramid.levels.front().height;
    const int rows = t.segments * layers;
    GLuint fbo = 0;
    glGenFramebuffers(1, &fbo);
    glBindFramebuffer(GL_FRAMEBUFFER, fbo);
    glFramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, t.id, 0);
    std::vector<unsigned char> pixels(static_cast<std::size_t>(t.width) * rows * 4);
    glPixelStorei(GL_PACK_ALIGNMENT, 1);
    glReadPixels(0, 0, t.width, rows, GL_RGBA, GL_UNSIGNED_BYTE, pixels.data());
    glBindFramebuffer(GL_FRAMEBUFFER, defaultFramebufferObject());
    glDeleteFramebuffers(1, &fbo);
    doneCurrent();
    long long routed = 0;
    for (int row = 0; row < rows; ++row) {
        const int segment = row / layers;
        for (int x = 0; x < t.width; ++x) {
            const long long token = static_cast<long long>(segment) * t.width + x;
            if (token >= t.texels) break;
            routed += pixels[(static_cast<std::size_t>(row) * t.width + x) * 4 + 3] != 0;
        }
    }
    return routed;
}

// The textures of the profile shown: the pyramid of its decisions, one texture per level.
void RoutingMapView::rebuildTextures() {
    State& s = *state_;
    releaseResources();
    s.dirty = false;
    s.pyramid = {};
    const ProfilePtr& want = s.shown;
    if (!want || want->num_tokens() <= 0 || want->num_layers <= 0) return;
    s.pyramid = RoutingPyramid::build(want->decisions, want->num_tokens(),
                                      static_cast<int>(want->num_layers));
    for (const RoutingPyramid::Level& level : s.pyramid.levels) {
        State::Texture t;
        t.tokens_per_texel = level.tokens_per_texel;
        t.texels = level.width;
        t.width = std::min(level.width, s.max_width);
        t.segments = (level.width + t.width - 1) / t.width;
        const int rows = t.segments * level.height;
        std::vector<unsigned char> rgba(static_cast<std::size_t>(t.width) * rows * 4, 0);
        for (int l = 0; l < level.height; ++l) {
            for (int x = 0; x < level.width; ++x) {
                const std::size_t in = (static_cast<std::size_t>(l) * level.width + x) * 2;
                const int segment = x / t.width;
                const int row = segment * level.height + l;
                unsigned char* out =
                    &rgba[(static_cast<std::size_t>(row) * t.width + x % t.width) * 4];
                out[0] = kRouted[0];
                out[1] = kRouted[1];
                out[2] = kRouted[2];
                const std::uint32_t share = level.texels[in];
                out[3] = level.texels[in + 1] ? texel_alpha(share, 255) : 0;
            }
        }
        glGenTextures(1, &t.id);
        glBindTexture(GL_TEXTURE_2D, t.id);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
        glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
        glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, t.width, rows, 0, GL_RGBA, GL_UNSIGNED_BYTE,
                     rgba.data());
        s.textures.push_back(t);
    }
}

// The frame in parts: the toolbar line, the map's texture, its pruned layers, the axes and the
// legend, the selection, the tooltip.
void RoutingMapView::drawFrame() {
    State& s = *state_;
    s.ticks.clear();  // until this frame draws its axis
    const ProfilePtr& variant = s.session->variant();
    const ProfilePtr& want = s.show_variant && variant ? variant : s.session->base();
    if (s.dirty || want != s.shown) {
        s.shown = want;
        rebuildTextures();
    }
    ImGui::AlignTextToFramePadding();
    if (!want) {
        ImGui::TextDisabled(
            "No run yet. Run a document (F5) to see which tokens reach global attention.");
        return;
    }
    draw_toolbar(*want, variant != nullptr, s.show_variant);
    MapFrame f;
    if (!s.layOut(f, *want)) return;
    const bool hovered = s.handleInput(f);
    f.view_first = s.view_first;  // as the input left it
    f.view_last = s.view_last;

    ImDrawList* draw = ImGui::GetWindowDrawList();
    const std::size_t level = s.drawTexture(draw, f);
    draw_pruned_layers(draw, f, want->options.prune);
    draw_layer_axis(draw, f);
    s.token_texts = draw_token_texts(draw, f, *want);
    s.ticks = draw_token_axis(draw, f);
    draw_selection(draw, f, *s.selection, want->num_tokens());
    if (hovered && !s.dragging) {
        draw_tooltip(draw, f, *want, level > 0 ? s.textures[level].tokens_per_texel : 0);
    }
}

}  // namespace l2a::ui
