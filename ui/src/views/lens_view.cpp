// The attention lens panel: small tables of tokens filled from the session's explanation and,
// once the routing oracle has run, from the base's distant masses (scored with oracle.h each
// time the layer or the base changes: cheap, one pass over T tokens).
#include "l2a/ui/lens_view.h"

#include <QHeaderView>
#include <QLabel>
#include <QPainter>
#include <QPainterPath>
#include <QTableWidget>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <span>
#include <vector>

#include "l2a/engine/lens.h"
#include "l2a/engine/oracle.h"
#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"
#include "l2a/ui/units.h"

namespace l2a::ui {
namespace {

constexpr int kTopSources = 10;
const QColor kLens(0x6a, 0x3d, 0x9a);
const QColor kRouted(0xc0, 0x39, 0x2b);
const QColor kLocal(0x5a, 0x6e, 0x8c);

// A token's text on one line, as the tables show it ("" without text).
QString token_text(const Profile& p, std::int64_t t) {
    const auto i = static_cast<std::size_t>(t);
    if (t < 0 || i >= p.token_begin.size() || i >= p.token_end.size()) return {};
    const std::size_t b = std::min<std::size_t>(p.token_begin[i], p.document_text.size());
    const std::size_t e = std::clamp<std::size_t>(p.token_end[i], b, p.document_text.size());
    QString text = QString::fromUtf8(p.document_text.data() + b, static_cast<qsizetype>(e - b));
    text.replace('\n', "\\n").replace('\t', "\\t").replace('\r', "\\r");
    return text;
}

QTableWidget* token_table(const QStringList& headers, QWidget* parent) {
    auto* table = new QTableWidget(0, static_cast<int>(headers.size()), parent);
    table->setHorizontalHeaderLabels(headers);
    table->verticalHeader()->setVisible(false);
    table->verticalHeader()->setDefaultSectionSize(20);
    table->horizontalHeader()->setStretchLastSection(true);
    table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table->setSelectionBehavior(QAbstractItemView::SelectRows);
    table->setSelectionMode(QAbstractItemView::SingleSelection);
    table->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    table->setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    return table;
}

// The table as tall as its rows, so that the panel scrolls as a whole.
void fit_height(QTableWidget* table) {
    int h = table->horizontalHeader()->sizeHint().height() + 2 * table->frameWidth();
    for (int r = 0; r < table->rowCount(); ++r) h += table->rowHeight(r);
    table->setFixedHeight(h);
}

QTableWidgetItem* cell(const QString& text, bool right = true) {
    auto* item = new QTableWidgetItem(text);
    if (right) item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    return item;
}

// Router logit (across) against distant mass (up) of every token of one layer: local tokens in
// grey-blue, routed ones in red, drawn small and translucent so that dense regions read darker;
// a dashed line at the oracle's min_mass.
class OracleScatter : public QWidget {
public:
    explicit OracleScatter(QWidget* parent) : QWidget(parent) {
        setMinimumHeight(150);
        setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
        setObjectName("oracleScatter");
    }
    void setPoints(std::vector<QPointF> local, std::vector<QPointF> routed, double min_mass) {
        local_ = std::move(local);
        routed_ = std::move(routed);
        min_mass_ = min_mass;
        lo_ = hi_ = 0.0;
        bool first = true;
        for (const auto* points : {&local_, &routed_}) {
            for (const QPointF& p : *points) {
                lo_ = first ? p.x() : std::min(lo_, p.x());
                hi_ = first ? p.x() : std::max(hi_, p.x());
                first = false;
            }
        }
        if (hi_ <= lo_) hi_ = lo_ + 1.0;
        update();
    }
    QSize sizeHint() const override { return {300, 150}; }

protected:
    void paintEvent(QPaintEvent*) override {
        QPainter painter(this);
        painter.fillRect(rect(), palette().color(QPalette::Base));
        const QFontMetrics fm = fontMetrics();
        const QRectF plot = QRectF(rect()).adjusted(fm.height() + 6, 4, -6, -fm.height() - 4);
        painter.setPen(QColor(0x9a, 0xa1, 0xab));
        painter.drawRect(plot);
        const auto at = [&](const QPointF& p) {
            return QPointF(plot.left() + (p.x() - lo_) / (hi_ - lo_) * plot.width(),
                           plot.bottom() - std::clamp(p.y(), 0.0, 1.0) * plot.height());
        };
        painter.setPen(QPen(QColor(0x5a, 0x63, 0x72), 1, Qt::DashLine));
        const double y = at({lo_, min_mass_}).y();
        painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y));
        painter.setPen(Qt::NoPen);
        for (const auto& [points, colour] :
             {std::pair{&local_, kLocal}, std::pair{&routed_, kRouted}}) {
            QColor c = colour;
            c.setAlphaF(0.35f);
            painter.setBrush(c);
            for (const QPointF& p : *points) {
                const QPointF q = at(p);
                painter.drawRect(QRectF(q.x() - 1.5, q.y() - 1.5, 3, 3));
            }
        }
        painter.setPen(palette().color(QPalette::Text));
        painter.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), fm.height()),
                         Qt::AlignLeft, QString::number(lo_, 'f', 1));
        painter.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), fm.height()),
                         Qt::AlignHCenter, "router logit");
        painter.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), fm.height()),
                         Qt::AlignRight, QString::number(hi_, 'f', 1));
        painter.save();
        painter.translate(fm.height(), plot.bottom());
        painter.rotate(-90);
        painter.drawText(QRectF(0, -fm.height(), plot.height(), fm.height()), Qt::AlignHCenter,
                         "distant mass 0 → 1");
        painter.restore();
    }

private:
    std::vector<QPointF> local_, routed_;
    double min_mass_ = 0.5;
    double lo_ = 0.0, hi_ = 1.0;
};

}  // namespace

struct LensView::State {
    Session* session = nullptr;
    Selection* selection = nullptr;
    QLabel* hint = nullptr;
    QLabel* token = nullptr;
    QLabel* router = nullptr;
    QLabel* distant = nullptr;
    QLabel* sources_title = nullptr;
    QTableWidget* sources = nullptr;
    QLabel* local_title = nullptr;
    QTableWidget* local = nullptr;
    QLabel* oracle_title = nullptr;
    QLabel* oracle = nullptr;
    QTableWidget* missed = nullptr;
    OracleScatter* scatter = nullptr;
    QLabel* scatter_legend = nullptr;
};

LensView::LensView(Session* session, Selection* selection, QWidget* parent)
    : QWidget(parent), state_(std::make_unique<State>()) {
    State& s = *state_;
    s.session = session;
    s.selection = selection;
    setObjectName("attentionLens");
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(6, 4, 6, 4);
    layout->setSpacing(4);
    const auto label = [this, layout](const char* name, bool bold = false) {
        auto* l = new QLabel(this);
        l->setObjectName(name);
        l->setWordWrap(true);
        l->setTextInteractionFlags(Qt::TextSelectableByMouse);
        if (bold) l->setStyleSheet("font-weight: bold");
        layout->addWidget(l);
        return l;
    };
    s.hint = label("lens_hint");
    s.hint->setStyleSheet("color: #5a6372");
    s.token = label("lens_token", true);
    s.router = label("lens_router");
    s.distant = label("lens_distant");
    s.sources_title = label("lens_sources_title", true);
    s.sources_title->setText("Global attention: the tokens it reads most (mean over heads)");
    s.sources = token_table({"token", "weight", "distance", "text"}, this);
    s.sources->setObjectName("lensSources");
    s.sources->horizontalHeaderItem(1)->setToolTip(
        "The global attention's softmax weight, mean over heads; each head's weights sum to 1");
    s.sources->horizontalHeaderItem(2)->setToolTip(
        "Tokens back from the explained one; purple: older than the local window");
    layout->addWidget(s.sources);
    s.local_title = label("lens_local_title", true);
    s.local_title->setText("Local attention (the sliding window), beside it");
    s.local = token_table({"token", "weight", "distance", "text"}, this);
    s.local->setObjectName("lensLocal");
    layout->addWidget(s.local);
    s.oracle_title = label("lens_oracle_title", true);
    s.oracle = label("lens_oracle");
    s.missed = token_table({"token", "distant", "prob.", "text"}, this);
    s.missed->setObjectName("lensMissed");
    s.missed->horizontalHeaderItem(1)->setToolTip(
        "The share of the token's global attention on keys older than the window");
    s.missed->horizontalHeaderItem(2)->setToolTip("The router probability in this layer");
    layout->addWidget(s.missed);
    s.scatter = new OracleScatter(this);
    layout->addWidget(s.scatter);
    s.scatter_legend = label("lens_scatter_legend");
    s.scatter_legend->setText(
        "<span style='color:#c0392b'>■</span> routed &nbsp; <span style='color:#5a6e8c'>■</span> "
        "local &nbsp; dashed: the oracle's threshold. Routed tokens high up and local ones low "
        "down: the router agrees with the oracle.");
    layout->addStretch(1);

    for (QTableWidget* table : {s.sources, s.local, s.missed}) {
        connect(table, &QTableWidget::cellClicked, this, [this, table](int row, int) {
            if (QTableWidgetItem* item = table->item(row, 0)) {
                state_->selection->setToken(item->data(Qt::UserRole).toLongLong());
            }
        });
    }
    connect(session, &Session::explanationChanged, this, &LensView::showLens);
    connect(session, &Session::baseChanged, this, [this] {
        showLens();
        showOracle();
    });
    connect(selection, &Selection::layerChanged, this, &LensView::showOracle);
    showLens();
    showOracle();
}

LensView::~LensView() = default;

QTableWidget* LensView::sourcesTable() const { return state_->sources; }
QTableWidget* LensView::localTable() const { return state_->local; }
QTableWidget* LensView::missedTable() const { return state_->missed; }

QString LensView::shownValue(const QString& key) const {
    const State& s = *state_;
    const QLabel* l = key == "token"     ? s.token
                      : key == "router"  ? s.router
                      : key == "distant" ? s.distant
                      : key == "oracle"  ? s.oracle
                                         : nullptr;
    return l && l->isVisibleTo(this) ? l->text() : QString();
}

void LensView::showLens() {
    State& s = *state_;
    const ProfilePtr& p = s.session->base();
    const ExplanationPtr& e = s.session->explanation();
    const bool shown = p && e;
    for (QWidget* w : std::initializer_list<QWidget*>{s.token, s.router, s.distant, s.sources_title,
                                                      s.sources, s.local_title, s.local}) {
        w->setVisible(shown);
    }
    if (!shown) {
        s.hint->setText(!p ? "No run yet."
                        : !p->model.is_l2a
                            ? "A plain model: every token runs global attention in every "
                              "layer, there is no router to explain."
                            : "Select a token (and a layer) and press X (Run > Explain Token) "
                              "to see where its global attention goes.");
        s.hint->show();
        return;
    }
    s.hint->hide();
    const AttentionLens& lens = e->lens;
    const Profile& profile = *p;
    s.token->setText(QString("Token %1 \"%2\" in layer %3")
                         .arg(lens.token)
                         .arg(token_text(profile, lens.token))
                         .arg(lens.layer));
    s.router->setText(QString("Router: logit %1, probability %2: %3")
                          .arg(fixed_text(e->router_logit, 3), fixed_text(e->probability, 3),
                               e->decision ? "ran global attention" : "local only"));
    const std::int64_t oldest = lens.token - lens.window;
    s.distant->setText(
        oldest >= 0
            ? QString("Distant mass: %1 of its global attention is on tokens 0-%2, older "
                      "than the window of %3")
                  .arg(percent_text(lens.distant_mass), count_text(oldest), count_text(lens.window))
            : QString("Distant mass: none, the window of %1 holds every token before it")
                  .arg(count_text(lens.window)));
    QStringList heads;
    for (double m : lens.head_distant_mass) heads << percent_text(m, 0);
    s.distant->setToolTip("Per head: " + heads.join(", "));

    const auto fill = [&](QTableWidget* table, std::span<const float> weights,
                          std::int64_t first_key) {
        const std::vector<std::int64_t> top = top_weights(weights, kTopSources);
        table->setRowCount(static_cast<int>(top.size()));
        for (int r = 0; r < static_cast<int>(top.size()); ++r) {
            const std::int64_t token = first_key + top[static_cast<std::size_t>(r)];
            const std::int64_t distance = lens.token - token;
            auto* index = cell(QString::number(token));
            index->setData(Qt::UserRole, static_cast<qlonglong>(token));
            table->setItem(r, 0, index);
            table->setItem(
                r, 1, cell(QString::number(weights[static_cast<std::size_t>(top[r])], 'f', 4)));
            auto* d = cell(count_text(distance));
            if (distance >= lens.window) {
                d->setForeground(kLens);
                d->setToolTip("Older than the local window: only global attention reads it");
            }
            table->setItem(r, 2, d);
            table->setItem(r, 3, cell(token_text(profile, token), false));
        }
        table->resizeColumnsToContents();
        fit_height(table);
    };
    fill(s.sources, lens.mean_weights, 0);
    // The local weights' mean over heads, over keys max(0, t-W+1)..t.
    const auto keys = static_cast<std::size_t>(std::min(lens.window, lens.token + 1));
    std::vector<float> local_mean(keys, 0.0f);
    if (lens.heads > 0 &&
        lens.local_weights.size() == keys * static_cast<std::size_t>(lens.heads)) {
        for (std::size_t h = 0; h < static_cast<std::size_t>(lens.heads); ++h) {
            for (std::size_t k = 0; k < keys; ++k) {
                local_mean[k] += lens.local_weights[h * keys + k] / static_cast<float>(lens.heads);
            }
        }
    }
    fill(s.local, local_mean, lens.token + 1 - static_cast<std::int64_t>(keys));
}

void LensView::showOracle() {
    State& s = *state_;
    const ProfilePtr& p = s.session->base();
    const std::size_t T = p ? static_cast<std::size_t>(p->num_tokens()) : 0;
    const std::size_t L =
        p ? static_cast<std::size_t>(std::max<std::int64_t>(p->num_layers, 0)) : 0;
    const bool has = p && L > 0 && p->distant_mass.size() == L * T &&
                     p->router_logits.size() == L * T && p->decisions.size() == L * T;
    for (QWidget* w : std::initializer_list<QWidget*>{s.oracle_title, s.oracle, s.missed, s.scatter,
                                                      s.scatter_legend}) {
        w->setVisible(has);
    }
    if (!has) return;
    const int layer = std::clamp(s.selection->layer(), 0, static_cast<int>(L) - 1);
    const std::size_t row = static_cast<std::size_t>(layer) * T;
    const std::span<const float> mass(p->distant_mass.data() + row, T);
    const std::span<const float> logits(p->router_logits.data() + row, T);
    const std::span<const std::uint8_t> decisions(p->decisions.data() + row, T);
    const LayerOracle o = score_layer(mass, logits, decisions, p->oracle_min_mass);
    s.oracle_title->setText(QString("Routing oracle, layer %1").arg(layer));
    const auto num = [](double v) { return std::isfinite(v) ? fixed_text(v, 3) : QString("n/a"); };
    s.oracle->setText(
        QString("A token needs global attention when at least %1 of it is beyond the window: "
                "%2 tokens here. AUC %3, precision %4, recall %5; mean distant mass of routed "
                "tokens %6, of local ones %7: %8, where the best choice of as many tokens "
                "would reach %9. Missed (local, highest distant mass first):")
            .arg(setting_percent_text(p->oracle_min_mass), count_text(o.positives), num(o.auc),
                 num(o.precision), num(o.recall), num(o.mean_distant_mass_routed),
                 num(o.mean_distant_mass_local), ratio_text(o.ratio), ratio_text(o.ceiling_ratio)));
    s.missed->setRowCount(static_cast<int>(o.missed.size()));
    for (int r = 0; r < static_cast<int>(o.missed.size()); ++r) {
        const std::int64_t token = o.missed[static_cast<std::size_t>(r)];
        const auto t = static_cast<std::size_t>(token);
        auto* index = cell(QString::number(token));
        index->setData(Qt::UserRole, static_cast<qlonglong>(token));
        s.missed->setItem(r, 0, index);
        s.missed->setItem(r, 1, cell(percent_text(mass[t])));
        const double z = logits[t];
        const double temp = p->model.sigmoid_temp > 0 ? p->model.sigmoid_temp : 1.0;
        s.missed->setItem(r, 2,
                          cell(std::isfinite(z) ? fixed_text(1.0 / (1.0 + std::exp(-z / temp)), 3)
                                                : QString("n/a")));
        s.missed->setItem(r, 3, cell(token_text(*p, token), false));
    }
    s.missed->resizeColumnsToContents();
    fit_height(s.missed);
    s.missed->setVisible(!o.missed.empty());
    std::vector<QPointF> local, routed;
    for (std::size_t t = 0; t < T; ++t) {
        if (!std::isfinite(logits[t])) continue;
        (decisions[t] ? routed : local).emplace_back(logits[t], mass[t]);
    }
    s.scatter->setPoints(std::move(local), std::move(routed), p->oracle_min_mass);
}

}  // namespace l2a::ui
