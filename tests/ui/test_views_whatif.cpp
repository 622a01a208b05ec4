// The what-if view on a synthetic comparison: the numbers shown, their update when the variant
// changes, the KL-max token link, two opened profiles side by side, the busy indication, and
// the controls editing the session's what-if options.
#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QSignalSpy>
#include <QSlider>
#include <QSpinBox>
#include <QTableWidget>
#include <QtTest>
#include <memory>

#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"
#include "l2a/ui/units.h"
#include "l2a/ui/whatif_view.h"

using namespace l2a;
using namespace l2a::ui;

namespace {

std::shared_ptr<Profile> make_profile(double mean_nll, bool l2a = true) {
    auto p = std::make_shared<Profile>();
    p->model.is_l2a = l2a;
    p->num_layers = 3;
    p->document_path = "doc.txt";
    p->document_text = "abcdefghij";
    for (int t = 0; t < 10; ++t) {
        p->token_ids.push_back(t);
        p->token_begin.push_back(static_cast<std::uint32_t>(t));
        p->token_end.push_back(static_cast<std::uint32_t>(t + 1));
    }
    p->decisions.assign(30, 1);
    p->router_logits.assign(30, 1.0f);
    p->token_nll.assign(10, static_cast<float>(mean_nll));
    p->metrics.mean_nll = mean_nll;
    p->metrics.perplexity = std::exp(mean_nll);
    p->metrics.global_fraction = {0.5, 0.25, 0.125};
    p->metrics.global_fraction_overall = 0.3;
    p->metrics.kv_bytes_total = 3 * 1024 * 1024;
    p->wall_seconds = 0.25;
    return p;
}

std::shared_ptr<WhatIfComparison> make_comparison(double variant_nll) {
    auto c = std::make_shared<WhatIfComparison>();
    c->num_tokens = 10;
    c->start_layer = 1;
    c->base_mean_nll = 2.5;
    c->variant_mean_nll = variant_nll;
    c->delta_mean_nll = variant_nll - 2.5;
    c->base_perplexity = std::exp(2.5);
    c->variant_perplexity = std::exp(variant_nll);
    c->delta_perplexity = c->variant_perplexity - c->base_perplexity;
    c->kl_mean = 0.0125;
    c->kl_max = 0.5;
    c->kl_max_token = 7;
    c->top1_agreement = 0.975;
    c->base_kv_bytes = 2 * 1024 * 1024;
    c->variant_kv_bytes = 1536 * 1024;
    c->kv_bytes_without_l2a = 4 * 1024 * 1024;
    c->base_kv_relative = 0.5;
    c->variant_kv_relative = 0.375;
    c->base_global_fraction = {0.5, 0.25, 0.125};
    c->variant_global_fraction = {0.5, 0.0, 0.125};
    c->base_ttft = l2a::TtftMeasurement::of({0.26, 0.25, 0.24});
    c->variant_ttft = l2a::TtftMeasurement::of({0.2, 0.21, 0.19});
    c->base_ttft_predicted = 0.25;
    c->variant_ttft_predicted = 0.0125;
    return c;
}

class TestWhatIfView : public QObject {
    Q_OBJECT

    std::unique_ptr<Session> session_;
    std::unique_ptr<Selection> selection_;
    std::unique_ptr<WhatIfView> view_;

    template <typename W>
    W* child(const char* name) const {
        W* w = view_->findChild<W*>(name);
        if (!w) qFatal("no child %s", name);
        return w;
    }

private slots:
    void init() {
        session_ = std::make_unique<Session>();
        selection_ = std::make_unique<Selection>();
        view_ = std::make_unique<WhatIfView>(session_.get(), selection_.get());
        view_->resize(600, 700);
        view_->show();
        QVERIFY(QTest::qWaitForWindowExposed(view_.get()));
    }
    void cleanup() {
        view_.reset();
        selection_.reset();
        session_.reset();
    }

    void showsComparisonNumbers() {
        QVERIFY(view_->shownValue("delta_nll").isEmpty());
        session_->setBase(make_profile(2.5));
        QVERIFY(view_->shownValue("delta_nll").isEmpty());
        session_->setVariant(make_profile(2.75), make_comparison(2.75));
        QCOMPARE(view_->shownValue("delta_nll"), QString("2.5000 → 2.7500  (+0.2500)"));
        QVERIFY2(view_->shownValue("perplexity").startsWith("12.182 → 15.643"),
                 qPrintable(view_->shownValue("perplexity")));
        QCOMPARE(view_->shownValue("kl_mean"), QString("0.01250 nats"));
        QCOMPARE(view_->shownValue("kl_max"), QString("0.50000 nats"));
        QCOMPARE(view_->shownValue("top1"), QString("97.50%"));
        QCOMPARE(view_->shownValue("kv_saved"), QString("512.00 KiB"));
        QVERIFY2(view_->shownValue("kv").contains("50.0% → 37.5% of no L2A"),
                 qPrintable(view_->shownValue("kv")));
        QCOMPARE(view_->shownValue("ttft_measured"),
                 QString("250.0 ms (240.0–260.0 ms) → 200.0 ms (190.0–210.0 ms), median of 3 "
                         "runs each, threads not recorded"));
        QCOMPARE(view_->shownValue("ttft_predicted"),
                 QString("250.0 ms → 12.5 ms  (-95.0%), predicted"));
        QVERIFY(view_->shownValue("no such metric").isEmpty());
        auto* layers = child<QTableWidget>("layerComparison");
        QCOMPARE(layers->rowCount(), 3);
        QCOMPARE(layers->item(1, 3)->text(), QString("-25.0 pp"));
    }

    void followsVariantChanges() {
        session_->setBase(make_profile(2.5));
        session_->setVariant(make_profile(2.75), make_comparison(2.75));
        QVERIFY(view_->shownValue("delta_nll").contains("+0.2500"));
        session_->setVariant(make_profile(2.0), make_comparison(2.0));
        QVERIFY2(view_->shownValue("delta_nll").contains("-0.5000"),
                 qPrintable(view_->shownValue("delta_nll")));
        session_->clearVariant();
        QVERIFY(view_->shownValue("delta_nll").isEmpty());
        QVERIFY(view_->shownValue("top1").isEmpty());
    }

    void klMaxTokenSelectsIt() {
        session_->setBase(make_profile(2.5));
        session_->setVariant(make_profile(2.75), make_comparison(2.75));
        auto* link = child<QPushButton>("klMaxToken");
        QVERIFY(link->isVisible());
        QVERIFY(link->text().contains("7"));
        QSignalSpy spy(selection_.get(), &Selection::tokenChanged);
        QTest::mouseClick(link, Qt::LeftButton);
        QCOMPARE(selection_->token(), qint64(7));
        QCOMPARE(spy.count(), 1);
    }

    void twoProfilesSideBySide() {
        session_->setBase(make_profile(2.5));
        auto other = make_profile(3.0);
        other->wall_seconds = 1.5;
        other->options.prune = {1, 2};
        session_->setVariant(other);
        QVERIFY(view_->shownValue("kl_mean").isEmpty());  // not something both hold
        QCOMPARE(view_->shownValue("mean_nll"), QString("2.5000 nats | 3.0000 nats"));
        QCOMPARE(view_->shownValue("wall"),
                 QString("250.0 ms, threads not recorded | 1.500 s, threads not recorded"));
        QCOMPARE(view_->shownValue("kv"), QString("3.00 MiB | 3.00 MiB"));
        QVERIFY(view_->shownValue("options").contains("prune 1,2"));
        QVERIFY(child<QTableWidget>("sideBySide")->isVisible());
        // Back to a comparison.
        session_->setVariant(make_profile(2.75), make_comparison(2.75));
        QVERIFY(view_->shownValue("mean_nll").isEmpty());
        QVERIFY(!view_->shownValue("kl_mean").isEmpty());
    }

    void busyIndication() {
        session_->setBase(make_profile(2.5));
        auto* busy = child<QProgressBar>("busy");
        QVERIFY(!busy->isVisible());
        view_->setRunning(true);
        QVERIFY(busy->isVisible());
        view_->setRunning(false);
        QVERIFY(!busy->isVisible());
    }

    void controlsEditWhatIfOptions() {
        session_->setBase(make_profile(2.5));
        QSignalSpy spy(session_.get(), &Session::whatIfOptionsChanged);
        auto* routing = child<QComboBox>("routing");
        auto* fraction = child<QDoubleSpinBox>("fraction");
        QVERIFY(routing->isEnabled());
        QVERIFY(!fraction->isEnabled());  // learned routing has no fraction
        routing->setCurrentIndex(static_cast<int>(RoutingKind::Top));
        QVERIFY(spy.count() >= 1);
        QCOMPARE(session_->whatIfOptions().routing.kind, RoutingKind::Top);
        QVERIFY(fraction->isEnabled());
        fraction->setValue(0.3);
        QCOMPARE(session_->whatIfOptions().routing, (RoutingPolicy{RoutingKind::Top, 0.3}));
        routing->setCurrentIndex(static_cast<int>(RoutingKind::Local));
        QCOMPARE(session_->whatIfOptions().routing, (RoutingPolicy{RoutingKind::Local, 0.0}));

        auto* override_box = child<QCheckBox>("thresholdOverride");
        auto* threshold = child<QDoubleSpinBox>("threshold");
        auto* slider = child<QSlider>("thresholdSlider");
        QVERIFY(!session_->whatIfOptions().threshold);
        QVERIFY(!threshold->isEnabled());
        override_box->setChecked(true);
        QVERIFY(session_->whatIfOptions().threshold.has_value());
        threshold->setValue(0.25);
        QCOMPARE(*session_->whatIfOptions().threshold, 0.25);
        QCOMPARE(slider->value(), 250);
        slider->setValue(800);
        QCOMPARE(*session_->whatIfOptions().threshold, 0.8);
        QCOMPARE(threshold->value(), 0.8);

        // Options set elsewhere show in the controls.
        RunOptions o = session_->whatIfOptions();
        o.routing = RoutingPolicy{RoutingKind::Random, 0.125};
        o.threshold.reset();
        session_->setWhatIfOptions(o);
        QCOMPARE(routing->currentIndex(), static_cast<int>(RoutingKind::Random));
        QCOMPARE(fraction->value(), 0.125);
        QVERIFY(!override_box->isChecked());

        auto* reset = child<QPushButton>("reset");
        QVERIFY(reset->isEnabled());
        QTest::mouseClick(reset, Qt::LeftButton);
        QCOMPARE(session_->whatIfOptions(), session_->base()->options);
        QCOMPARE(routing->currentIndex(), static_cast<int>(RoutingKind::Learned));
        QVERIFY(!reset->isEnabled());
    }

    void plainModelHasNoRoutingControls() {
        session_->setBase(make_profile(2.5, false));
        QVERIFY(!child<QComboBox>("routing")->isEnabled());
        QVERIFY(!child<QCheckBox>("thresholdOverride")->isEnabled());
    }

    // Before a what-if there is no column of empty labels: the comparison is hidden and a
    // line says how to make one; it shows once a variant exists.
    void comparisonHiddenUntilThereIsAVariant() {
        session_->setBase(make_profile(2.5));
        QWidget* comparison = child<QWidget>("comparison");
        QVERIFY(!comparison->isVisible());
        const QLabel* status = child<QLabel>("whatifStatus");
        QVERIFY2(status->text().contains("No what-if yet"), qPrintable(status->text()));
        session_->setVariant(make_profile(2.75), make_comparison(2.75));
        QVERIFY(comparison->isVisible());
        session_->clearVariant();
        QVERIFY(!comparison->isVisible());
    }

    // TTFT: predicted at once, measured only on request (the button asks for N runs of each)
    // and then shown as median and spread; the button waits while a measurement runs.
    void ttftPredictedLiveAndMeasuredOnRequest() {
        session_->setBase(make_profile(2.5));
        auto c = make_comparison(2.75);
        c->base_ttft = {};
        c->variant_ttft = {};
        session_->setVariant(make_profile(2.75), c);
        QCOMPARE(view_->shownValue("ttft_measured"), QString("not measured"));
        QVERIFY(view_->shownValue("ttft_predicted").endsWith("predicted"));
        auto* button = child<QPushButton>("measureTtft");
        auto* repeats = child<QSpinBox>("ttftRepeats");
        QCOMPARE(repeats->value(), 3);
        repeats->setValue(5);
        QSignalSpy asked(view_.get(), &WhatIfView::measureTtftRequested);
        QVERIFY(button->isEnabled());
        QTest::mouseClick(button, Qt::LeftButton);
        QCOMPARE(asked.size(), 1);
        QCOMPARE(asked.at(0).at(0).toInt(), 5);
        view_->setMeasuring(true, 0.4);
        QVERIFY(!button->isEnabled());
        QVERIFY(child<QProgressBar>("ttftProgress")->isVisible());
        QCOMPARE(child<QProgressBar>("ttftProgress")->value(), 400);
        QCOMPARE(view_->shownValue("ttft_measured"), QString("measuring…"));
        QTest::mouseClick(button, Qt::LeftButton);
        QCOMPARE(asked.size(), 1);  // not twice at once
        view_->setMeasuring(false);
        auto measured = std::make_shared<WhatIfComparison>(*c);
        measured->base_ttft = TtftMeasurement::of({1.2, 1.25, 1.19});
        measured->variant_ttft = TtftMeasurement::of({1.1, 1.05, 1.12});
        auto variant = make_profile(2.75);
        variant->cpu_threads = 2;
        session_->setVariant(variant, measured);
        QCOMPARE(view_->shownValue("ttft_measured"),
                 QString("1.200 s (1.190–1.250 s) → 1.100 s (1.050–1.120 s), median of 3 runs "
                         "each, 2 threads"));
        QVERIFY(!child<QProgressBar>("ttftProgress")->isVisible());
    }

    // No change reads "0.0 pp", a change too small for one decimal "-<0.1 pp", never "-0.0 pp".
    void noNegativeZero() {
        QCOMPARE(signed_number(-0.0001, 1), QString("0.0"));
        QCOMPARE(signed_number(0.0001, 1), QString("0.0"));
        QCOMPARE(signed_number(-0.05, 1), QString("-0.1"));  // rounds away from zero: not zero
        QCOMPARE(signed_number(0.25, 2), QString("+0.25"));
        QCOMPARE(signed_number(std::nan(""), 2), QString("n/a"));
        session_->setBase(make_profile(2.5));
        auto c = make_comparison(2.75);
        c->base_global_fraction = {0.5, 0.1, 0.125};
        c->variant_global_fraction = {0.5, 0.0999999, 0.125};
        session_->setVariant(make_profile(2.75), c);
        const auto* table = child<QTableWidget>("layerComparison");
        QCOMPARE(table->item(0, 3)->text(), QString("0.0 pp"));
        QCOMPARE(table->item(1, 3)->text(), QString("-<0.1 pp"));
    }
};

}  // namespace

QTEST_MAIN(TestWhatIfView)
#include "test_views_whatif.moc"
