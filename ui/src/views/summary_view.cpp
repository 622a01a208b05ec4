// The run summary: a form of labels filled from the session's base profile and its RunInfo.
#include "l2a/ui/summary_view.h"

#include <QFileInfo>
#include <QFormLayout>
#include <QLayout>
#include <QResizeEvent>
#include <QTimer>
#include <algorithm>
#include <QLabel>
#include <QVBoxLayout>
#include <cmath>
#include <filesystem>
#include <map>

#include "l2a/engine/demo.h"
#include "l2a/ui/session.h"
#include "l2a/ui/units.h"

namespace l2a::ui {
namespace {

struct Row {
    const char* key;
    const char* label;
    const char* tip;
};
constexpr Row kRows[] = {
    {"document", "document", "The document, the tokens this run covered and the tokens in it"},
    {"model", "model", "The model folder, its architecture and size"},
    {"placement", "ran on", "Device, attention backend, weight precision and CPU threads"},
    {"loss", "mean NLL", "Mean negative log-likelihood of the next token, nats per token"},
    {"perplexity", "perplexity", "exp(mean NLL)"},
    {"global", "global attention",
     "Share of all token-layer pairs that ran global attention (every layer, every token)"},
    {"kv", "KV memory", "KV-cache bytes of the run (bf16 cache), with L2A and for the same model "
                        "without L2A (one full-attention cache per layer)"},
    {"time", "time", "Wall time of the whole run: every layer, the LM head over every row and "
                     "the per-token loss; not a time to first token"},
};

QString group_digits(std::int64_t n) {
    QString digits = QString::number(std::llabs(n));
    for (qsizetype i = digits.size() - 3; i > 0; i -= 3) digits.insert(i, ',');
    return (n < 0 ? "-" : "") + digits;
}

QString fixed(double v, int digits) {
    return std::isfinite(v) ? QString::number(v, 'f', digits) : "n/a";
}

QString seconds_text(double s) {
    if (!(s > 0) || !std::isfinite(s)) return "n/a";
    if (s >= 1.0) return QString::number(s, 'f', 2) + " s";
    return QString::number(s * 1e3, 'f', 1) + " ms";
}

bool is_demo_model(const std::string& path) {
    if (path.empty()) return false;
    std::error_code error;
    return std::filesystem::equivalent(path, demo_model_dir(), error);
}

QString parameters_text(std::int64_t n) {
    if (n >= 1'000'000'000) return QString::number(n / 1e9, 'f', 2) + " B";
    if (n >= 1'000'000) return QString::number(n / 1e6, 'f', 1) + " M";
    if (n >= 1'000) return QString::number(n / 1e3, 'f', 1) + " k";
    return QString::number(n);
}

}  // namespace

struct SummaryView::State {
    Session* session = nullptr;
    std::map<QString, QLabel*> values;
    QLabel* kv_note = nullptr;
    QLabel* empty = nullptr;
    QWidget* form = nullptr;
    QFormLayout* form_layout = nullptr;
    int preferred_height = 0;
};

SummaryView::SummaryView(Session* session, QWidget* parent)
    : QWidget(parent), state_(std::make_unique<State>()) {
    State& s = *state_;
    s.session = session;
    setObjectName("runSummary");
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(6, 4, 6, 4);
    s.empty = new QLabel("No run yet: F5 runs the document.", this);
    s.empty->setStyleSheet("color: #5a6372");
    layout->addWidget(s.empty);
    s.form = new QWidget(this);
    auto* form = new QFormLayout(s.form);
    s.form_layout = form;
    form->setContentsMargins(0, 0, 0, 0);
    form->setVerticalSpacing(3);
    form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
    for (const Row& row : kRows) {
        auto* label = new QLabel(row.label, s.form);
        label->setAlignment(Qt::AlignLeft | Qt::AlignTop);
        label->setToolTip(row.tip);
        auto* value = new QLabel(s.form);
        value->setObjectName(QString("summary_") + row.key);
        value->setToolTip(row.tip);
        value->setWordWrap(true);
        value->setTextInteractionFlags(Qt::TextSelectableByMouse);
        s.values[row.key] = value;
        if (QString(row.key) == "kv") {
            auto* box = new QWidget(s.form);
            auto* column = new QVBoxLayout(box);
            column->setContentsMargins(0, 0, 0, 0);
            column->setSpacing(1);
            column->addWidget(value);
            s.kv_note = new QLabel(box);
            s.kv_note->setObjectName("summary_kv_note");
            s.kv_note->setWordWrap(true);
            s.kv_note->setStyleSheet("color: #5a6372; font-size: 8.5pt");
            column->addWidget(s.kv_note);
            form->addRow(label, box);
        } else {
            form->addRow(label, value);
        }
    }
    layout->addWidget(s.form);
    layout->addStretch(1);
    connect(session, &Session::baseChanged, this, [this] { refresh(); });
    refresh();
}

SummaryView::~SummaryView() = default;

QString SummaryView::shownValue(const QString& row) const {
    const State& s = *state_;
    if (!s.session->base()) return {};
    auto it = s.values.find(row);
    return it == s.values.end() ? QString() : it->second->text();
}

void SummaryView::refresh() {
    State& s = *state_;
    const ProfilePtr& p = s.session->base();
    s.empty->setVisible(!p);
    if (!p) {
        for (auto& [key, label] : s.values) label->setText("—");
        s.kv_note->clear();
        return;
    }
    const RunInfo& info = s.session->baseInfo();

    // Document: its name, the tokens run and the tokens in it.
    const QString document = p->document_path == "<demo document>" || p->document_path.empty()
                                 ? QString("demo document")
                                 : QFileInfo(QString::fromStdString(p->document_path)).fileName();
    const std::int64_t in_document = std::max(p->tokens_before_truncation, p->num_tokens());
    QString doc_text = QString("%1, %2 of %3 tokens")
                           .arg(document, group_digits(p->num_tokens()), group_digits(in_document));
    if (in_document > p->num_tokens()) {
        doc_text += info.cut_by == "context" ? QString(", cut at the model's context")
                                             : QString(", cut by max tokens");
    }
    s.values["document"]->setText(doc_text);
    s.values["document"]->setToolTip(QString::fromStdString(p->document_path));

    const ModelSummary& m = p->model;
    const QString model_name = is_demo_model(m.path)
                                   ? QString("demo model")
                                   : QFileInfo(QString::fromStdString(m.path)).fileName();
    s.values["model"]->setText(
        QString("%1, %2, %3 layers, %4 parameters%5")
            .arg(model_name.isEmpty() ? QString("unnamed") : model_name,
                 QString::fromStdString(m.model_type), QString::number(m.num_layers),
                 parameters_text(m.parameter_count), m.is_l2a ? QString(", L2A") : QString()));
    s.values["model"]->setToolTip(QString::fromStdString(m.path));

    // Where it ran. The CPU engine runs fp32 only, so a CPU profile's precision is known.
    const bool cpu = p->options.device == "cpu";
    QString dtype = QString::fromStdString(info.dtype);
    if (dtype.isEmpty() || dtype == "auto") dtype = cpu ? "fp32" : "dtype not recorded";
    const auto threads = info.threads > 0 ? std::int64_t{info.threads} : p->cpu_threads;
    const QString threads_text =
        threads > 0 ? QString("%1 thread%2").arg(threads).arg(threads == 1 ? "" : "s")
                    : QString("threads not recorded");
    const QString device = QString::fromStdString(p->options.device) +
                           (p->device.empty() || p->device == p->options.device
                                ? QString()
                                : " (" + QString::fromStdString(p->device) + ")");
    s.values["placement"]->setText(QString("%1 · %2 · %3 · %4")
                                       .arg(device, QString::fromStdString(p->options.backend),
                                            dtype, threads_text));

    s.values["loss"]->setText(fixed(p->metrics.mean_nll, 4) + " nats/token");
    s.values["perplexity"]->setText(fixed(p->metrics.perplexity, 3));
    s.values["global"]->setText(
        QString("%1% of token-layers").arg(fixed(100.0 * p->metrics.global_fraction_overall, 1)));

    const std::int64_t with = p->metrics.kv_bytes_total;
    const std::int64_t without = p->metrics.kv_bytes_without_l2a;
    if (m.is_l2a && !p->options.as_base && without > 0) {
        s.values["kv"]->setText(QString("%1 with L2A, %2 without: %3%")
                                    .arg(byte_size_text(with, 2), byte_size_text(without, 2),
                                         fixed(100.0 * static_cast<double>(with) /
                                                   static_cast<double>(without),
                                               1)));
        s.kv_note->setText(
            "L2A keeps global K/V for every token of every layer that is not pruned (plus its "
            "window): a little more than the base model. Pruning layers is what saves.");
        s.kv_note->setVisible(true);
    } else {
        s.values["kv"]->setText(byte_size_text(with, 2));
        s.kv_note->clear();
        s.kv_note->setVisible(false);
    }
    s.values["time"]->setText(seconds_text(p->wall_seconds) +
                              " wall time of the run, with the per-token loss pass");
    // The new texts are laid out first, then their height is known.
    QTimer::singleShot(0, this, [this] { fitHeight(); });
}

void SummaryView::resizeEvent(QResizeEvent* event) {
    QWidget::resizeEvent(event);
    fitHeight();
}

void SummaryView::fitHeight() {
    // Wrapped lines need more height when the column is narrow: the height every row needs at
    // the width the values have now, for the dock to take.
    State& s = *state_;
    QFormLayout* form = s.form_layout;
    const QMargins outer = layout()->contentsMargins();
    int h = outer.top() + outer.bottom();
    if (s.empty->isVisible()) h += s.empty->sizeHint().height() + layout()->spacing();
    const int fallback = std::max(100, width() * 2 / 3);
    for (int row = 0; row < form->rowCount(); ++row) {
        QLayoutItem* label = form->itemAt(row, QFormLayout::LabelRole);
        QLayoutItem* field = form->itemAt(row, QFormLayout::FieldRole);
        if (!field || !field->widget()) continue;
        QWidget* w = field->widget();
        const int field_w = w->width() > 20 ? w->width() : fallback;
        const int field_h =
            w->hasHeightForWidth() ? w->heightForWidth(field_w) : w->sizeHint().height();
        const int label_h = label && label->widget() ? label->widget()->sizeHint().height() : 0;
        h += std::max(label_h, field_h) + std::max(0, form->verticalSpacing());
    }
    h += fontMetrics().lineSpacing();  // room for a line that wraps once more than measured
    if (h != state_->preferred_height) {
        state_->preferred_height = h;
        emit preferredHeightChanged(h);
    }
}

int SummaryView::preferredHeight() const { return state_->preferred_height; }

}  // namespace l2a::ui
