// The routing map: a token x layer heatmap of global-attention decisions for up to 128K tokens
// x 64 layers, drawn from GPU textures. A max/mean pyramid (2^k tokens per texel at level k)
// keeps every routed token visible when zoomed out: the colour of a texel is the mean routed
// share of its tokens, and any routed token lifts it to at least a visible minimum (max).
// Mouse wheel zooms about the cursor, drag pans, a click selects the token and layer; crosshair
// and a tooltip (position, token text, decision, router probability) under the mouse.
#pragma once

#include <QRectF>
#include <QSize>
#include <QStringList>
#include <memory>
#include <vector>

#include "l2a/ui/imgui_widget.h"

namespace l2a::ui {

class Selection;
class Session;

// Tokens per texel at each level and the packed texel values, built on the CPU from a Profile
// (Qt-free, so it is tested without a GL context). Level 0 is tokens x layers.
struct RoutingPyramid {
    struct Level {
        int tokens_per_texel = 1;
        int width = 0;   // texels across (tokens)
        int height = 0;  // layers
        // RG8 per texel: R = mean routed share * 255, G = 255 if any token is routed, else 0.
        std::vector<unsigned char> texels;
    };
    std::vector<Level> levels;
    static RoutingPyramid build(const std::vector<unsigned char>& decisions, long long tokens,
                                int layers);
};

class RoutingMapView : public ImGuiWidget {
    Q_OBJECT
public:
    RoutingMapView(Session* session, Selection* selection, QWidget* parent = nullptr);
    ~RoutingMapView() override;

    // Level 0 texture size (tokens x layers; wider documents are split across several textures
    // by the implementation as the GL limit requires). Empty before a profile is shown.
    QSize textureSize() const;
    // Texels of level 0 read back from the GL texture(s) that show a routed token. Tests use it
    // to check that the texture on the GPU holds the profile's decisions.
    long long routedTexelsOnGpu();
    // Shows tokens [first, last) across the width.
    void setVisibleTokens(double first, double last);
    // Where the last frame drew the map (widget coordinates), and how many tokens' text it
    // wrote under it (deep zoom only). For tests.
    QRectF mapArea() const;
    // Shows the what-if variant (when there is one) instead of the base, as the radio buttons
    // over the map do.
    void setShowVariant(bool variant);
    int tokenTextsDrawn() const;
    // The token axis's tick labels in the last frame (round positions: "0", "2000", ...).
    QStringList tickLabels() const;

protected:
    void drawFrame() override;
    void initializeResources() override;
    void releaseResources() override;

private:
    void rebuildTextures();  // of the profile shown, on the next frame after a change

    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace l2a::ui
