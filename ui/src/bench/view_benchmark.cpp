#include "l2a/ui/view_benchmark.h"

#include <QApplication>
#include <QElapsedTimer>
#include <QOpenGLContext>
#include <QOpenGLFunctions>
#include <QString>
#include <QThread>
#include <QWidget>
#include <QWindow>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "l2a/ui/routing_map_view.h"
#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"
#include "l2a/ui/timeline_view.h"

namespace l2a::ui {

Profile synthetic_profile(std::int64_t tokens, int layers, double routed, int kernels_per_phase,
                          std::uint32_t seed) {
    Profile p;
    p.model.path = "<synthetic>";
    p.model.model_type = "l2a_qwen3";
    p.model.num_layers = layers;
    p.model.is_l2a = true;
    p.model.sigmoid_temp = 0.1;
    p.model.sigmoid_threshold = 0.5;
    p.document_path = "<synthetic document>";
    std::mt19937 rng(seed);
    const char* words[] = {"the",    "key",    "of", "section", "amber",
                           "falcon", "refers", "to", "3.2",     "and"};
    for (std::int64_t t = 0; t < tokens; ++t) {
        p.token_begin.push_back(static_cast<std::uint32_t>(p.document_text.size()));
        p.document_text += words[rng() % 10];
        p.document_text += (t % 17 == 16) ? "\n" : " ";
        p.token_end.push_back(static_cast<std::uint32_t>(p.document_text.size()));
        p.token_ids.push_back(static_cast<std::int32_t>(rng() % 258));
    }
    p.tokens_before_truncation = tokens;
    p.num_layers = layers;
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    p.decisions.resize(static_cast<std::size_t>(tokens * layers));
    p.router_logits.resize(p.decisions.size());
    for (int l = 0; l < layers; ++l) {
        // Bursts: a routed token makes its neighbour more likely routed.
        bool previous = false;
        std::int64_t count = 0;
        for (std::int64_t t = 0; t < tokens; ++t) {
            const float chance = static_cast<float>(previous ? 0.6 : routed * 0.5);
            const bool d = u(rng) < chance;
            const auto i = static_cast<std::size_t>(l * tokens + t);
            p.decisions[i] = d;
            p.router_logits[i] = d ? 0.05f + 0.2f * u(rng) : -0.05f - 0.3f * u(rng);
            previous = d;
            count += d;
        }
        p.metrics.global_fraction.push_back(tokens ? static_cast<double>(count) / tokens : 0.0);
        p.metrics.kv.push_back({std::min<std::int64_t>(tokens, 4096) * 1024, tokens * 1024});
    }
    p.token_nll.push_back(std::nanf(""));
    for (std::int64_t t = 1; t < tokens; ++t) p.token_nll.push_back(1.0f + 3.0f * u(rng));
    p.options.device = "cuda:0";
    p.options.backend = "kernels";
    p.device = "synthetic";
    // Timeline: ranges on the host, kernels on two streams under each phase.
    std::int64_t now = 1000;
    auto range = [&](Phase phase, int layer, int depth, std::int64_t length) {
        p.ranges.push_back({phase, layer, now, now + length, depth, {}});
        return static_cast<std::int64_t>(p.ranges.size() - 1);
    };
    auto kernels = [&](std::int64_t r, const char* name) {
        const TimedRange& h = p.ranges[static_cast<std::size_t>(r)];
        const std::int64_t step =
            std::max<std::int64_t>(1, (h.end_ns - h.begin_ns) / (kernels_per_phase + 1));
        for (int k = 0; k < kernels_per_phase; ++k) {
            const std::int64_t b = h.begin_ns + step * k + 20;
            p.kernels.push_back(
                {std::string(name) + "_kernel", k % 2 ? 13 : 7, 0, b, b + step - 40, r});
        }
    };
    kernels(range(Phase::Embed, -1, 0, 50000), "embed");
    now += 50000;
    for (int l = 0; l < layers; ++l) {
        const std::int64_t layer = range(Phase::Layer, l, 0, 0);
        const std::int64_t begin = now;
        for (Phase phase : kLayerPhases) {
            const std::int64_t length = phase == Phase::Router ? 20000 : 400000;
            kernels(range(phase, l, 1, length), phase_name(phase));
            now += length;
        }
        p.ranges[static_cast<std::size_t>(layer)].begin_ns = begin;
        p.ranges[static_cast<std::size_t>(layer)].end_ns = now;
    }
    kernels(range(Phase::LmHead, -1, 0, 300000), "lm_head");
    now += 300000;
    p.wall_seconds = static_cast<double>(now) * 1e-9;
    p.timeline_source = "synthetic";
    return p;
}

namespace {

long long option(int argc, char** argv, const char* name, long long fallback) {
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::strcmp(argv[i], name) == 0) return std::atoll(argv[i + 1]);
    }
    return fallback;
}

// Waits until the window system shows `widget` (at most `timeout_ms`), handling events meanwhile.
bool wait_until_exposed(QWidget& widget, int timeout_ms = 5000) {
    QElapsedTimer waited;
    waited.start();
    while (true) {
        QCoreApplication::processEvents(QEventLoop::AllEvents, 10);
        const QWindow* window = widget.windowHandle();
        if (window != nullptr && window->isExposed()) return true;
        if (waited.elapsed() >= timeout_ms) return false;
        QThread::msleep(5);
    }
}

}  // namespace

int run_view_benchmark(int argc, char** argv) {
    const long long tokens = option(argc, argv, "--tokens", 131072);
    const int layers = static_cast<int>(option(argc, argv, "--layers", 36));
    const int frames = static_cast<int>(option(argc, argv, "--frames", 60));
    int width = 1600, height = 900;
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::strcmp(argv[i], "--size") == 0) std::sscanf(argv[i + 1], "%dx%d", &width, &height);
    }
    if (tokens < 1 || layers < 1 || frames < 1 || width < 200 || height < 100) {
        std::fprintf(stderr,
                     "l2a-studio --bench-views: --tokens, --layers, --frames must be positive "
                     "and --size at least 200x100\n");
        return 2;
    }
    QElapsedTimer clock;
    clock.start();
    auto profile = std::make_shared<const Profile>(synthetic_profile(tokens, layers, 0.2, 40));
    const double make_ms = static_cast<double>(clock.nsecsElapsed()) * 1e-6;

    Session session;
    Selection selection;
    RoutingMapView map(&session, &selection);
    TimelineView timeline(&session, &selection);
    map.resize(width, height);
    timeline.resize(width, height);
    map.show();
    timeline.show();
    if (!wait_until_exposed(map) || !wait_until_exposed(timeline)) {
        std::fprintf(stderr,
                     "l2a-studio --bench-views: the windows were not shown (no display?)\n");
        return 1;
    }
    session.setBase(profile);
    clock.restart();
    map.measureFrames(1);  // builds the pyramid and uploads the textures
    const double upload_ms = static_cast<double>(clock.nsecsElapsed()) * 1e-6;
    if (map.textureSize().isEmpty()) {
        std::fprintf(stderr, "l2a-studio --bench-views: no OpenGL texture was made\n");
        return 1;
    }
    timeline.measureFrames(1);

    std::printf(
        "synthetic profile: %lld tokens x %d layers, %zu ranges, %zu kernels (made in %.0f ms)\n",
        tokens, layers, profile->ranges.size(), profile->kernels.size(), make_ms);
    map.makeCurrent();
    QOpenGLFunctions* gl = QOpenGLContext::currentContext()->functions();
    std::printf("OpenGL: %s, %s\n", reinterpret_cast<const char*>(gl->glGetString(GL_RENDERER)),
                reinterpret_cast<const char*>(gl->glGetString(GL_VERSION)));
    map.doneCurrent();
    std::printf("window %dx%d, %d frames each; frame = ImGui build + GL draw + glFinish\n", width,
                height, frames);
    std::printf("routing map: pyramid build + texture upload (first frame) %.1f ms\n", upload_ms);
    std::printf("%-34s %10s %10s\n", "view", "mean ms", "max ms");
    // Frames one at a time so that a single slow frame (a hitch) shows in the max.
    auto row = [&](const char* name, ImGuiWidget& view) {
        double sum = 0.0, worst = 0.0;
        for (int f = 0; f < frames; ++f) {
            const double ms = view.measureFrames(1);
            sum += ms;
            worst = std::max(worst, ms);
        }
        std::printf("%-34s %10.2f %10.2f\n", name, sum / frames, worst);
    };
    map.setVisibleTokens(0, static_cast<double>(tokens));
    row("routing map, whole document", map);
    map.setVisibleTokens(static_cast<double>(tokens) / 2, static_cast<double>(tokens) / 2 + 2000);
    row("routing map, 2,000 tokens", map);
    timeline.setVisibleTime(0, profile->wall_seconds);
    row("timeline, whole run", timeline);
    std::printf("%-34s %10lld\n", "  boxes drawn (whole run)", timeline.boxesDrawnLastFrame());
    timeline.setVisibleTime(profile->wall_seconds * 0.4, profile->wall_seconds * 0.42);
    row("timeline, 2% of the run", timeline);
    std::printf("%-34s %10lld\n", "  boxes drawn (2%)", timeline.boxesDrawnLastFrame());
    return 0;
}

}  // namespace l2a::ui
