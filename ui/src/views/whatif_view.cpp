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
#include <QPushButton>
#include <QTableWidget>
#include <QVBoxLayout>
#include <cmath>
#include <map>

#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"

namespace l2a::ui {
namespace {

QString fixed(double v, int digits) { return std::isfinite(v) ? QString::number(v, 'f', digits) : "n/a"; }

QString signed_fixed(double v, int digits) {
    if (!std::isfinite(v)) return "n/a";
    return (v > 0 ? "+" : "") + QString::number(v, 'f', digits);
}

QString bytes_text(std::int64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(std::llabs(bytes));
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        ++u;
    }
    const QString sign = bytes < 0 ? "-" : "";
    return u == 0 ? QString::number(bytes) + " B" : sign + QString::number(v, 'f', 2) + " " + units[u];
}

QString seconds_text(double s) {
    if (!std::isfinite(s)) return "n/a";
    if (s >= 1.0) return QString::number(s, 'f', 3) + " s";
    return QString::number(s * 1e3, 'f', 1) + " ms";
}

}  // namespace

struct WhatIfView::State {
    Session* session = nullptr;
    Selection* selection = nullptr;
    QComboBox* routing = nullptr;
    QDoubleSpinBox* fraction = nullptr;
    QCheckBox* override_threshold = nullptr;
    QDoubleSpinBox* threshold = nullptr;
    QPushButton* reset = nullptr;
    QLabel* status = nullptr;
    QLabel* kl_token = nullptr;
    std::map<QString, QLabel*> values;
    QTableWidget* layers = nullptr;
    bool updating = false;  // controls being set from the session, not by the user
    qint64 kl_max_token = -1;
};

WhatIfView::WhatIfView(Session* session, Selection* selection, QWidget* parent)
    : QWidget(parent), state_(std::make_unique<State>()) {
    State& s = *state_;
    s.session = session;
    s.selection = selection;
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);

    auto* controls = new QGroupBox("What-if options (pruning: check layers in the Layers view)", this);
    auto* form = new QFormLayout(controls);
    auto* routing_row = new QHBoxLayout;
    s.routing = new QComboBox(controls);
    s.routing->addItems({"learned", "global", "local", "random", "top"});
    s.routing->setToolTip("Routing policy: the learned router, all tokens global, all local, a random "
                          "fraction, or the top fraction by router logit");
    s.fraction = new QDoubleSpinBox(controls);
    s.fraction->setRange(0.0, 1.0);
    s.fraction->setSingleStep(0.05);
    s.fraction->setDecimals(3);
    s.fraction->setValue(0.2);
    s.fraction->setToolTip("Fraction of tokens for random and top routing");
    routing_row->addWidget(s.routing);
    routing_row->addWidget(new QLabel("fraction", controls));
    routing_row->addWidget(s.fraction);
    form->addRow("routing", routing_row);
    auto* threshold_row = new QHBoxLayout;
    s.override_threshold = new QCheckBox("override", controls);
    s.threshold = new QDoubleSpinBox(controls);
    s.threshold->setRange(0.001, 0.999);
    s.threshold->setSingleStep(0.05);
    s.threshold->setDecimals(3);
    s.threshold->setValue(0.5);
    s.threshold->setToolTip("Router probability a token needs to run global attention");
    threshold_row->addWidget(s.override_threshold);
    threshold_row->addWidget(s.threshold);
    form->addRow("threshold", threshold_row);
    s.reset = new QPushButton("Reset to base", controls);
    s.reset->setToolTip("Back to the base run's options (no pruning, its routing and threshold)");
    form->addRow(QString(), s.reset);
    layout->addWidget(controls);

    s.status = new QLabel("No what-if yet: prune a layer or change the routing.", this);
    s.status->setStyleSheet("color: #5a6372");
    s.status->setWordWrap(true);
    layout->addWidget(s.status);

    auto* results = new QGroupBox("Result (variant vs base)", this);
    auto* grid = new QFormLayout(results);
    const std::pair<const char*, const char*> rows[] = {
        {"delta_nll", "Δ mean NLL"},   {"perplexity", "perplexity"},
        {"kl_mean", "KL mean"},        {"kl_max", "KL max"},
        {"top1", "top-1 agreement"},   {"kv_saved", "KV memory saved"},
        {"kv", "KV memory"},           {"ttft_measured", "TTFT measured"},
        {"ttft_predicted", "TTFT predicted"}};
    for (const auto& [key, label] : rows) {
        auto* value = new QLabel("–", results);
        value->setTextInteractionFlags(Qt::TextSelectableByMouse);
        value->setStyleSheet("font-family: monospace");
        grid->addRow(label, value);
        s.values[key] = value;
    }
    s.kl_token = new QLabel(results);
    s.kl_token->setTextFormat(Qt::RichText);
    grid->addRow(QString(), s.kl_token);
    layout->addWidget(results);

    s.layers = new QTableWidget(0, 4, this);
    s.layers->setHorizontalHeaderLabels({"layer", "base global", "variant global", "change"});
    s.layers->verticalHeader()->setVisible(false);
    s.layers->verticalHeader()->setDefaultSectionSize(20);
    s.layers->setEditTriggers(QAbstractItemView::NoEditTriggers);
    s.layers->setSelectionBehavior(QAbstractItemView::SelectRows);
    s.layers->horizontalHeader()->setStretchLastSection(true);
    layout->addWidget(s.layers, 1);

    auto edited = [this] {
        State& st = *state_;
        if (st.updating || !st.session->base()) return;
        RunOptions o = st.session->whatIfOptions();
        const QString kind = st.routing->currentText();
        const double f = st.fraction->value();
        o.routing = kind == "learned"  ? RoutingPolicy{RoutingKind::Learned, 0.0}
                    : kind == "global" ? RoutingPolicy{RoutingKind::Global, 0.0}
                    : kind == "local"  ? RoutingPolicy{RoutingKind::Local, 0.0}
                    : kind == "random" ? RoutingPolicy{RoutingKind::Random, f}
                                       : RoutingPolicy{RoutingKind::Top, f};
        o.threshold = st.override_threshold->isChecked() ? std::optional<double>(st.threshold->value())
                                                         : std::nullopt;
        st.threshold->setEnabled(st.override_threshold->isChecked());
        st.fraction->setEnabled(kind == "random" || kind == "top");
        st.session->setWhatIfOptions(o);
    };
    connect(s.routing, &QComboBox::currentIndexChanged, this, edited);
    connect(s.fraction, &QDoubleSpinBox::valueChanged, this, edited);
    connect(s.override_threshold, &QCheckBox::toggled, this, edited);
    connect(s.threshold, &QDoubleSpinBox::valueChanged, this, edited);
    connect(s.reset, &QPushButton::clicked, this, [this] {
        if (state_->session->base()) state_->session->setWhatIfOptions(state_->session->base()->options);
    });
    connect(s.kl_token, &QLabel::linkActivated, this, [this] {
        if (state_->kl_max_token >= 0) state_->selection->setToken(state_->kl_max_token);
    });
    connect(session, &Session::whatIfOptionsChanged, this, [this] { syncControls(); });
    connect(session, &Session::baseChanged, this, [this] {
        syncControls();
        showResults();
    });
    connect(session, &Session::variantChanged, this, [this] { showResults(); });
    syncControls();
}

WhatIfView::~WhatIfView() = default;

void WhatIfView::syncControls() {
    State& s = *state_;
    s.updating = true;
    const RunOptions& o = s.session->whatIfOptions();
    const char* names[] = {"learned", "global", "local", "random", "top"};
    s.routing->setCurrentText(names[static_cast<int>(o.routing.kind)]);
    if (o.routing.kind == RoutingKind::Random || o.routing.kind == RoutingKind::Top) {
        s.fraction->setValue(o.routing.fraction);
    }
    s.fraction->setEnabled(o.routing.kind == RoutingKind::Random || o.routing.kind == RoutingKind::Top);
    s.override_threshold->setChecked(o.threshold.has_value());
    s.threshold->setEnabled(o.threshold.has_value());
    if (o.threshold) s.threshold->setValue(*o.threshold);
    const ProfilePtr& base = s.session->base();
    const bool l2a = base && base->model.is_l2a && !base->options.as_base;
    s.routing->setEnabled(l2a);
    s.override_threshold->setEnabled(l2a);
    s.reset->setEnabled(static_cast<bool>(base));
    s.updating = false;
}

void WhatIfView::showResults() {
    State& s = *state_;
    for (auto& [key, label] : s.values) label->setText("–");
    s.kl_token->clear();
    s.kl_max_token = -1;
    s.layers->setRowCount(0);
    const ProfilePtr& base = s.session->base();
    const ProfilePtr& variant = s.session->variant();
    const ComparisonPtr& c = s.session->comparison();
    if (!base || !variant) {
        s.status->setText(base ? "No what-if yet: prune a layer in the Layers view or change the routing."
                               : "No run yet.");
        return;
    }
    if (c) {
        s.status->setText(QString("Variant: routing %1, pruned layers %2%3; re-run from layer %4.")
                              .arg(QString::fromStdString(variant->options.routing.to_string()))
                              .arg(variant->options.prune.empty()
                                       ? QString("none")
                                       : QString::fromStdString(format_pruning_plan(variant->options.prune)))
                              .arg(variant->options.threshold
                                       ? QString(", threshold %1").arg(*variant->options.threshold)
                                       : QString())
                              .arg(c->start_layer));
        s.values["delta_nll"]->setText(QString("%1 → %2  (%3)")
                                           .arg(fixed(c->base_mean_nll, 4), fixed(c->variant_mean_nll, 4),
                                                signed_fixed(c->delta_mean_nll, 4)));
        s.values["perplexity"]->setText(QString("%1 → %2  (%3)")
                                            .arg(fixed(c->base_perplexity, 3), fixed(c->variant_perplexity, 3),
                                                 signed_fixed(c->delta_perplexity, 3)));
        s.values["kl_mean"]->setText(fixed(c->kl_mean, 5) + " nats");
        s.values["kl_max"]->setText(fixed(c->kl_max, 5) + " nats");
        s.values["top1"]->setText(fixed(100.0 * c->top1_agreement, 2) + "%");
        s.values["kv_saved"]->setText(bytes_text(c->base_kv_bytes - c->variant_kv_bytes));
        s.values["kv"]->setText(QString("%1 → %2  (%3% → %4% of no L2A)")
                                    .arg(bytes_text(c->base_kv_bytes), bytes_text(c->variant_kv_bytes),
                                         fixed(100.0 * c->base_kv_relative, 1),
                                         fixed(100.0 * c->variant_kv_relative, 1)));
        s.values["ttft_measured"]->setText(
            seconds_text(c->base_ttft_measured) + " → " + seconds_text(c->variant_ttft_measured));
        s.values["ttft_predicted"]->setText(
            seconds_text(c->base_ttft_predicted) + " → " + seconds_text(c->variant_ttft_predicted));
        if (c->kl_max > 0) {
            s.kl_max_token = c->kl_max_token;
            s.kl_token->setText(QString("largest KL at <a href='#'>token %1</a>").arg(c->kl_max_token));
        }
        const std::size_t layers = c->base_global_fraction.size();
        s.layers->setRowCount(static_cast<int>(layers));
        for (std::size_t l = 0; l < layers; ++l) {
            const double a = c->base_global_fraction[l];
            const double b = l < c->variant_global_fraction.size() ? c->variant_global_fraction[l] : 0.0;
            const int row = static_cast<int>(l);
            s.layers->setItem(row, 0, new QTableWidgetItem(QString::number(l)));
            s.layers->setItem(row, 1, new QTableWidgetItem(fixed(100 * a, 1) + "%"));
            s.layers->setItem(row, 2, new QTableWidgetItem(fixed(100 * b, 1) + "%"));
            s.layers->setItem(row, 3, new QTableWidgetItem(signed_fixed(100 * (b - a), 1) + " pp"));
        }
        return;
    }
    // Two opened profiles side by side: what both hold.
    s.status->setText("Comparing two saved profiles (" + QString::fromStdString(variant->document_path) +
                      "): the numbers both runs recorded.");
    s.values["delta_nll"]->setText(QString("%1 → %2  (%3)")
                                       .arg(fixed(base->metrics.mean_nll, 4), fixed(variant->metrics.mean_nll, 4),
                                            signed_fixed(variant->metrics.mean_nll - base->metrics.mean_nll, 4)));
    s.values["perplexity"]->setText(fixed(base->metrics.perplexity, 3) + " → " +
                                    fixed(variant->metrics.perplexity, 3));
    s.values["kv_saved"]->setText(bytes_text(base->metrics.kv_bytes_total - variant->metrics.kv_bytes_total));
    s.values["kv"]->setText(bytes_text(base->metrics.kv_bytes_total) + " → " +
                            bytes_text(variant->metrics.kv_bytes_total));
    s.values["ttft_measured"]->setText(seconds_text(base->wall_seconds) + " → " +
                                       seconds_text(variant->wall_seconds));
    const std::size_t layers = std::min(base->metrics.global_fraction.size(), variant->metrics.global_fraction.size());
    s.layers->setRowCount(static_cast<int>(layers));
    for (std::size_t l = 0; l < layers; ++l) {
        const double a = base->metrics.global_fraction[l], b = variant->metrics.global_fraction[l];
        const int row = static_cast<int>(l);
        s.layers->setItem(row, 0, new QTableWidgetItem(QString::number(l)));
        s.layers->setItem(row, 1, new QTableWidgetItem(fixed(100 * a, 1) + "%"));
        s.layers->setItem(row, 2, new QTableWidgetItem(fixed(100 * b, 1) + "%"));
        s.layers->setItem(row, 3, new QTableWidgetItem(signed_fixed(100 * (b - a), 1) + " pp"));
    }
}

QString WhatIfView::shownValue(const QString& metric) const {
    auto it = state_->values.find(metric);
    if (it == state_->values.end() || it->second->text() == "–") return {};
    return it->second->text();
}

void WhatIfView::setRunning(bool running) {
    state_->status->setText(running ? "Running the what-if…" : state_->status->text());
    if (running) {
        state_->status->setStyleSheet("color: #b7791f");
    } else {
        state_->status->setStyleSheet("color: #5a6372");
        showResults();
    }
}

}  // namespace l2a::ui
