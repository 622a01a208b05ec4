// The run summary: a form of labels filled from the session's base profile and its RunInfo.
#include "l2a/ui/summary_view.h"

#include <QFileInfo>
#include <QFormLayout>
#include <QLabel>
#include <QLayout>
#include <QResizeEvent>
#include <QTimer>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "l2a/engine/demo.h"
#include "l2a/engine/run_choices.h"
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
    {"kv", "KV memory",
     "KV-cache bytes of the run (bf16 cache), and relative to the same model "
     "without L2A"},
    {"kv_base", "without L2A",
     "KV-cache bytes of the same model without L2A: one full-attention cache per layer"},
    {"time", "time",
     "Wall time of the whole run: every layer, the LM head over every row and "
     "the per-token loss; not a time to first token"},
};

QString seconds_text(double s) {
    return s > 0 ? duration_text(s, {.s = 2, .ms = 1, .us = 1}) : QString("n/a");
}

bool is_demo_model(const std::string& path) {
    if (path.empty()) return false;
    std::error_code error;
    return std::filesystem::equivalent(path, demo_model_dir(), error);
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
        value->setTextInteractionFlags(Qt::TextSelectableByMouse);
        s.values[row.key] = value;
        form->addRow(label, value);
    }
    layout->addWidget(s.form);
    // Why L2A's cache is not smaller: wrapped under the rows (which are one line each).
    s.kv_note = new QLabel(this);
    s.kv_note->setObjectName("summary_kv_note");
    s.kv_note->setWordWrap(true);
    s.kv_note->setStyleSheet("color: #5a6372; font-size: 8.5pt");
    layout->addWidget(s.kv_note);
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
                           .arg(document, count_text(p->num_tokens()), count_text(in_document));
    if (in_document > p->num_tokens()) {
        doc_text += info.cut_by == "context" ? QString(", cut at the context")
                                             : QString(", cut by max tokens");
    }
    s.values["document"]->setText(doc_text);
    s.values["document"]->setToolTip(QString::fromStdString(p->document_path));

    const ModelSummary& m = p->model;
    const QString model_name = is_demo_model(m.path)
                                   ? QString("demo model")
                                   : QFileInfo(QString::fromStdString(m.path)).fileName();
    s.values["model"]->setText(QString("%1, %2 layers, %3 params")
                                   .arg(model_name.isEmpty() ? QString("unnamed") : model_name,
                                        QString::number(m.num_layers),
                                        count_short_text(m.parameter_count)));
    s.values["model"]->setToolTip(QString("%1 (%2%3)")
                                      .arg(QString::fromStdString(m.path),
                                           QString::fromStdString(m.model_type),
                                           m.is_l2a ? QString(", L2A") : QString()));

    // Where it ran. The CPU engine runs fp32 only, so a CPU profile's precision is known.
    const bool cpu = is_cpu_device(p->options.device);
    // The run's own report, else what the profile recorded (a profile opened from a file).
    QString dtype = QString::fromStdString(info.dtype.empty() ? p->dtype : info.dtype);
    if (dtype.isEmpty() || dtype == "auto") dtype = cpu ? "fp32" : "dtype not recorded";
    const auto threads = info.threads > 0 ? std::int64_t{info.threads} : p->cpu_threads;
    const QString threads_text =
        threads > 0 ? QString("%1 thread%2").arg(threads).arg(threads == 1 ? "" : "s")
                    : QString("threads not recorded");
    const QString device = QString::fromStdString(p->options.device) +
                           (p->device.empty() || p->device == p->options.device
                                ? QString()
                                : " (" + QString::fromStdString(p->device) + ")");
    s.values["placement"]->setText(
        QString("%1 · %2 · %3 · %4")
            .arg(device, QString::fromStdString(p->options.backend), dtype, threads_text));

    s.values["loss"]->setText(fixed_text(p->metrics.mean_nll, 4) + " nats/token");
    s.values["perplexity"]->setText(fixed_text(p->metrics.perplexity, 3));
    s.values["global"]->setText(
        QString("%1 of token-layers").arg(percent_text(p->metrics.global_fraction_overall)));

    const std::int64_t with = p->metrics.kv_bytes_total;
    // The cache is counted in the element a deployment keeps (bf16 by default), not in the dtype
    // the run computed in: an fp32 run on the CPU still shows a bf16 cache, and says so.
    const QString kv_element =
        QString::fromStdString(kv_element_text(p->options.kv_bytes_per_element));
    const std::int64_t without = p->metrics.kv_bytes_without_l2a;
    if (m.is_l2a && !p->options.as_base && without > 0) {
        s.values["kv"]->setText(
            QString("%1, %2 of without L2A")
                .arg(byte_size_text(with, 2),
                     percent_text(static_cast<double>(with) / static_cast<double>(without))));
        s.values["kv_base"]->setText(byte_size_text(without, 2));
        s.kv_note->setText(
            "Counted in " + kv_element +
            ", the cache a deployment keeps, whatever the run computed in. L2A keeps global K/V "
            "for every token of every layer that is not pruned (plus its window): a little more "
            "than the base model. Pruning layers is what saves.");
        s.kv_note->setVisible(true);
    } else {
        s.values["kv"]->setText(QString("%1 in %2").arg(byte_size_text(with, 2), kv_element));
        s.values["kv_base"]->setText(without > 0 ? byte_size_text(without, 2) : QString("—"));
        s.kv_note->clear();
        s.kv_note->setVisible(false);
    }
    s.values["time"]->setText(seconds_text(p->wall_seconds) +
                              " wall time, with the per-token loss");
    // The new texts are laid out first, then their height is known.
    QTimer::singleShot(0, this, [this] { fitHeight(); });
}

void SummaryView::resizeEvent(QResizeEvent* event) {
    QWidget::resizeEvent(event);
    fitHeight();
}

void SummaryView::fitHeight() {
    // The rows are one line each; the note wraps. The height all of it needs at this width,
    // for the dock to take.
    State& s = *state_;
    const QMargins outer = layout()->contentsMargins();
    const int inner_w = std::max(50, width() - outer.left() - outer.right());
    int h = outer.top() + outer.bottom() + s.form->sizeHint().height();
    if (s.empty->isVisible()) h += s.empty->sizeHint().height() + layout()->spacing();
    if (s.kv_note->isVisibleTo(this) && !s.kv_note->text().isEmpty()) {
        const int note_h = s.kv_note->heightForWidth(inner_w);
        if (note_h != s.kv_note->minimumHeight()) s.kv_note->setMinimumHeight(note_h);
        h += note_h + layout()->spacing();
    }
    if (width() >= 250 && h != minimumHeight()) setMinimumHeight(h);
    if (h != s.preferred_height) {
        s.preferred_height = h;
        emit preferredHeightChanged(h);
    }
}

int SummaryView::preferredHeight() const { return state_->preferred_height; }

}  // namespace l2a::ui
