// What-if: routing and threshold controls that edit the session's what-if options, and the
// comparison of the variant with the base (or of two opened profiles side by side).
#include "l2a/ui/whatif_view.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QSlider>
#include <QSpinBox>
#include <QStackedWidget>
#include <QTableWidget>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <map>

#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"
#include "l2a/ui/units.h"

namespace l2a::ui {
namespace {

constexpr int kSliderSteps = 1000;  // threshold slider: (0, 1) in steps of 0.001

QString bytes_text(std::int64_t bytes) { return byte_size_text(bytes, 2); }

QString seconds_text(double s) { return duration_text(s, {.s = 3, .ms = 1, .us = 1}); }

// "1.204 s (1.190–1.251 s)": the median and the spread of the samples.
QString measurement_text(const TtftMeasurement& m) {
    if (m.samples.size() < 2) return seconds_text(m.median);
    const bool ms = m.max < 1.0;
    const double f = ms ? 1e3 : 1.0;
    const int digits = ms ? 1 : 3;
    return seconds_text(m.median) + QString(" (%1–%2 %3)")
                                        .arg(QString::number(m.min * f, 'f', digits),
                                             QString::number(m.max * f, 'f', digits),
                                             ms ? "ms" : "s");
}

QString threads_text(std::int64_t threads) {
    return threads > 0 ? QString("%1 thread%2").arg(threads).arg(threads == 1 ? "" : "s")
                       : QString("threads not recorded");
}

QString options_text(const RunOptions& o) {
    QString text = QString::fromStdString(o.routing.to_string());
    if (o.threshold) text += QString(", θ %1").arg(*o.threshold);
    if (!o.prune.empty()) text += ", prune " + QString::fromStdString(format_pruning_plan(o.prune));
    if (o.as_base) text += ", as base model";
    return text + ", " + QString::fromStdString(o.device) + "/" + QString::fromStdString(o.backend);
}

QTableWidgetItem* cell(const QString& text, bool number = true) {
    auto* item = new QTableWidgetItem(text);
    if (number) item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    return item;
}

QTableWidget* make_table(int columns, const QStringList& headers, QWidget* parent) {
    auto* table = new QTableWidget(0, columns, parent);
    table->setHorizontalHeaderLabels(headers);
    table->verticalHeader()->setDefaultSectionSize(20);
    table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table->setSelectionBehavior(QAbstractItemView::SelectRows);
    // Columns as wide as their contents (a narrow dock shows every column without a sideways
    // scroll), the last taking the rest.
    table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    table->horizontalHeader()->setStretchLastSection(true);
    return table;
}

// Metrics of the results form: key (shownValue's name), label, tooltip.
struct MetricRow {
    const char* key;
    const char* label;
    const char* tip;
};
constexpr MetricRow kMetricRows[] = {
    {"delta_nll", "mean NLL", "Mean negative log-likelihood in nats per token, base → variant (Δ)"},
    {"perplexity", "perplexity", "exp(mean NLL), base → variant (Δ)"},
    {"kl_mean", "KL mean", "Mean KL(base ‖ variant) of the next-token distributions"},
    {"kl_max", "KL max", "Largest KL(base ‖ variant) over the tokens"},
    {"top1", "top-1 agreement", "Share of tokens whose most likely next token agrees"},
    {"kv", "KV memory", "KV-cache bytes, base → variant, and relative to the model without L2A"},
    {"kv_saved", "KV memory saved", "Base KV-cache bytes minus the variant's"},
    {"ttft_predicted", "TTFT predicted",
     "Time to first token, base → variant, predicted by the timing model calibrated on the base "
     "run's layer times (without the per-token loss pass); updated with every what-if"},
    {"ttft_measured", "TTFT measured",
     "Time to first token, base → variant: median (min–max) of repeated full runs of each, "
     "alternated, on the same device, backend and threads (Measure TTFT)"},
};

// Rows of the side-by-side table of two opened profiles: key, label.
constexpr std::pair<const char*, const char*> kSideRows[] = {
    {"mean_nll", "mean NLL"},
    {"perplexity", "perplexity"},
    {"global_fraction", "global fraction"},
    {"kv", "KV memory"},
    {"wall", "wall time, threads"},
    {"options", "options"},
};

}  // namespace

struct WhatIfView::State {
    Session* session = nullptr;
    Selection* selection = nullptr;
    QComboBox* routing = nullptr;
    QDoubleSpinBox* fraction = nullptr;
    QCheckBox* override_threshold = nullptr;
    QDoubleSpinBox* threshold = nullptr;
    QSlider* threshold_slider = nullptr;
    QPushButton* reset = nullptr;
    QWidget* options = nullptr;
    QGroupBox* results = nullptr;  // the metrics of the comparison
    QLabel* status = nullptr;
    QProgressBar* busy = nullptr;
    QStackedWidget* pages = nullptr;  // the comparison, or two profiles side by side
    QWidget* comparison_page = nullptr;
    std::map<QString, QLabel*> values;
    QPushButton* kl_token = nullptr;
    QPushButton* measure = nullptr;
    QSpinBox* repeats = nullptr;
    QProgressBar* measure_progress = nullptr;
    bool measuring = false;
    QTableWidget* layers = nullptr;
    QTableWidget* side = nullptr;
    bool updating = false;  // controls being set from the session, not by the user
    bool running = false;
    qint64 kl_max_token = -1;
};

WhatIfView::WhatIfView(Session* session, Selection* selection, QWidget* parent)
    : QWidget(parent), state_(std::make_unique<State>()) {
    State& s = *state_;
    s.session = session;
    s.selection = selection;
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    s.options = createOptions();
    layout->addWidget(s.options);
    layout->addLayout(createStatusRow());
    s.pages = new QStackedWidget(this);
    s.pages->addWidget(createComparisonPage());
    s.pages->addWidget(createSideBySidePage());
    layout->addWidget(s.pages, 1);
    nameWidgets();
    connectControls();
    connectSession();
    syncControls();
    showResults();
}

// The what-if options in two rows, so that the results below fit a short column: routing, its
// fraction and Reset; the threshold override. Pruning is the Layers view's check boxes (the
// status line says so until there is a what-if).
QWidget* WhatIfView::createOptions() {
    State& s = *state_;
    auto* controls = new QWidget(this);
    auto* form = new QFormLayout(controls);
    form->setContentsMargins(0, 0, 0, 0);
    auto* routing_row = new QHBoxLayout;
    s.routing = new QComboBox(controls);
    s.routing->addItems({"learned", "global", "local", "random", "top"});  // RoutingKind order
    s.routing->setToolTip(
        "Routing policy: the learned router, every token global, every token "
        "local, a random fraction, or the top fraction by router logit");
    s.fraction = new QDoubleSpinBox(controls);
    s.fraction->setRange(0.0, 1.0);
    s.fraction->setSingleStep(0.05);
    s.fraction->setDecimals(3);
    s.fraction->setValue(0.2);
    s.fraction->setToolTip("Fraction of tokens for random and top routing");
    s.reset = new QPushButton("Reset to base", controls);
    s.reset->setToolTip("Back to the base run's options: its pruning, routing and threshold");
    routing_row->addWidget(s.routing);
    routing_row->addWidget(new QLabel("fraction", controls));
    routing_row->addWidget(s.fraction);
    routing_row->addStretch(1);
    routing_row->addWidget(s.reset);
    form->addRow("routing", routing_row);
    auto* threshold_row = new QHBoxLayout;
    s.override_threshold = new QCheckBox("override", controls);
    s.override_threshold->setToolTip("Replace the checkpoint's router threshold");
    s.threshold = new QDoubleSpinBox(controls);
    s.threshold->setRange(1.0 / kSliderSteps, 1.0 - 1.0 / kSliderSteps);
    s.threshold->setSingleStep(0.05);
    s.threshold->setDecimals(3);
    s.threshold->setValue(0.5);
    s.threshold->setToolTip("Router probability a token needs to run global attention");
    s.threshold_slider = new QSlider(Qt::Horizontal, controls);
    s.threshold_slider->setRange(1, kSliderSteps - 1);
    s.threshold_slider->setValue(kSliderSteps / 2);
    s.threshold_slider->setToolTip(s.threshold->toolTip());
    threshold_row->addWidget(s.override_threshold);
    threshold_row->addWidget(s.threshold);
    threshold_row->addWidget(s.threshold_slider, 1);
    form->addRow("threshold", threshold_row);
    return controls;
}

// The status line and the busy bar of a running what-if.
QHBoxLayout* WhatIfView::createStatusRow() {
    State& s = *state_;
    auto* status_row = new QHBoxLayout;
    s.status = new QLabel(this);
    s.status->setStyleSheet("color: #5a6372");
    s.status->setWordWrap(true);
    s.busy = new QProgressBar(this);
    s.busy->setRange(0, 0);  // indeterminate
    s.busy->setMaximumWidth(90);
    s.busy->setMaximumHeight(12);
    s.busy->setTextVisible(false);
    s.busy->setVisible(false);
    status_row->addWidget(s.status, 1);
    status_row->addWidget(s.busy);
    return status_row;
}

// The comparison: the metric rows (with the token of the largest KL a click away), Measure
// TTFT, and the per-layer table.
QWidget* WhatIfView::createComparisonPage() {
    State& s = *state_;
    s.comparison_page = new QWidget(s.pages);
    auto* comparison_layout = new QVBoxLayout(s.comparison_page);
    comparison_layout->setContentsMargins(0, 0, 0, 0);
    auto* results = new QGroupBox("Variant vs base", s.comparison_page);
    s.results = results;
    auto* grid = new QFormLayout(results);
    grid->setVerticalSpacing(3);
    for (const MetricRow& row : kMetricRows) {
        auto* value = new QLabel(results);
        value->setTextInteractionFlags(Qt::TextSelectableByMouse);
        value->setStyleSheet("font-family: monospace");
        value->setWordWrap(true);  // a narrow column wraps the longer rows
        value->setToolTip(row.tip);
        auto* label = new QLabel(row.label, results);
        label->setToolTip(row.tip);
        if (QString(row.key) == "kl_max") {
            // The token of the largest KL is a click away.
            auto* kl_row = new QHBoxLayout;
            s.kl_token = new QPushButton(results);
            s.kl_token->setFlat(true);
            s.kl_token->setCursor(Qt::PointingHandCursor);
            s.kl_token->setStyleSheet("color: #3b6fb6; text-decoration: underline; padding: 0");
            s.kl_token->setToolTip("Select the token with the largest KL in every view");
            kl_row->setSpacing(8);  // "2.11049 nats" and "at token 1849" apart
            kl_row->addWidget(value);
            kl_row->addWidget(s.kl_token);
            kl_row->addStretch(1);
            grid->addRow(label, kl_row);
        } else {
            grid->addRow(label, value);
        }
        s.values[row.key] = value;
    }
    // Measured TTFT on request: both option sets run in full, alternately, N times each.
    auto* measure_row = new QHBoxLayout;
    s.measure = new QPushButton("Measure TTFT", results);
    s.measure->setToolTip(
        "Run the base and the variant in full (every layer, last row's logits only) N times "
        "each, alternately, and show the median and the spread of their times to first token");
    s.repeats = new QSpinBox(results);
    s.repeats->setRange(1, 50);
    s.repeats->setValue(3);
    s.repeats->setSuffix(" runs each");
    s.repeats->setToolTip("How many timed runs of each (after one untimed warm-up run of each)");
    s.measure_progress = new QProgressBar(results);
    s.measure_progress->setRange(0, 1000);
    s.measure_progress->setMaximumHeight(14);
    s.measure_progress->setTextVisible(false);
    s.measure_progress->setVisible(false);
    measure_row->addWidget(s.measure);
    measure_row->addWidget(s.repeats);
    measure_row->addWidget(s.measure_progress, 1);
    measure_row->addStretch(0);
    grid->addRow(QString(), measure_row);
    comparison_layout->addWidget(results);
    s.layers =
        make_table(4, {"layer", "base global", "variant global", "change"}, s.comparison_page);
    s.layers->verticalHeader()->setVisible(false);
    s.layers->horizontalHeaderItem(1)->setToolTip("Share of tokens with global attention, base");
    s.layers->horizontalHeaderItem(2)->setToolTip(
        "Share of tokens with global attention, variant "
        "(0 in pruned layers)");
    s.layers->horizontalHeaderItem(3)->setToolTip("Variant minus base, percentage points");
    comparison_layout->addWidget(s.layers, 1);
    return s.comparison_page;
}

// Two profiles side by side (a profile opened to compare, not a what-if of the base).
QTableWidget* WhatIfView::createSideBySidePage() {
    State& s = *state_;
    s.side = make_table(2, {"base", "other"}, s.pages);
    s.side->setRowCount(static_cast<int>(std::size(kSideRows)));
    for (int r = 0; r < s.side->rowCount(); ++r) {
        s.side->setVerticalHeaderItem(r, new QTableWidgetItem(kSideRows[r].second));
    }
    s.side->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    return s.side;
}

// Names for tests and style sheets.
void WhatIfView::nameWidgets() {
    State& s = *state_;
    s.routing->setObjectName("routing");
    s.fraction->setObjectName("fraction");
    s.override_threshold->setObjectName("thresholdOverride");
    s.threshold->setObjectName("threshold");
    s.threshold_slider->setObjectName("thresholdSlider");
    s.reset->setObjectName("reset");
    s.kl_token->setObjectName("klMaxToken");
    s.busy->setObjectName("busy");
    s.status->setObjectName("whatifStatus");
    s.measure->setObjectName("measureTtft");
    s.repeats->setObjectName("ttftRepeats");
    s.measure_progress->setObjectName("ttftProgress");
    s.pages->setObjectName("comparison");
    s.results->setObjectName("variantVsBase");
    s.layers->setObjectName("layerComparison");
    s.side->setObjectName("sideBySide");
}

// The options as the controls now say, into the session (which starts a what-if run).
void WhatIfView::applyEdits() {
    State& st = *state_;
    if (st.updating || !st.session->base()) return;
    RunOptions o = st.session->whatIfOptions();
    const auto kind = static_cast<RoutingKind>(st.routing->currentIndex());
    const bool has_fraction = kind == RoutingKind::Random || kind == RoutingKind::Top;
    o.routing = RoutingPolicy{kind, has_fraction ? st.fraction->value() : 0.0};
    o.threshold = st.override_threshold->isChecked() ? std::optional<double>(st.threshold->value())
                                                     : std::nullopt;
    st.threshold->setEnabled(st.override_threshold->isChecked());
    st.threshold_slider->setEnabled(st.override_threshold->isChecked());
    st.fraction->setEnabled(has_fraction);
    st.session->setWhatIfOptions(o);
}

// The controls edit the session's what-if options; the slider and the spin box follow each
// other; Reset, Measure TTFT and the KL token act.
void WhatIfView::connectControls() {
    State& s = *state_;
    connect(s.routing, &QComboBox::currentIndexChanged, this, &WhatIfView::applyEdits);
    connect(s.fraction, &QDoubleSpinBox::valueChanged, this, &WhatIfView::applyEdits);
    connect(s.override_threshold, &QCheckBox::toggled, this, &WhatIfView::applyEdits);
    connect(s.threshold, &QDoubleSpinBox::valueChanged, this, [this](double v) {
        State& st = *state_;
        const bool was = st.updating;
        st.updating = true;  // the slider follows; one edit, not two
        st.threshold_slider->setValue(static_cast<int>(std::lround(v * kSliderSteps)));
        st.updating = was;
        applyEdits();
    });
    connect(s.threshold_slider, &QSlider::valueChanged, this, [this](int v) {
        State& st = *state_;
        if (st.updating) return;
        st.threshold->setValue(static_cast<double>(v) / kSliderSteps);  // which edits the options
    });
    connect(s.reset, &QPushButton::clicked, this, [this] {
        if (state_->session->base()) {
            state_->session->setWhatIfOptions(state_->session->base()->options);
        }
    });
    connect(s.measure, &QPushButton::clicked, this, [this] {
        if (state_->session->comparison() && !state_->measuring) {
            emit measureTtftRequested(state_->repeats->value());
        }
    });
    connect(s.kl_token, &QPushButton::clicked, this, [this] {
        if (state_->kl_max_token >= 0) state_->selection->setToken(state_->kl_max_token);
    });
}

// A new base or variant, or options changed elsewhere, update the controls and the results.
void WhatIfView::connectSession() {
    connect(state_->session, &Session::whatIfOptionsChanged, this, [this] { syncControls(); });
    connect(state_->session, &Session::baseChanged, this, [this] {
        syncControls();
        showResults();
    });
    connect(state_->session, &Session::variantChanged, this, [this] { showResults(); });
}

WhatIfView::~WhatIfView() = default;

void WhatIfView::syncControls() {
    State& s = *state_;
    s.updating = true;
    const RunOptions& o = s.session->whatIfOptions();
    s.routing->setCurrentIndex(static_cast<int>(o.routing.kind));
    const bool has_fraction =
        o.routing.kind == RoutingKind::Random || o.routing.kind == RoutingKind::Top;
    if (has_fraction) s.fraction->setValue(o.routing.fraction);
    s.override_threshold->setChecked(o.threshold.has_value());
    if (o.threshold) {
        s.threshold->setValue(*o.threshold);
        s.threshold_slider->setValue(static_cast<int>(std::lround(*o.threshold * kSliderSteps)));
    }
    const ProfilePtr& base = s.session->base();
    // Routing and threshold mean nothing to a plain model or an L2A model run as its base.
    const bool l2a = base && base->model.is_l2a && !base->options.as_base;
    s.routing->setEnabled(l2a);
    s.fraction->setEnabled(l2a && has_fraction);
    s.override_threshold->setEnabled(l2a);
    s.threshold->setEnabled(l2a && o.threshold.has_value());
    s.threshold_slider->setEnabled(l2a && o.threshold.has_value());
    s.reset->setEnabled(base && !(o == base->options));
    s.updating = false;
}

void WhatIfView::showResults() {
    State& s = *state_;
    for (auto& [key, label] : s.values) label->clear();
    s.kl_token->setVisible(false);
    s.kl_max_token = -1;
    s.layers->setRowCount(0);
    for (int r = 0; r < s.side->rowCount(); ++r) {
        s.side->setItem(r, 0, nullptr);
        s.side->setItem(r, 1, nullptr);
    }
    s.pages->setCurrentWidget(s.comparison_page);
    const ProfilePtr& base = s.session->base();
    const ProfilePtr& variant = s.session->variant();
    const ComparisonPtr& c = s.session->comparison();
    if (s.running) {
        s.status->setText("Running the what-if…");
    } else if (!base) {
        s.status->setText("No run yet.");
    } else if (!variant) {
        s.status->setText(
            "No what-if yet: prune a layer in the Layers view or change the routing or the "
            "threshold above; the comparison with this run shows here. The run's own numbers "
            "are in the run summary.");
    }
    // No empty column of labels: the comparison shows once there is something to compare
    // (the run's own numbers are in the run summary).
    s.pages->setVisible(base && variant);
    s.measure->setEnabled(c != nullptr && !s.measuring && !s.running);
    s.measure_progress->setVisible(s.measuring);
    if (!base || !variant) return;
    if (c) {
        if (!s.running) {
            s.status->setText(QString("Variant: %1; re-run from layer %2.")
                                  .arg(options_text(variant->options))
                                  .arg(c->start_layer));
        }
        s.values["delta_nll"]->setText(QString("%1 → %2  (%3)")
                                           .arg(fixed_text(c->base_mean_nll, 4),
                                                fixed_text(c->variant_mean_nll, 4),
                                                signed_number(c->delta_mean_nll, 4)));
        s.values["perplexity"]->setText(QString("%1 → %2  (%3)")
                                            .arg(fixed_text(c->base_perplexity, 3),
                                                 fixed_text(c->variant_perplexity, 3),
                                                 signed_number(c->delta_perplexity, 3)));
        s.values["kl_mean"]->setText(fixed_text(c->kl_mean, 5) + " nats");
        s.values["kl_max"]->setText(fixed_text(c->kl_max, 5) + " nats");
        s.values["top1"]->setText(percent_text(c->top1_agreement, 2));
        s.values["kv"]->setText(QString("%1 → %2  (%3% → %4% of no L2A, %5)")
                                    .arg(bytes_text(c->base_kv_bytes),
                                         bytes_text(c->variant_kv_bytes),
                                         fixed_text(100.0 * c->base_kv_relative, 1),
                                         fixed_text(100.0 * c->variant_kv_relative, 1),
                                         bytes_text(c->kv_bytes_without_l2a)));
        s.values["kv_saved"]->setText(bytes_text(c->base_kv_bytes - c->variant_kv_bytes));
        // Measured only as repeated full runs of both; never the base's time up to the first
        // changed layer plus a re-run.
        if (c->base_ttft.measured() && c->variant_ttft.measured()) {
            const auto runs = std::min(c->base_ttft.samples.size(), c->variant_ttft.samples.size());
            s.values["ttft_measured"]->setText(
                QString("%1 → %2, %3, %4")
                    .arg(measurement_text(c->base_ttft), measurement_text(c->variant_ttft),
                         runs == 1 ? QString("1 run each")
                                   : QString("median of %1 runs each").arg(runs),
                         threads_text(variant->cpu_threads)));
        } else {
            s.values["ttft_measured"]->setText(s.measuring ? QString("measuring…")
                                                           : QString("not measured"));
        }
        const double change = c->base_ttft_predicted > 0
                                  ? c->variant_ttft_predicted / c->base_ttft_predicted - 1.0
                                  : std::nan("");
        s.values["ttft_predicted"]->setText(QString("%1 → %2  (%3%), predicted")
                                                .arg(seconds_text(c->base_ttft_predicted),
                                                     seconds_text(c->variant_ttft_predicted),
                                                     signed_number(100.0 * change, 1)));
        if (c->kl_max > 0 && c->kl_max_token >= 0 && c->kl_max_token < base->num_tokens()) {
            s.kl_max_token = c->kl_max_token;
            s.kl_token->setText(QString("at token %1").arg(c->kl_max_token));
            s.kl_token->setVisible(true);
        }
        const std::size_t layers = c->base_global_fraction.size();
        s.layers->setRowCount(static_cast<int>(layers));
        for (std::size_t l = 0; l < layers; ++l) {
            const double a = c->base_global_fraction[l];
            const double b =
                l < c->variant_global_fraction.size() ? c->variant_global_fraction[l] : 0.0;
            const int row = static_cast<int>(l);
            s.layers->setItem(row, 0, cell(QString::number(l)));
            s.layers->setItem(row, 1, cell(percent_text(a, 1)));
            s.layers->setItem(row, 2, cell(percent_text(b, 1)));
            s.layers->setItem(row, 3, cell(points_text(b - a)));
        }
        return;
    }
    // Two opened profiles side by side: only what both recorded.
    if (!s.running) {
        s.status->setText("Two profiles side by side: " +
                          QString::fromStdString(variant->document_path) + " against the base.");
    }
    s.pages->setCurrentWidget(s.side);
    const Profile* runs[2] = {base.get(), variant.get()};
    for (int col = 0; col < 2; ++col) {
        const Profile& p = *runs[col];
        const QString texts[] = {
            fixed_text(p.metrics.mean_nll, 4) + " nats",
            fixed_text(p.metrics.perplexity, 3),
            percent_text(p.metrics.global_fraction_overall, 1),
            bytes_text(p.metrics.kv_bytes_total),
            seconds_text(p.wall_seconds) + (p.time_basis.empty() ? "" : " (composed)") + ", " +
                threads_text(p.cpu_threads),
            options_text(p.options),
        };
        for (int r = 0; r < s.side->rowCount(); ++r) {
            s.side->setItem(r, col, cell(texts[r], r + 1 < s.side->rowCount()));
        }
    }
}

QString WhatIfView::shownValue(const QString& metric) const {
    const State& s = *state_;
    if (s.pages->currentWidget() == s.side) {
        for (int r = 0; r < s.side->rowCount(); ++r) {
            if (metric != kSideRows[r].first) continue;
            const QTableWidgetItem* a = s.side->item(r, 0);
            const QTableWidgetItem* b = s.side->item(r, 1);
            return a && b ? a->text() + " | " + b->text() : QString();
        }
        return {};
    }
    auto it = s.values.find(metric);
    return it == s.values.end() ? QString() : it->second->text();
}

int WhatIfView::resultsHeightHint() const {
    const State& s = *state_;
    const auto* box = static_cast<const QBoxLayout*>(layout());
    const QMargins m = box->contentsMargins();
    // The status line may wrap once in a narrow column.
    const int status_h = 2 * s.status->fontMetrics().lineSpacing();
    return m.top() + m.bottom() + 2 * box->spacing() + s.options->sizeHint().height() + status_h +
           s.results->sizeHint().height();
}

void WhatIfView::setMeasuring(bool measuring, double fraction) {
    State& s = *state_;
    s.measure_progress->setValue(static_cast<int>(std::clamp(fraction, 0.0, 1.0) * 1000));
    if (s.measuring == measuring) return;
    s.measuring = measuring;
    showResults();
}

void WhatIfView::setRunning(bool running) {
    State& s = *state_;
    s.running = running;
    s.busy->setVisible(running);
    s.status->setStyleSheet(running ? "color: #b7791f" : "color: #5a6372");
    showResults();
}

}  // namespace l2a::ui
