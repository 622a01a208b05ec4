// The document view: a read-only QPlainTextEdit whose visible lines get their token tints
// painted under the text at paint time, so a 128K-token document costs no per-token formats.
// The UTF-8 text is decoded here, once per profile, so that every byte offset of the profile
// has a known UTF-16 position in the shown text.
#include "l2a/ui/document_view.h"

#include <QAction>
#include <QComboBox>
#include <QContextMenuEvent>
#include <QEvent>
#include <QHBoxLayout>
#include <QHelpEvent>
#include <QLabel>
#include <QLinearGradient>
#include <QMenu>
#include <QMouseEvent>
#include <QPainter>
#include <QPlainTextEdit>
#include <QScrollBar>
#include <QTextBlock>
#include <QTextLayout>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <memory>
#include <span>
#include <unordered_set>
#include <vector>

#include "l2a/engine/oracle.h"
#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"
#include "l2a/ui/units.h"

namespace l2a::ui {
namespace {

const QColor kRouted(0xc0, 0x39, 0x2b);
const QColor kBetter(0x2e, 0x8b, 0x57);
const QColor kSelectedOutline(0x1d, 0x23, 0x30);
// The attention lens: violet, apart from the routing's red and the loss change's green.
const QColor kLens(0x6a, 0x3d, 0x9a);
// Tokens the router missed (oracle): an orange underline.
const QColor kMissed(0xe6, 0x7e, 0x22);
// Weights below this share of the largest get no strip: most keys hold almost nothing.
constexpr double kLensMinStrength = 0.02;

// The shown text and, for every byte offset of the UTF-8 source (and its end), the UTF-16
// position of the character holding that byte. Invalid bytes become U+FFFD one by one, so a
// damaged text still maps every offset.
struct DecodedText {
    QString text;
    std::vector<int> at;  // [bytes + 1]
};

DecodedText decode_utf8(const std::string& src) {
    DecodedText out;
    out.text.reserve(static_cast<qsizetype>(src.size()));
    out.at.assign(src.size() + 1, 0);
    std::size_t i = 0;
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(src[k]); };
    while (i < src.size()) {
        const unsigned char c = byte(i);
        std::size_t len = c < 0x80             ? 1
                          : (c & 0xE0) == 0xC0 ? 2
                          : (c & 0xF0) == 0xE0 ? 3
                          : (c & 0xF8) == 0xF0 ? 4
                                               : 0;
        char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
        bool ok = len > 0 && i + len <= src.size();
        for (std::size_t k = 1; ok && k < len; ++k) {
            ok = (byte(i + k) & 0xC0) == 0x80;
            cp = (cp << 6) | (byte(i + k) & 0x3F);
        }
        static constexpr char32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
        ok = ok && cp >= kMin[len] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
        if (!ok) {
            len = 1;
            cp = 0xFFFD;
        }
        const auto pos = static_cast<int>(out.text.size());
        for (std::size_t k = 0; k < len; ++k) out.at[i + k] = pos;
        const char32_t one[1] = {cp};
        out.text += QString::fromUcs4(one, 1);
        i += len;
    }
    out.at[src.size()] = static_cast<int>(out.text.size());
    return out;
}

double router_probability(double logit, double temp) {
    return 1.0 / (1.0 + std::exp(-logit / (temp > 0 ? temp : 1.0)));
}

// A colour ramp with its two end labels: what the tint's lightest and darkest mean.
class LegendRamp : public QWidget {
public:
    explicit LegendRamp(QWidget* parent) : QWidget(parent) { setFixedSize(90, 12); }
    void setColours(QColor low, QColor high, QColor mid = {}) {
        low_ = low;
        high_ = high;
        mid_ = mid;
        update();
    }

protected:
    void paintEvent(QPaintEvent*) override {
        QPainter painter(this);
        QLinearGradient ramp(0, 0, width(), 0);
        ramp.setColorAt(0, low_);
        if (mid_.isValid()) ramp.setColorAt(0.5, mid_);
        ramp.setColorAt(1, high_);
        painter.fillRect(rect(), ramp);
        painter.setPen(QColor(0x9a, 0xa1, 0xab));
        painter.drawRect(rect().adjusted(0, 0, -1, -1));
    }

private:
    QColor low_, high_, mid_;
};

}  // namespace

class DocumentText : public QPlainTextEdit {
public:
    DocumentText(DocumentView* view, DocumentView::State* state)
        : QPlainTextEdit(view), view_(view), state_(state) {
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

    // UTF-16 position of a viewport point, -1 outside the text.
    int positionAt(const QPoint& pos) const;
    // Where a block is drawn, in viewport coordinates.
    QRectF blockBox(const QTextBlock& block) const {
        return blockBoundingGeometry(block).translated(contentOffset());
    }

protected:
    void paintEvent(QPaintEvent* event) override;
    bool viewportEvent(QEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;
    void contextMenuEvent(QContextMenuEvent* event) override;

private:
    void paintBlock(QPainter& painter, const QTextBlock& block, const QRectF& box,
                    const QRect& clip);

    DocumentView* view_;
    DocumentView::State* state_;
};

struct DocumentView::State {
    Session* session = nullptr;
    Selection* selection = nullptr;
    DocumentView::Tint tint = DocumentView::Tint::RoutedLayers;
    ProfilePtr shown;
    DocumentText* text = nullptr;
    QComboBox* mode = nullptr;
    LegendRamp* ramp = nullptr;
    QLabel* legend = nullptr;
    // Per token: UTF-16 [begin, end) in the shown text. A token that starts or ends inside a
    // character (byte-level BPE splits some) covers the whole character, so no token vanishes.
    std::vector<int> begin, end;
    std::vector<int> routed_layers;  // per token
    bool has_decisions = false;      // decisions hold [L, T]
    bool has_logits = false;         // router_logits hold [L, T]
    double max_abs_delta = 0.0;
    bool clicked_here = false;  // the selection comes from a click in this view
    QList<QAction*> context_actions;
    // The lens of the session's explanation: its head-mean weights over tokens 0..lens_token.
    ExplanationPtr lens;
    double lens_max = 0.0;
    // The oracle's missed tokens of the selected layer (empty without the oracle).
    std::unordered_set<std::int64_t> missed;
    int missed_layer = -1;
    QLabel* lens_legend = nullptr;
    LegendRamp* lens_ramp = nullptr;
    QWidget* lens_row = nullptr;

    double lensStrength(std::size_t t) const {
        if (!lens || lens_max <= 0 || t >= lens->lens.mean_weights.size()) return 0.0;
        const double s = lens->lens.mean_weights[t] / lens_max;
        return s >= kLensMinStrength ? s : 0.0;
    }

    std::size_t numTokens() const { return begin.size(); }

    qint64 tokenAtPosition(int pos) const {
        if (pos < 0) return -1;
        // The last token starting at or before pos; tokens are in text order.
        auto it = std::upper_bound(begin.begin(), begin.end(), pos);
        while (it != begin.begin()) {
            --it;
            const auto t = static_cast<std::size_t>(std::distance(begin.begin(), it));
            if (pos < end[t]) return static_cast<qint64>(t);
            if (t == 0 || begin[t - 1] != begin[t]) break;  // an empty token sharing a start
        }
        return -1;
    }

    bool hasLossChange() const {
        const ProfilePtr& v = session->variant();
        return shown && v && v->token_nll.size() == shown->token_nll.size() && max_abs_delta > 0;
    }

    int probabilityLayer() const { return selection->layer() >= 0 ? selection->layer() : 0; }

    // The tint of a token, or an invalid colour for none.
    QColor tintOf(std::size_t t) const {
        const Profile& p = *shown;
        const std::size_t T = numTokens();
        switch (tint) {
            case DocumentView::Tint::RoutedLayers: {
                if (!p.model.is_l2a || !has_decisions || routed_layers[t] == 0) return {};
                QColor c = kRouted;
                c.setAlphaF(static_cast<float>(0.12 + 0.6 * routed_layers[t] /
                                                          static_cast<double>(p.num_layers)));
                return c;
            }
            case DocumentView::Tint::RouterProbability: {
                const int layer = probabilityLayer();
                if (!has_logits || layer >= p.num_layers) return {};
                const double z = p.router_logits[static_cast<std::size_t>(layer) * T + t];
                if (!std::isfinite(z)) return {};  // a plain model's layers have no router
                QColor c = kRouted;
                c.setAlphaF(static_cast<float>(0.7 * router_probability(z, p.model.sigmoid_temp)));
                return c;
            }
            case DocumentView::Tint::LossChange: {
                if (!hasLossChange()) return {};
                const double d =
                    static_cast<double>(session->variant()->token_nll[t]) - p.token_nll[t];
                if (!std::isfinite(d) || std::abs(d) < 1e-6) return {};
                QColor c = d > 0 ? kRouted : kBetter;
                c.setAlphaF(
                    static_cast<float>(0.1 + 0.65 * std::min(1.0, std::abs(d) / max_abs_delta)));
                return c;
            }
        }
        return {};
    }
};

int DocumentText::positionAt(const QPoint& pos) const {
    // cursorForPosition snaps to the nearest character; a point past a line's end or below the
    // last line is not on any token.
    const QTextCursor cursor = cursorForPosition(pos);
    const QTextBlock block = cursor.block();
    if (!block.isValid() || !block.layout()) return -1;
    const QRectF box = blockBoundingGeometry(block).translated(contentOffset());
    const QPointF local = QPointF(pos) - box.topLeft();
    const QTextLayout* layout = block.layout();
    for (int n = 0; n < layout->lineCount(); ++n) {
        const QTextLine line = layout->lineAt(n);
        if (local.y() < line.y() || local.y() >= line.y() + line.height()) continue;
        if (local.x() < line.x() || local.x() >= line.x() + line.naturalTextWidth()) return -1;
        const int in_block = line.xToCursor(local.x(), QTextLine::CursorOnCharacter);
        return block.position() + in_block;
    }
    return -1;
}

void DocumentText::paintBlock(QPainter& painter, const QTextBlock& block, const QRectF& box,
                              const QRect& clip) {
    DocumentView::State& s = *state_;
    const QTextLayout* layout = block.layout();
    const qint64 selected = s.selection->token();
    // Only the lines in the clip: a document without newlines is one block of many lines.
    for (int n = 0; n < layout->lineCount(); ++n) {
        const QTextLine line = layout->lineAt(n);
        const double top = box.top() + line.y();
        if (top > clip.bottom()) break;
        if (top + line.height() < clip.top()) continue;
        const int line_begin = block.position() + line.textStart();
        const int line_end = line_begin + line.textLength();
        auto it = std::upper_bound(s.begin.begin(), s.begin.end(), line_begin);
        while (it != s.begin.begin() &&
               s.end[static_cast<std::size_t>(std::distance(s.begin.begin(), it)) - 1] >
                   line_begin) {
            --it;  // tokens that started on an earlier line and reach into this one
        }
        for (; it != s.begin.end() && *it < line_end; ++it) {
            const auto t = static_cast<std::size_t>(std::distance(s.begin.begin(), it));
            const int a = std::max(*it, line_begin) - block.position();
            const int b = std::min(s.end[t], line_end) - block.position();
            if (b <= a) continue;
            const QColor colour = s.tintOf(t);
            const bool is_selected = static_cast<qint64>(t) == selected;
            const double strength = s.lensStrength(t);
            const bool explained = s.lens && static_cast<std::int64_t>(t) == s.lens->lens.token;
            const bool missed = !s.missed.empty() && s.missed.count(static_cast<std::int64_t>(t));
            if (!colour.isValid() && !is_selected && strength <= 0 && !explained && !missed)
                continue;
            const QRectF r(box.left() + line.cursorToX(a), top,
                           line.cursorToX(b) - line.cursorToX(a), line.height());
            if (colour.isValid()) painter.fillRect(r, colour);
            if (strength > 0) {
                // A strip over the text, so that the routing or loss tint stays readable.
                QColor c = kLens;
                c.setAlphaF(static_cast<float>(0.2 + 0.8 * strength));
                painter.fillRect(QRectF(r.left(), r.top(), r.width(),
                                        std::max(3.0, std::round(r.height() * 0.3))),
                                 c);
            }
            if (missed) {
                painter.fillRect(QRectF(r.left(), r.bottom() - 2, r.width(), 2), kMissed);
            }
            if (explained) {
                painter.setPen(QPen(kLens, 2, Qt::DashLine));
                painter.drawRect(r.adjusted(1, 1, -1, -1));
            }
            if (is_selected) {
                painter.setPen(QPen(kSelectedOutline, 2));
                painter.drawRect(r.adjusted(1, 1, -1, -1));
            }
        }
    }
}

void DocumentText::paintEvent(QPaintEvent* event) {
    if (state_->shown && !state_->begin.empty()) {
        QPainter painter(viewport());
        const QPointF offset = contentOffset();
        const QRect clip = event->rect();
        for (QTextBlock block = firstVisibleBlock(); block.isValid(); block = block.next()) {
            const QRectF box = blockBoundingGeometry(block).translated(offset);
            if (box.top() > clip.bottom()) break;
            if (block.isVisible() && block.layout()) paintBlock(painter, block, box, clip);
        }
    }
    QPlainTextEdit::paintEvent(event);
}

bool DocumentText::viewportEvent(QEvent* event) {
    if (event->type() == QEvent::ToolTip) {
        auto* help = static_cast<QHelpEvent*>(event);
        const qint64 t = view_->tokenAt(help->pos());
        if (t >= 0) {
            QToolTip::showText(help->globalPos(), view_->tokenToolTip(t), viewport());
        } else {
            QToolTip::hideText();
        }
        return true;
    }
    return QPlainTextEdit::viewportEvent(event);
}

void DocumentText::mouseReleaseEvent(QMouseEvent* event) {
    QPlainTextEdit::mouseReleaseEvent(event);
    // A drag selects text (for copying); a plain click selects the token.
    if (event->button() == Qt::LeftButton && !textCursor().hasSelection()) {
        const qint64 t = view_->tokenAt(event->position().toPoint());
        if (t >= 0) {
            // The token is under the mouse already: the text stays where it is.
            state_->clicked_here = true;
            state_->selection->setToken(t);
            state_->clicked_here = false;
        }
    }
}

void DocumentText::contextMenuEvent(QContextMenuEvent* event) {
    std::unique_ptr<QMenu> menu(createStandardContextMenu(event->pos()));
    if (!state_->context_actions.isEmpty()) {
        // The token under the mouse becomes the selection the actions work on.
        const qint64 t = view_->tokenAt(event->pos());
        if (t >= 0) {
            state_->clicked_here = true;
            state_->selection->setToken(t);
            state_->clicked_here = false;
        }
        QAction* first = menu->actions().value(0);
        menu->insertActions(first, state_->context_actions);
        menu->insertSeparator(first);
    }
    menu->exec(event->globalPos());
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
    s.ramp = new LegendRamp(this);
    s.legend = new QLabel(this);
    s.legend->setStyleSheet("color: #5a6372");
    // Wraps rather than widening the pane: the layer table beside it needs the room.
    s.legend->setWordWrap(true);
    header->addWidget(new QLabel("Tint:", this));
    header->addWidget(s.mode);
    header->addSpacing(8);
    header->addWidget(s.ramp);
    header->addWidget(s.legend, 1);
    layout->addLayout(header);
    // The lens's and the oracle's legend line, under the tint's, while there is one.
    s.lens_row = new QWidget(this);
    auto* lens_layout = new QHBoxLayout(s.lens_row);
    lens_layout->setContentsMargins(4, 0, 4, 0);
    s.lens_ramp = new LegendRamp(s.lens_row);
    s.lens_legend = new QLabel(s.lens_row);
    s.lens_legend->setObjectName("lensLegend");
    s.lens_legend->setStyleSheet("color: #5a6372");
    s.lens_legend->setWordWrap(true);
    lens_layout->addWidget(s.lens_ramp);
    lens_layout->addWidget(s.lens_legend, 1);
    s.lens_row->setVisible(false);
    layout->addWidget(s.lens_row);
    s.text = new DocumentText(this, state_.get());
    layout->addWidget(s.text, 1);

    connect(s.mode, &QComboBox::currentIndexChanged, this,
            [this](int index) { setTint(static_cast<Tint>(index)); });
    auto refresh_variant = [this] {
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
    };
    auto load_base = [this, refresh_variant] {
        State& st = *state_;
        st.shown = st.session->base();
        st.begin.clear();
        st.end.clear();
        st.routed_layers.clear();
        st.has_decisions = st.has_logits = false;
        if (!st.shown) {
            st.text->clear();
            refresh_variant();
            return;
        }
        const Profile& p = *st.shown;
        DecodedText decoded = decode_utf8(p.document_text);
        const std::size_t T = p.token_ids.size();
        const std::size_t bytes = p.document_text.size();
        const std::size_t spans = std::min({T, p.token_begin.size(), p.token_end.size()});
        st.begin.assign(T, decoded.at[bytes]);
        st.end.assign(T, decoded.at[bytes]);
        int previous = 0;
        for (std::size_t t = 0; t < spans; ++t) {
            const std::size_t b = std::min<std::size_t>(p.token_begin[t], bytes);
            const std::size_t e = std::clamp<std::size_t>(p.token_end[t], b, bytes);
            // Round the end up to the next character boundary (a token ending inside one).
            int end = decoded.at[e];
            if (e > b && e < bytes && decoded.at[e - 1] == decoded.at[e]) ++end;
            // Keep the starts sorted even for odd spans, for the binary searches.
            st.begin[t] = std::max(previous, decoded.at[b]);
            st.end[t] = std::max(st.begin[t], std::min(end, static_cast<int>(decoded.text.size())));
            previous = st.begin[t];
        }
        const auto L = static_cast<std::size_t>(std::max<std::int64_t>(p.num_layers, 0));
        st.has_decisions = L > 0 && p.decisions.size() == L * T;
        st.has_logits = L > 0 && p.router_logits.size() == L * T;
        st.routed_layers.assign(T, 0);
        if (st.has_decisions) {
            for (std::size_t l = 0; l < L; ++l) {
                for (std::size_t t = 0; t < T; ++t)
                    st.routed_layers[t] += p.decisions[l * T + t] != 0;
            }
        }
        st.text->setPlainText(decoded.text);
        refresh_variant();
    };
    // The oracle's missed tokens of the selected layer, and the lens of the explanation.
    auto refresh_lens = [this] {
        State& st = *state_;
        st.lens = st.session->explanation();
        st.lens_max = 0.0;
        if (st.lens) {
            for (float w : st.lens->lens.mean_weights)
                st.lens_max = std::max(st.lens_max, static_cast<double>(w));
        }
        st.missed.clear();
        st.missed_layer = -1;
        const ProfilePtr& p = st.shown;
        const std::size_t T = st.numTokens();
        const auto L = p ? static_cast<std::size_t>(std::max<std::int64_t>(p->num_layers, 0)) : 0;
        if (p && L > 0 && p->distant_mass.size() == L * T && p->router_logits.size() == L * T &&
            p->decisions.size() == L * T) {
            st.missed_layer = std::clamp(st.selection->layer(), 0, static_cast<int>(L) - 1);
            const std::size_t row = static_cast<std::size_t>(st.missed_layer) * T;
            const LayerOracle o =
                score_layer({p->distant_mass.data() + row, T}, {p->router_logits.data() + row, T},
                            {p->decisions.data() + row, T}, p->oracle_min_mass);
            st.missed.insert(o.missed.begin(), o.missed.end());
        }
        updateLensLegend();
        st.text->viewport()->update();
    };
    connect(session, &Session::baseChanged, this, load_base);
    connect(session, &Session::baseChanged, this, refresh_lens);
    connect(session, &Session::explanationChanged, this, refresh_lens);
    connect(selection, &Selection::layerChanged, this, refresh_lens);
    connect(session, &Session::variantChanged, this, refresh_variant);
    auto show_token = [this](qint64 token) {
        State& st = *state_;
        if (token >= 0 && static_cast<std::size_t>(token) < st.numTokens() && !st.clicked_here) {
            // The token's line in the middle of the pane, its text selected by nothing.
            QTextCursor cursor = st.text->textCursor();
            cursor.setPosition(st.begin[static_cast<std::size_t>(token)]);
            st.text->setTextCursor(cursor);
            st.text->centerCursor();
        }
        st.text->viewport()->update();
    };
    connect(selection, &Selection::tokenChanged, this, show_token);
    connect(selection, &Selection::layerChanged, this, [this] {
        updateLegend();
        state_->text->viewport()->update();
    });
    // A view made after the run shows it at once.
    load_base();
    refresh_lens();
    show_token(selection->token());
}

void DocumentView::addContextAction(QAction* action) { state_->context_actions << action; }

double DocumentView::lensStrength(qint64 token) const {
    if (token < 0) return 0.0;
    return state_->lensStrength(static_cast<std::size_t>(token));
}

bool DocumentView::missedMarked(qint64 token) const { return state_->missed.count(token) > 0; }

void DocumentView::updateLensLegend() {
    State& s = *state_;
    QStringList parts;
    if (s.lens && s.lens_max > 0) {
        const AttentionLens& lens = s.lens->lens;
        parts << QString(
                     "<span style='color:#6a3d9a'>strip</span>: attention of token %1 (dashed) "
                     "in layer %2, 0 → %3")
                     .arg(lens.token)
                     .arg(lens.layer)
                     .arg(s.lens_max, 0, 'f', 3);
    }
    if (s.missed_layer >= 0) {
        parts << QString("<span style='color:#e67e22'>underlined</span>: missed in layer %1")
                     .arg(s.missed_layer);
    }
    QColor none = kLens;
    none.setAlphaF(0.2f);
    s.lens_ramp->setColours(none, kLens);
    s.lens_ramp->setVisible(s.lens && s.lens_max > 0);
    s.lens_legend->setText(parts.join(" &nbsp;·&nbsp; "));
    s.lens_legend->setToolTip(
        "Strip: the global attention of the explained token over the tokens before it, mean over "
        "heads (Run > Explain Token, X).\nUnderlined: the local tokens with the highest "
        "distant mass in the selected layer, which the router kept local (Run > Routing "
        "Oracle).");
    s.lens_row->setVisible(!parts.isEmpty());
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
    QColor none = kRouted;
    none.setAlphaF(0.05f);
    QColor full = kRouted;
    full.setAlphaF(0.72f);
    QColor mid;  // loss change: no change in the middle
    QString text;
    QString tip;
    bool ramp = true;
    switch (s.tint) {
        case Tint::RoutedLayers:
            if (s.shown && s.shown->model.is_l2a && s.has_decisions) {
                text = QString("0 → %1 layers with global attention").arg(s.shown->num_layers);
                tip =
                    "A token's tint darkens with the number of layers whose router sent it to "
                    "global attention";
            } else {
                text = s.shown ? "a plain model: every token runs global attention" : "no run";
                ramp = false;
            }
            break;
        case Tint::RouterProbability:
            if (s.has_logits) {
                text = QString("router probability 0 → 1 in layer %1").arg(s.probabilityLayer());
                tip =
                    "sigmoid(router logit / temperature) of the selected layer (select a layer "
                    "in the Layers view or the routing map)";
            } else {
                text = s.shown ? "no router probabilities in this run" : "no run";
                ramp = false;
            }
            break;
        case Tint::LossChange:
            if (s.hasLossChange()) {
                none = kBetter;
                none.setAlphaF(0.75f);
                mid = palette().color(QPalette::Base);
                text = QString("lower ← loss change → higher (±%1 nats)")
                           .arg(s.max_abs_delta, 0, 'f', 3);
                tip =
                    "Per-token NLL of the what-if variant minus the base: green better, red "
                    "worse";
            } else {
                text = s.session->variant() ? "the variant's loss equals the base's"
                                            : "no what-if variant yet: prune a layer or change "
                                              "the routing";
                ramp = false;
            }
            break;
    }
    s.ramp->setColours(none, full, mid);
    s.ramp->setVisible(ramp);
    s.legend->setText(text);
    s.legend->setToolTip(tip);
}

qint64 DocumentView::tokenAt(const QPoint& viewport_pos) const {
    if (!state_->shown) return -1;
    return state_->tokenAtPosition(state_->text->positionAt(viewport_pos));
}

QRect DocumentView::selectedTokenRect() const {
    const State& s = *state_;
    const qint64 t = s.selection->token();
    if (!s.shown || t < 0 || static_cast<std::size_t>(t) >= s.numTokens()) return {};
    const auto i = static_cast<std::size_t>(t);
    if (s.end[i] <= s.begin[i]) return {};
    const QTextBlock block = s.text->document()->findBlock(s.begin[i]);
    if (!block.isValid() || !block.layout()) return {};
    const QRectF box = s.text->blockBox(block);
    const QTextLayout* layout = block.layout();
    // The token's first line: a token wrapped over two lines is marked where it starts.
    const int a = s.begin[i] - block.position();
    const QTextLine line = layout->lineForTextPosition(a);
    if (!line.isValid()) return {};
    const int b = std::min(s.end[i] - block.position(), line.textStart() + line.textLength());
    const QRectF r(box.left() + line.cursorToX(a), box.top() + line.y(),
                   std::max(1.0, line.cursorToX(b) - line.cursorToX(a)), line.height());
    const QRect shown = r.toAlignedRect();
    return shown.intersects(s.text->viewport()->rect()) ? shown : QRect();
}

QString DocumentView::tokenToolTip(qint64 token) const {
    const State& s = *state_;
    if (!s.shown || token < 0 || static_cast<std::size_t>(token) >= s.numTokens()) return {};
    const Profile& p = *s.shown;
    const auto t = static_cast<std::size_t>(token);
    const std::size_t T = s.numTokens();
    QString piece;
    if (t < p.token_begin.size() && t < p.token_end.size()) {
        const std::size_t b = std::min<std::size_t>(p.token_begin[t], p.document_text.size());
        const std::size_t e = std::clamp<std::size_t>(p.token_end[t], b, p.document_text.size());
        const std::string bytes = p.document_text.substr(b, e - b);
        piece = QString::fromUtf8(bytes.data(), static_cast<qsizetype>(bytes.size()));
        if (piece.contains(QChar(0xFFFD))) {
            // Part of a character: show its bytes.
            piece.clear();
            for (unsigned char c : bytes) piece += QString("\\x%1").arg(c, 2, 16, QChar('0'));
        }
    }
    piece.replace('\n', "\\n").replace('\t', "\\t").replace('\r', "\\r");
    QString tip = QString("<b>token %1</b> &nbsp;\"%2\" &nbsp;(id %3)<br>")
                      .arg(token)
                      .arg(piece.toHtmlEscaped())
                      .arg(p.token_ids[t]);
    if (p.model.is_l2a && s.has_decisions) {
        tip += QString("global attention in <b>%1 of %2 layers</b><br>")
                   .arg(s.routed_layers[t])
                   .arg(p.num_layers);
        // layer:probability, routed layers in bold; eight a line keeps 64 layers readable.
        QString rows;
        for (std::int64_t l = 0; l < p.num_layers; ++l) {
            const auto i = static_cast<std::size_t>(l) * T + t;
            const double z = s.has_logits ? p.router_logits[i] : std::nan("");
            const QString prob =
                std::isfinite(z)
                    ? QString::number(router_probability(z, p.model.sigmoid_temp), 'f', 2)
                    : QString(p.decisions[i] ? "G" : "-");
            const QString cell = QString("%1:%2").arg(l, 2).arg(prob).toHtmlEscaped();
            rows += p.decisions[i] ? "<b style='color:#c0392b'>" + cell + "</b>" : cell;
            rows += (l % 8 == 7 || l + 1 == p.num_layers) ? "<br>" : "&nbsp;";
        }
        tip += "<span style='font-family:monospace; white-space:pre'>" + rows + "</span>";
    } else if (!p.model.is_l2a) {
        tip += "a plain model: global attention in every layer<br>";
    }
    if (t < p.token_nll.size() && std::isfinite(p.token_nll[t])) {
        tip += QString("NLL %1 nats").arg(p.token_nll[t], 0, 'f', 4);
        const ProfilePtr& v = s.session->variant();
        if (v && v->token_nll.size() == p.token_nll.size() && std::isfinite(v->token_nll[t])) {
            const double d = static_cast<double>(v->token_nll[t]) - p.token_nll[t];
            tip += QString(", what-if %1 (Δ %2)")
                       .arg(v->token_nll[t], 0, 'f', 4)
                       .arg(signed_number(d, 4));
        }
    }
    return tip;
}

}  // namespace l2a::ui
