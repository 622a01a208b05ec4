// The document view: a read-only QPlainTextEdit whose visible lines get their token tints
// painted under the text at paint time, so a 128K-token document costs no per-token formats.
// Byte offsets of the profile map to UTF-16 positions once per profile.
#include "l2a/ui/document_view.h"

#include <QComboBox>
#include <QEvent>
#include <QHBoxLayout>
#include <QHelpEvent>
#include <QLabel>
#include <QPainter>
#include <QPlainTextEdit>
#include <QScrollBar>
#include <QTextBlock>
#include <QTextLayout>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <vector>

#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"

namespace l2a::ui {
namespace {

const QColor kRouted(0xc0, 0x39, 0x2b);
const QColor kBetter(0x2e, 0x8b, 0x57);

// UTF-16 index of every byte offset of a UTF-8 text (continuation bytes map to their
// character's start), plus the end.
std::vector<int> utf16_positions(const std::string& text) {
    std::vector<int> at(text.size() + 1, 0);
    int unit = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        const std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
        for (std::size_t k = 0; k < len && i + k < text.size(); ++k) at[i + k] = unit;
        unit += len == 4 ? 2 : 1;
        i += len;
    }
    at[text.size()] = unit;
    return at;
}

}  // namespace

class DocumentText : public QPlainTextEdit {
public:
    explicit DocumentText(DocumentView::State* state) : state_(state) {
        setReadOnly(true);
        setLineWrapMode(QPlainTextEdit::WidgetWidth);
        setMouseTracking(true);
        viewport()->setMouseTracking(true);
        setTextInteractionFlags(Qt::TextSelectableByMouse | Qt::TextSelectableByKeyboard);
        QFont mono("DejaVu Sans Mono");
        mono.setStyleHint(QFont::Monospace);
        mono.setPointSizeF(9.5);
        setFont(mono);
    }

protected:
    void paintEvent(QPaintEvent* event) override;
    bool viewportEvent(QEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;

public:
    // Token tints of one visible block, painted under its text.
    void paintBlock(QPainter& painter, const QTextBlock& block, const QRectF& box);
    DocumentView::State* state_;
    friend class DocumentView;
};

struct DocumentView::State {
    Session* session = nullptr;
    Selection* selection = nullptr;
    DocumentView::Tint tint = DocumentView::Tint::RoutedLayers;
    ProfilePtr shown;
    DocumentText* text = nullptr;
    QComboBox* mode = nullptr;
    QLabel* legend = nullptr;
    // Per token: UTF-16 [begin, end) in the shown text.
    std::vector<int> begin, end;
    std::vector<int> routed_layers;  // per token
    double max_abs_delta = 0.0;

    qint64 tokenAtPosition(int pos) const {
        auto it = std::upper_bound(begin.begin(), begin.end(), pos);
        if (it == begin.begin()) return -1;
        const auto t = static_cast<qint64>(std::distance(begin.begin(), it) - 1);
        return pos < end[static_cast<std::size_t>(t)] ? t : -1;
    }

    // The tint of a token, or an invalid colour for none.
    QColor tintOf(qint64 t) const {
        const Profile& p = *shown;
        const auto i = static_cast<std::size_t>(t);
        switch (tint) {
            case DocumentView::Tint::RoutedLayers: {
                if (!p.model.is_l2a || p.num_layers == 0 || routed_layers[i] == 0) return {};
                QColor c = kRouted;
                c.setAlphaF(static_cast<float>(0.12 + 0.6 * routed_layers[i] / double(p.num_layers)));
                return c;
            }
            case DocumentView::Tint::RouterProbability: {
                const int layer = selection->layer() >= 0 ? selection->layer() : 0;
                if (layer >= p.num_layers) return {};
                const double z = p.router_logits[static_cast<std::size_t>(layer) * p.token_ids.size() + i];
                if (!std::isfinite(z)) return {};
                const double temp = p.model.sigmoid_temp > 0 ? p.model.sigmoid_temp : 1.0;
                const double prob = 1.0 / (1.0 + std::exp(-z / temp));
                QColor c = kRouted;
                c.setAlphaF(static_cast<float>(0.7 * prob));
                return c;
            }
            case DocumentView::Tint::LossChange: {
                const ProfilePtr& v = session->variant();
                if (!v || v->token_nll.size() != p.token_nll.size() || max_abs_delta <= 0) return {};
                const double d = static_cast<double>(v->token_nll[i]) - p.token_nll[i];
                if (!std::isfinite(d) || std::abs(d) < 1e-6) return {};
                QColor c = d > 0 ? kRouted : kBetter;
                c.setAlphaF(static_cast<float>(0.1 + 0.65 * std::min(1.0, std::abs(d) / max_abs_delta)));
                return c;
            }
        }
        return {};
    }
};

void DocumentText::paintBlock(QPainter& painter, const QTextBlock& block, const QRectF& box) {
    DocumentView::State& s = *state_;
    const int block_begin = block.position();
    const int block_end = block_begin + block.length();
    QTextLayout* layout = block.layout();
    auto it = std::upper_bound(s.begin.begin(), s.begin.end(), block_begin);
    if (it != s.begin.begin()) --it;
    const qint64 selected = s.selection->token();
    for (; it != s.begin.end() && *it < block_end; ++it) {
        const auto t = static_cast<qint64>(std::distance(s.begin.begin(), it));
        const int a = std::max(*it, block_begin) - block_begin;
        const int b = std::min(s.end[static_cast<std::size_t>(t)], block_end) - block_begin;
        if (b <= a) continue;
        const QColor colour = s.tintOf(t);
        const bool is_selected = t == selected;
        if (!colour.isValid() && !is_selected) continue;
        for (int n = 0; n < layout->lineCount(); ++n) {
            const QTextLine line = layout->lineAt(n);
            const int la = std::max(a, line.textStart());
            const int lb = std::min(b, line.textStart() + line.textLength());
            if (lb <= la) continue;
            const QRectF r(box.left() + line.cursorToX(la), box.top() + line.y(),
                           line.cursorToX(lb) - line.cursorToX(la), line.height());
            if (colour.isValid()) painter.fillRect(r, colour);
            if (is_selected) {
                painter.setPen(QPen(QColor(0x1d, 0x23, 0x30), 2));
                painter.drawRect(r.adjusted(0, 0, -1, -1));
            }
        }
    }
}

void DocumentText::paintEvent(QPaintEvent* event) {
    if (state_->shown) {
        QPainter painter(viewport());
        const QPointF offset = contentOffset();
        for (QTextBlock block = firstVisibleBlock(); block.isValid(); block = block.next()) {
            const QRectF box = blockBoundingGeometry(block).translated(offset);
            if (box.top() > viewport()->height()) break;
            if (block.isVisible()) paintBlock(painter, block, box);
        }
    }
    QPlainTextEdit::paintEvent(event);
}

bool DocumentText::viewportEvent(QEvent* event) {
    if (event->type() == QEvent::ToolTip && state_->shown) {
        auto* help = static_cast<QHelpEvent*>(event);
        const qint64 t = state_->tokenAtPosition(cursorForPosition(help->pos()).position());
        auto* view = static_cast<DocumentView*>(parentWidget());
        if (t >= 0) {
            QToolTip::showText(help->globalPos(), view->tokenToolTip(t), viewport());
        } else {
            QToolTip::hideText();
        }
        return true;
    }
    return QPlainTextEdit::viewportEvent(event);
}

void DocumentText::mouseReleaseEvent(QMouseEvent* event) {
    QPlainTextEdit::mouseReleaseEvent(event);
    if (event->button() == Qt::LeftButton && !textCursor().hasSelection() && state_->shown) {
        const qint64 t = state_->tokenAtPosition(cursorForPosition(event->position().toPoint()).position());
        if (t >= 0) state_->selection->setToken(t);
    }
}

DocumentView::DocumentView(Session* session, Selection* selection, QWidget* parent)
    : QWidget(parent), state_(std::make_unique<State>()) {
    State& s = *state_;
    s.session = session;
    s.selection = selection;
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->setSpacing(2);
    auto* header = new QHBoxLayout;
    header->setContentsMargins(4, 2, 4, 0);
    s.mode = new QComboBox(this);
    s.mode->addItem("Layers routed to global attention");
    s.mode->addItem("Router probability in the selected layer");
    s.mode->addItem("Loss change in the what-if variant");
    s.mode->setToolTip("What the tint of each token shows");
    s.legend = new QLabel(this);
    s.legend->setStyleSheet("color: #5a6372");
    header->addWidget(new QLabel("Tint:", this));
    header->addWidget(s.mode);
    header->addWidget(s.legend, 1);
    layout->addLayout(header);
    s.text = new DocumentText(state_.get());
    s.text->setParent(this);
    layout->addWidget(s.text, 1);

    connect(s.mode, &QComboBox::currentIndexChanged, this,
            [this](int index) { setTint(static_cast<Tint>(index)); });
    connect(session, &Session::baseChanged, this, [this] {
        State& st = *state_;
        st.shown = st.session->base();
        st.begin.clear();
        st.end.clear();
        st.routed_layers.clear();
        if (!st.shown) {
            st.text->clear();
            return;
        }
        const Profile& p = *st.shown;
        const std::vector<int> at = utf16_positions(p.document_text);
        const std::size_t T = p.token_ids.size();
        st.begin.resize(T);
        st.end.resize(T);
        for (std::size_t t = 0; t < T; ++t) {
            st.begin[t] = at[std::min<std::size_t>(p.token_begin[t], p.document_text.size())];
            st.end[t] = std::max(st.begin[t], at[std::min<std::size_t>(p.token_end[t], p.document_text.size())]);
        }
        st.routed_layers.assign(T, 0);
        for (std::int64_t l = 0; l < p.num_layers; ++l) {
            for (std::size_t t = 0; t < T; ++t) {
                st.routed_layers[t] += p.decisions[static_cast<std::size_t>(l) * T + t] != 0;
            }
        }
        st.text->setPlainText(QString::fromStdString(p.document_text));
        updateLegend();
    });
    connect(session, &Session::variantChanged, this, [this] {
        State& st = *state_;
        st.max_abs_delta = 0.0;
        const ProfilePtr& v = st.session->variant();
        if (st.shown && v && v->token_nll.size() == st.shown->token_nll.size()) {
            for (std::size_t t = 0; t < v->token_nll.size(); ++t) {
                const double d = static_cast<double>(v->token_nll[t]) - st.shown->token_nll[t];
                if (std::isfinite(d)) st.max_abs_delta = std::max(st.max_abs_delta, std::abs(d));
            }
        }
        updateLegend();
        st.text->viewport()->update();
    });
    connect(selection, &Selection::tokenChanged, this, [this](qint64 token) {
        State& st = *state_;
        if (token >= 0 && static_cast<std::size_t>(token) < st.begin.size()) {
            QTextCursor cursor = st.text->textCursor();
            cursor.setPosition(st.begin[static_cast<std::size_t>(token)]);
            st.text->setTextCursor(cursor);
            st.text->ensureCursorVisible();
        }
        st.text->viewport()->update();
    });
    connect(selection, &Selection::layerChanged, this, [this] {
        updateLegend();
        state_->text->viewport()->update();
    });
}

DocumentView::~DocumentView() = default;

DocumentView::Tint DocumentView::tint() const { return state_->tint; }

void DocumentView::setTint(Tint tint) {
    state_->tint = tint;
    if (state_->mode->currentIndex() != static_cast<int>(tint)) {
        state_->mode->setCurrentIndex(static_cast<int>(tint));
    }
    updateLegend();
    state_->text->viewport()->update();
}

void DocumentView::updateLegend() {
    State& s = *state_;
    QString text;
    switch (s.tint) {
        case Tint::RoutedLayers:
            text = s.shown && s.shown->model.is_l2a
                       ? QString("darker: global attention in more of the %1 layers").arg(s.shown->num_layers)
                       : QString("a plain model: every token runs global attention");
            break;
        case Tint::RouterProbability:
            text = QString("darker: higher router probability in layer %1")
                       .arg(s.selection->layer() >= 0 ? s.selection->layer() : 0);
            break;
        case Tint::LossChange:
            text = s.session->variant() ? QString("red: higher loss in the variant, green: lower "
                                                  "(scale: %1 nats)")
                                              .arg(s.max_abs_delta, 0, 'f', 3)
                                        : QString("no what-if variant yet: prune a layer or change "
                                                  "the routing");
            break;
    }
    s.legend->setText(text);
}

qint64 DocumentView::tokenAt(const QPoint& viewport_pos) const {
    if (!state_->shown) return -1;
    return state_->tokenAtPosition(state_->text->cursorForPosition(viewport_pos).position());
}

QRect DocumentView::selectedTokenRect() const {
    const State& s = *state_;
    const qint64 t = s.selection->token();
    if (!s.shown || t < 0 || static_cast<std::size_t>(t) >= s.begin.size()) return {};
    QTextCursor a = s.text->textCursor();
    a.setPosition(s.begin[static_cast<std::size_t>(t)]);
    const QRect first = s.text->cursorRect(a);
    a.setPosition(s.end[static_cast<std::size_t>(t)]);
    const QRect last = s.text->cursorRect(a);
    const QRect r = first.united(last);
    return r.intersects(s.text->viewport()->rect()) ? r : QRect();
}

QString DocumentView::tokenToolTip(qint64 token) const {
    const State& s = *state_;
    if (!s.shown || token < 0 || token >= s.shown->num_tokens()) return {};
    const Profile& p = *s.shown;
    const auto t = static_cast<std::size_t>(token);
    QString piece = QString::fromStdString(
        p.document_text.substr(p.token_begin[t], p.token_end[t] - p.token_begin[t]));
    piece.replace('\n', "\\n").replace('\t', "\\t");
    QString tip = QString("<b>token %1</b> &nbsp;\"%2\" &nbsp;(id %3)<br>")
                      .arg(token)
                      .arg(piece.toHtmlEscaped())
                      .arg(p.token_ids[t]);
    if (p.model.is_l2a) {
        tip += QString("global attention in %1 of %2 layers<br>").arg(s.routed_layers[t]).arg(p.num_layers);
        QString row;
        const double temp = p.model.sigmoid_temp > 0 ? p.model.sigmoid_temp : 1.0;
        for (std::int64_t l = 0; l < p.num_layers; ++l) {
            const auto i = static_cast<std::size_t>(l) * p.token_ids.size() + t;
            const double z = p.router_logits[i];
            const double prob = std::isfinite(z) ? 1.0 / (1.0 + std::exp(-z / temp)) : 0.0;
            row += QString("%1%2:%3%4 ")
                       .arg(p.decisions[i] ? "<b>" : "")
                       .arg(l)
                       .arg(prob, 0, 'f', 2)
                       .arg(p.decisions[i] ? "</b>" : "");
        }
        tip += "<span style='font-family:monospace'>layer:p " + row + "</span><br>";
    }
    if (std::isfinite(p.token_nll[t])) tip += QString("NLL %1").arg(p.token_nll[t], 0, 'f', 4);
    const ProfilePtr& v = s.session->variant();
    if (v && t < v->token_nll.size() && std::isfinite(v->token_nll[t]) && std::isfinite(p.token_nll[t])) {
        tip += QString(", what-if Δ %1").arg(static_cast<double>(v->token_nll[t]) - p.token_nll[t], 0, 'f', 4);
    }
    return tip;
}

}  // namespace l2a::ui
