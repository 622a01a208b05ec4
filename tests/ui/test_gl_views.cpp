// The Dear ImGui views on OpenGL: the routing map's pyramid keeps every routed token, its GPU
// texture holds the profile's decisions, clicks select and selections are followed; the
// timeline has one lane per host depth and stream and folds events too narrow to see.
#include <QSet>
#include <QSignalSpy>
#include <QTest>
#include <algorithm>
#include <cmath>
#include <vector>

#include "l2a/ui/routing_map_view.h"
#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"
#include "l2a/ui/timeline_view.h"
#include "l2a/ui/view_benchmark.h"

using namespace l2a;
using namespace l2a::ui;

namespace {

template <typename View>
bool show_with_gl(View& view) {
    view.resize(900, 400);
    view.show();
    if (!QTest::qWaitForWindowExposed(&view)) return false;
    view.repaint();
    return view.isValid() && view.context();
}

// Axis labels "<number> <unit>" in one unit (`scale` seconds, 1e-3 for ms): equally spaced by a
// step of 1, 2 or 5 times a power of ten, and each a multiple of it.
void expect_round_ticks(const QStringList& ticks, double scale) {
    std::vector<double> values;
    for (const QString& tick : ticks) {
        bool ok = false;
        values.push_back(tick.section(' ', 0, 0).toDouble(&ok) * scale);
        QVERIFY2(ok, qPrintable(tick));
    }
    QVERIFY(values.size() >= 2);
    const double step = values[1] - values[0];
    const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    QVERIFY2(std::abs(mantissa - 1) < 1e-6 || std::abs(mantissa - 2) < 1e-6 ||
                 std::abs(mantissa - 5) < 1e-6,
             qPrintable(ticks.join(" | ")));
    for (std::size_t i = 0; i < values.size(); ++i) {
        QVERIFY2(std::abs(values[i] / step - std::round(values[i] / step)) < 1e-6,
                 qPrintable(ticks.join(" | ")));
        if (i > 0) QVERIFY(std::abs(values[i] - values[i - 1] - step) < step * 1e-6);
    }
}

}  // namespace

class GlViewsTest : public QObject {
    Q_OBJECT

private slots:
    void pyramidKeepsALoneRoutedTokenAndAveragesShares() {
        const long long tokens = 1000;
        const int layers = 3;
        std::vector<unsigned char> d(static_cast<std::size_t>(tokens * layers), 0);
        d[1 * tokens + 777] = 1;                                          // one token in layer 1
        for (long long t = 0; t < tokens; t += 2) d[2 * tokens + t] = 1;  // half of layer 2
        const RoutingPyramid p = RoutingPyramid::build(d, tokens, layers);
        QVERIFY(p.levels.size() >= 10);
        QCOMPARE(p.levels.front().width, 1000);
        QCOMPARE(p.levels.back().width, 1);
        for (const RoutingPyramid::Level& level : p.levels) {
            // Layer 1: the texel holding token 777 says "routed" at every level.
            const int x = 777 / level.tokens_per_texel;
            QCOMPARE(int(level.texels[2 * (1 * level.width + x) + 1]), 255);
            // Layer 0: nothing routed anywhere.
            for (int i = 0; i < level.width; ++i) QCOMPARE(int(level.texels[2 * i + 1]), 0);
        }
        // Layer 2 at the top level: half the tokens routed -> mean share 128 of 255.
        const RoutingPyramid::Level& top = p.levels.back();
        QVERIFY(std::abs(int(top.texels[2 * 2]) - 128) <= 1);
        // Layer 1 at the top level: 1 of 1000.
        QVERIFY(top.texels[2 * 1] <= 1);
    }

    void routingMapTextureHoldsTheDecisions() {
        Session session;
        Selection selection;
        RoutingMapView map(&session, &selection);
        if (!show_with_gl(map)) QSKIP("no OpenGL context on this platform (run under Xvfb)");
        // Wider than any texture row: the map wraps it into several.
        auto profile = std::make_shared<const Profile>(synthetic_profile(40000, 7, 0.2, 1));
        session.setBase(profile);
        map.repaint();
        QTRY_COMPARE(map.textureSize(), QSize(40000, 7));
        const long long routed =
            std::count(profile->decisions.begin(), profile->decisions.end(), 1);
        QVERIFY(routed > 1000);
        QCOMPARE(map.routedTexelsOnGpu(), routed);
        // Another profile replaces the textures.
        session.setBase(std::make_shared<const Profile>(synthetic_profile(300, 2, 0.5, 1, 7)));
        map.repaint();
        QTRY_COMPARE(map.textureSize(), QSize(300, 2));
    }

    void routingMapTokenAxisHasRoundTicks() {
        Session session;
        Selection selection;
        RoutingMapView map(&session, &selection);
        if (!show_with_gl(map)) QSKIP("no OpenGL context on this platform (run under Xvfb)");
        session.setBase(std::make_shared<const Profile>(synthetic_profile(8206, 3, 0.2, 1)));
        map.repaint();
        // The whole document: from 0 at round positions (not 2051, 4103 ...), the last before its
        // end.
        QTRY_VERIFY(map.tickLabels().size() >= 3);
        QStringList ticks = map.tickLabels();
        QCOMPARE(ticks.front(), QString("0"));
        expect_round_ticks(ticks, 1.0);
        QVERIFY2(ticks.back().toLongLong() < 8206 && ticks.back().toLongLong() >= 6000,
                 qPrintable(ticks.join(" | ")));
        // A view that starts and ends between round positions: the ticks fall on them.
        map.setVisibleTokens(1234.4, 5678.9);
        map.repaint();
        const auto within = [&map](long long first, long long last) {
            const QStringList now = map.tickLabels();
            return !now.isEmpty() && now.front().toLongLong() >= first &&
                   now.back().toLongLong() <= last;
        };
        QTRY_VERIFY2(within(1234, 5678), qPrintable(map.tickLabels().join(" | ")));
        expect_round_ticks(map.tickLabels(), 1.0);
        // Zoomed in to 30 tokens: a tick every few tokens, each under a token of the view.
        map.setVisibleTokens(500, 530);
        map.repaint();
        QTRY_VERIFY2(within(500, 529), qPrintable(map.tickLabels().join(" | ")));
        expect_round_ticks(map.tickLabels(), 1.0);
        QVERIFY2(map.tickLabels().size() >= 3, qPrintable(map.tickLabels().join(" | ")));
        // The last token selected while 100 tokens are in view: the view ends at the document's
        // end, and no tick names a token past it.
        map.setVisibleTokens(0, 100);
        selection.setToken(8205);
        map.repaint();
        QTRY_VERIFY2(within(8106, 8205), qPrintable(map.tickLabels().join(" | ")));
        expect_round_ticks(map.tickLabels(), 1.0);
    }

    void routingMapClickSelectsAndFollowsTheSelection() {
        Session session;
        Selection selection;
        RoutingMapView map(&session, &selection);
        if (!show_with_gl(map)) QSKIP("no OpenGL context on this platform (run under Xvfb)");
        session.setBase(std::make_shared<const Profile>(synthetic_profile(1000, 4, 0.2, 1)));
        map.repaint();
        // Bottom-right area of the map: the last layer, late tokens.
        QTRY_VERIFY(!map.mapArea().isEmpty());
        const QPoint at(static_cast<int>(map.mapArea().right()) - 30,
                        static_cast<int>(map.mapArea().bottom()) - 8);
        QTest::mouseMove(&map, at);
        QTest::mousePress(&map, Qt::LeftButton, {}, at);
        QTest::mouseRelease(&map, Qt::LeftButton, {}, at);
        QTRY_VERIFY(selection.token() >= 0);
        QCOMPARE(selection.layer(), 3);
        QVERIFY(selection.token() > 800);
        // Zoomed in on the start, a token selected elsewhere brings the view to it.
        map.setVisibleTokens(0, 100);
        selection.setToken(-1);
        selection.setToken(10);
        map.repaint();
        selection.setToken(900);
        map.repaint();
        QTest::mouseMove(&map, QPoint(map.width() / 2, map.height() / 2));
        QTest::mousePress(&map, Qt::LeftButton, {}, QPoint(map.width() / 2, map.height() / 2));
        QTest::mouseRelease(&map, Qt::LeftButton, {}, QPoint(map.width() / 2, map.height() / 2));
        // The click in the middle of the re-centred view lands near token 900.
        QTRY_VERIFY(selection.token() != 900);
        QVERIFY2(std::abs(selection.token() - 900) < 60,
                 qPrintable(QString::number(selection.token())));
    }

    void routingMapDoubleClickKeepsTheSelection() {
        Session session;
        Selection selection;
        RoutingMapView map(&session, &selection);
        if (!show_with_gl(map)) QSKIP("no OpenGL context on this platform (run under Xvfb)");
        session.setBase(std::make_shared<const Profile>(synthetic_profile(1000, 4, 0.2, 1)));
        selection.setToken(100);
        selection.setLayer(1);
        // Zoomed in far enough that the tokens' text shows under the map.
        map.setVisibleTokens(500, 530);
        map.repaint();
        QTRY_VERIFY(map.tokenTextsDrawn() >= 20);
        const QRectF area = map.mapArea();
        QVERIFY(!area.isEmpty());
        // A double-click in the map (two clicks in quick succession, not moving) shows the whole
        // document again and leaves the selection as it was before it.
        const QPoint at(static_cast<int>(area.center().x()), static_cast<int>(area.bottom()) - 5);
        QTest::mouseMove(&map, at);
        QTest::mousePress(&map, Qt::LeftButton, {}, at);
        QTest::mouseRelease(&map, Qt::LeftButton, {}, at);
        QTest::mousePress(&map, Qt::LeftButton, {}, at);
        QTest::mouseRelease(&map, Qt::LeftButton, {}, at);
        QTRY_COMPARE(map.tokenTextsDrawn(), 0);  // 1000 tokens across: no text
        QTest::qWait(200);
        map.repaint();
        QCOMPARE(selection.token(), qint64(100));
        QCOMPARE(selection.layer(), 1);
    }

    void timelineAxisSaysMicrosecondsAndZero() {
        Session session;
        Selection selection;
        TimelineView timeline(&session, &selection);
        if (!show_with_gl(timeline)) QSKIP("no OpenGL context on this platform (run under Xvfb)");
        auto profile = std::make_shared<const Profile>(synthetic_profile(100, 2, 0.2, 10));
        session.setBase(profile);
        timeline.measureFrames(1);
        timeline.setVisibleTime(0, 50e-6);  // 50 µs across
        timeline.measureFrames(1);
        const QStringList ticks = timeline.tickLabels();
        QVERIFY2(ticks.size() >= 3, qPrintable(ticks.join(" | ")));
        QCOMPARE(ticks.front(), QString("0"));
        for (int i = 1; i < ticks.size(); ++i) {
            QVERIFY2(ticks[i].endsWith(QString::fromUtf8(" \u00b5s")),
                     qPrintable(ticks.join(" | ")));
            QVERIFY2(!ticks[i].contains(" us") && !ticks[i].startsWith("0.0 "),
                     qPrintable(ticks[i]));
        }
        QCOMPARE(ticks.back(), QString::fromUtf8("50 \u00b5s"));
        // 40 µs late in a run: the unit of the times on the axis, with the digits that tell
        // the ticks apart, at round times (every 10 µs).
        timeline.setVisibleTime(17.6e-3, 17.6e-3 + 40e-6);
        timeline.measureFrames(1);
        const QStringList late = timeline.tickLabels();
        QVERIFY2(late.size() >= 3, qPrintable(late.join(" | ")));
        QCOMPARE(QSet<QString>(late.begin(), late.end()).size(), late.size());
        QVERIFY2(late.front() == "17.60 ms" || late.front() == "17.600 ms",
                 qPrintable(late.join(" | ")));
        QVERIFY2(late.back() == "17.64 ms" || late.back() == "17.640 ms",
                 qPrintable(late.join(" | ")));
        expect_round_ticks(late, 1e-3);
        // A view that starts between round times: the ticks fall on them, not on the view's
        // fifths (a 376 ms run's axis read "75 ms", "150 ms", "225 ms", "301 ms").
        timeline.setVisibleTime(0.0123, 0.3885);
        timeline.measureFrames(1);
        const QStringList round = timeline.tickLabels();
        QVERIFY2(round.size() >= 3, qPrintable(round.join(" | ")));
        expect_round_ticks(round, 1e-3);
        QVERIFY2(round.front() == "50 ms" || round.front() == "100 ms",
                 qPrintable(round.join(" | ")));
        // A narrow timeline still shows at least one round tick.
        timeline.resize(260, 400);
        timeline.measureFrames(1);
        const QStringList narrow = timeline.tickLabels();
        QVERIFY2(!narrow.isEmpty(), "no tick in a narrow timeline");
        if (narrow.size() >= 2) expect_round_ticks(narrow, 1e-3);
        timeline.resize(900, 400);
        // A view too short to tell its times apart (1 ns at 10^7 s): no ticks, no hang, and
        // never the same label twice.
        timeline.setVisibleTime(1e7, 1e7);
        timeline.measureFrames(1);
        const QStringList flat = timeline.tickLabels();
        QCOMPARE(QSet<QString>(flat.begin(), flat.end()).size(), flat.size());
        timeline.setVisibleTime(1000.0, 1000.0 + 50e-9);  // 50 ns at 1000 s: distinct labels
        timeline.measureFrames(1);
        const QStringList fine = timeline.tickLabels();
        QVERIFY2(fine.size() >= 2, qPrintable(fine.join(" | ")));
        QCOMPARE(QSet<QString>(fine.begin(), fine.end()).size(), fine.size());
        // The lanes start after the widest lane label.
        QVERIFY(timeline.eventArea().left() > 60);
    }

    void timelineHasLanesFoldsAndSelectsLayers() {
        Session session;
        Selection selection;
        TimelineView timeline(&session, &selection);
        if (!show_with_gl(timeline)) QSKIP("no OpenGL context on this platform (run under Xvfb)");
        // 5 layers, 2,000 kernels per phase on two streams: far more events than pixels.
        auto profile = std::make_shared<const Profile>(synthetic_profile(100, 5, 0.2, 2000));
        session.setBase(profile);
        timeline.measureFrames(1);
        QTRY_COMPARE(timeline.laneCount(), 4);  // host depth 0, host depth 1, stream 7, stream 13
        const long long events =
            static_cast<long long>(profile->kernels.size() + profile->ranges.size());
        QVERIFY(events > 40000);
        QVERIFY(timeline.boxesDrawnLastFrame() > 0);
        QVERIFY2(timeline.boxesDrawnLastFrame() < events / 20,
                 qPrintable(QString::number(timeline.boxesDrawnLastFrame())));
        // Zoomed in far enough, single kernels get their own boxes again (more than folded).
        const long long folded = timeline.boxesDrawnLastFrame();
        const TimedRange& r = profile->ranges[2];  // layer 0 / local: kernels of ~160 ns
        timeline.setVisibleTime(r.begin_ns * 1e-9,
                                (r.begin_ns + (r.end_ns - r.begin_ns) / 50) * 1e-9);
        timeline.measureFrames(1);
        QVERIFY(timeline.boxesDrawnLastFrame() > 0);
        QVERIFY(timeline.boxesDrawnLastFrame() != folded);

        // A click on a layer's range on the host lane selects that layer.
        timeline.setVisibleTime(0, profile->wall_seconds);
        timeline.measureFrames(1);
        const TimedRange* layer2 = nullptr;
        for (const TimedRange& range : profile->ranges) {
            if (range.phase == Phase::Layer && range.layer == 2) layer2 = &range;
        }
        QVERIFY(layer2);
        const double mid =
            0.5 * (layer2->begin_ns + layer2->end_ns) / (profile->wall_seconds * 1e9);
        const QRectF area = timeline.eventArea();
        QVERIFY(!area.isEmpty());
        const int x = static_cast<int>(area.left() + mid * area.width());
        const QPoint at(x, static_cast<int>(area.top()) + 10);  // first lane: the layer ranges
        QTest::mouseMove(&timeline, at);
        QTest::mousePress(&timeline, Qt::LeftButton, {}, at);
        QTest::mouseRelease(&timeline, Qt::LeftButton, {}, at);
        QTRY_COMPARE(selection.layer(), 2);
    }

    void frameTimesAreMeasured() {
        Session session;
        Selection selection;
        RoutingMapView map(&session, &selection);
        if (!show_with_gl(map)) QSKIP("no OpenGL context on this platform (run under Xvfb)");
        session.setBase(std::make_shared<const Profile>(synthetic_profile(5000, 8, 0.2, 1)));
        const double ms = map.measureFrames(3);
        QVERIFY(ms > 0.0);
        QVERIFY(map.lastFrameMs() > 0.0);
    }
};

QTEST_MAIN(GlViewsTest)
#include "test_gl_views.moc"
