// The layer table: one row per layer, a prune check box that edits the session's what-if
// options, in-cell bars for the global fraction, and times per phase from the timeline summary.
#include "l2a/ui/layers_view.h"

#include <QAbstractTableModel>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QPainter>
#include <QStyledItemDelegate>
#include <QTableView>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <vector>

#include "l2a/engine/oracle.h"
#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"
#include "l2a/ui/units.h"

namespace l2a::ui {
namespace {

// Empty for a phase that did not run.
QString seconds_text(double s) {
    return s > 0 ? duration_text(s, {.s = 3, .ms = 2, .us = 1}) : QString();
}

QString bytes_text(std::int64_t bytes) { return byte_size_text(bytes, 2); }

constexpr int kFractionRole = Qt::UserRole + 1;

class LayerModel : public QAbstractTableModel {
public:
    explicit LayerModel(Session* session) : session_(session) {}

    void reset() {
        beginResetModel();
        timing_ = session_->base() ? summarize_timeline(*session_->base()) : TimelineSummary{};
        oracle_.clear();
        if (const ProfilePtr& p = session_->base()) {
            const auto T = static_cast<std::size_t>(p->num_tokens());
            const auto L = static_cast<std::size_t>(std::max<std::int64_t>(p->num_layers, 0));
            if (L > 0 && p->distant_mass.size() == L * T && p->router_logits.size() == L * T &&
                p->decisions.size() == L * T) {
                for (std::size_t l = 0; l < L; ++l) {
                    oracle_.push_back(score_layer(
                        {p->distant_mass.data() + l * T, T}, {p->router_logits.data() + l * T, T},
                        {p->decisions.data() + l * T, T}, p->oracle_min_mass, 0));
                }
            }
        }
        endResetModel();
    }
    bool hasOracle() const { return !oracle_.empty(); }
    void refreshVariant() {
        if (rowCount() > 0)
            emit dataChanged(index(0, 0), index(rowCount() - 1, LayersView::ColumnCount - 1));
    }

    int rowCount(const QModelIndex& parent = {}) const override {
        if (parent.isValid() || !session_->base()) return 0;
        return static_cast<int>(session_->base()->num_layers);
    }
    int columnCount(const QModelIndex& parent = {}) const override {
        return parent.isValid() ? 0 : LayersView::ColumnCount;
    }

    bool prunable() const {
        const ProfilePtr& p = session_->base();
        return p && p->model.is_l2a && !p->options.as_base;
    }

    Qt::ItemFlags flags(const QModelIndex& index) const override {
        Qt::ItemFlags f = Qt::ItemIsEnabled | Qt::ItemIsSelectable;
        if (index.column() == LayersView::Prune && prunable()) f |= Qt::ItemIsUserCheckable;
        return f;
    }

    QVariant data(const QModelIndex& index, int role) const override {
        const ProfilePtr& p = session_->base();
        if (!p || !index.isValid()) return {};
        const int layer = index.row();
        const auto l = static_cast<std::size_t>(layer);
        const ProfilePtr& v = session_->variant();
        const auto& prune = session_->whatIfOptions().prune;
        const bool pruned = std::find(prune.begin(), prune.end(), layer) != prune.end();
        auto phase = [&](int i) {
            return l < timing_.layers.size() ? timing_.layers[l].phases[i].seconds : 0.0;
        };
        switch (index.column()) {
            case LayersView::Layer:
                if (role == Qt::DisplayRole) return layer;
                break;
            case LayersView::Prune:
                if (role == Qt::CheckStateRole && prunable())
                    return pruned ? Qt::Checked : Qt::Unchecked;
                if (role == Qt::ToolTipRole) {
                    return prunable()
                               ? QString("Remove layer %1's global attention in the what-if")
                                     .arg(layer)
                               : QString("Only the global attention of L2A layers can be pruned");
                }
                break;
            case LayersView::GlobalFraction:
            case LayersView::VariantFraction: {
                const Profile* src =
                    index.column() == LayersView::GlobalFraction ? p.get() : v.get();
                if (!src || l >= src->metrics.global_fraction.size()) return {};
                const double f = src->metrics.global_fraction[l];
                if (role == Qt::DisplayRole) return percent_text(f);
                if (role == kFractionRole) return f;
                if (role == Qt::TextAlignmentRole) return int(Qt::AlignRight | Qt::AlignVCenter);
                break;
            }
            case LayersView::Local:
            case LayersView::Router:
            case LayersView::Global:
            case LayersView::Mlp:
                if (role == Qt::DisplayRole)
                    return seconds_text(phase(index.column() - LayersView::Local));
                if (role == Qt::TextAlignmentRole) return int(Qt::AlignRight | Qt::AlignVCenter);
                break;
            case LayersView::KvBytes:
                if (l < p->metrics.kv.size()) {
                    const LayerKv& kv = p->metrics.kv[l];
                    if (role == Qt::DisplayRole)
                        return bytes_text(kv.local_bytes + kv.global_bytes);
                    if (role == Qt::ToolTipRole) {
                        return QString("local cache %1, global cache %2")
                            .arg(bytes_text(kv.local_bytes), bytes_text(kv.global_bytes));
                    }
                    if (role == Qt::TextAlignmentRole)
                        return int(Qt::AlignRight | Qt::AlignVCenter);
                }
                break;
            case LayersView::OracleAuc:
            case LayersView::OraclePrecision:
            case LayersView::OracleRecall: {
                if (l >= oracle_.size()) break;
                const LayerOracle& o = oracle_[l];
                const double v = index.column() == LayersView::OracleAuc         ? o.auc
                                 : index.column() == LayersView::OraclePrecision ? o.precision
                                                                                 : o.recall;
                if (role == Qt::DisplayRole) return std::isfinite(v) ? fixed_text(v, 2) : "–";
                if (role == Qt::TextAlignmentRole) return int(Qt::AlignRight | Qt::AlignVCenter);
                if (role == Qt::ToolTipRole) {
                    const auto num = [](double x) {
                        return std::isfinite(x) ? fixed_text(x, 3) : QString("n/a");
                    };
                    return QString(
                               "Layer %1: %2 tokens need global attention (distant mass ≥ %3); "
                               "AUC %4, precision %5, recall %6; mean distant mass of routed "
                               "tokens %7, of local ones %8: %9, where the best choice of as "
                               "many tokens would reach %10 (near 1: the layer looks far for "
                               "every token alike)")
                        .arg(layer)
                        .arg(count_text(o.positives))
                        .arg(setting_percent_text(p->oracle_min_mass))
                        .arg(num(o.auc), num(o.precision), num(o.recall),
                             num(o.mean_distant_mass_routed), num(o.mean_distant_mass_local),
                             ratio_text(o.ratio), ratio_text(o.ceiling_ratio));
                }
                break;
            }
            default:
                break;
        }
        return {};
    }

    bool setData(const QModelIndex& index, const QVariant& value, int role) override {
        if (index.column() != LayersView::Prune || role != Qt::CheckStateRole || !prunable())
            return false;
        const bool pruned = value.toInt() == Qt::Checked;
        session_->setLayerPruned(index.row(), pruned);
        emit dataChanged(index, index, {Qt::CheckStateRole});
        return true;
    }

    QVariant headerData(int section, Qt::Orientation orientation, int role) const override {
        if (orientation != Qt::Horizontal) return {};
        // Short, so that every column fits a 1280-wide window; the tooltips say the rest.
        static const char* names[] = {"layer",    "prune",  "global %", "what-if %",
                                      "local",    "router", "global",   "mlp",
                                      "KV cache", "AUC",    "prec.",    "recall"};
        static const char* tips[] = {
            "Layer index",
            "Check to remove this layer's global attention in the what-if run",
            "Share of tokens that ran global attention in the base run",
            "Share of tokens that ran global attention in the what-if variant",
            "Time of the local (sliding-window) attention phase",
            "Time of the router phase",
            "Time of the global attention phase (the global % columns: its share of tokens)",
            "Time of the MLP phase",
            "KV-cache bytes of the layer (local window + global cache)",
            "Routing oracle: ROC-AUC of the router logit as a score for \"the token needs global "
            "attention\" (at least the oracle's share of its global attention on keys older "
            "than the window); 0.5 is chance, 1 a perfect ranking",
            "Routing oracle: of the tokens the router sent to global attention, the share that "
            "needed it",
            "Routing oracle: of the tokens that needed global attention, the share the router "
            "sent there"};
        if (role == Qt::DisplayRole) return names[section];
        if (role == Qt::ToolTipRole) return tips[section];
        return {};
    }

private:
    Session* session_;
    TimelineSummary timing_;
    std::vector<LayerOracle> oracle_;  // per layer; empty without distant masses
};

// A bar under the percentage, so the table reads as a chart at a glance.
class FractionDelegate : public QStyledItemDelegate {
public:
    using QStyledItemDelegate::QStyledItemDelegate;
    void paint(QPainter* painter, const QStyleOptionViewItem& option,
               const QModelIndex& index) const override {
        const QVariant f = index.data(kFractionRole);
        if (f.isValid()) {
            const double fraction = std::clamp(f.toDouble(), 0.0, 1.0);
            QRectF bar = option.rect.adjusted(2, 3, -2, -3);
            bar.setWidth(bar.width() * fraction);
            painter->fillRect(bar, QColor(0x3b, 0x6f, 0xb6, 90));
        }
        QStyledItemDelegate::paint(painter, option, index);
    }
};

}  // namespace

struct LayersView::State {
    Session* session = nullptr;
    Selection* selection = nullptr;
    QTableView* table = nullptr;
    LayerModel* model = nullptr;
};

LayersView::LayersView(Session* session, Selection* selection, QWidget* parent)
    : QWidget(parent), state_(std::make_unique<State>()) {
    State& s = *state_;
    s.session = session;
    s.selection = selection;
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    s.table = new QTableView(this);
    s.model = new LayerModel(session);
    s.model->setParent(this);
    s.table->setModel(s.model);
    s.table->setSelectionBehavior(QAbstractItemView::SelectRows);
    s.table->setSelectionMode(QAbstractItemView::SingleSelection);
    s.table->verticalHeader()->setVisible(false);
    s.table->verticalHeader()->setDefaultSectionSize(20);
    s.table->horizontalHeader()->setStretchLastSection(true);
    s.table->setAlternatingRowColors(true);
    auto* bars = new FractionDelegate(s.table);
    s.table->setItemDelegateForColumn(GlobalFraction, bars);
    s.table->setItemDelegateForColumn(VariantFraction, bars);
    layout->addWidget(s.table);

    auto show_layer = [this](int layer) {
        State& st = *state_;
        if (layer < 0 || layer >= st.model->rowCount()) {
            st.table->selectionModel()->clear();  // also the current index, so a click re-selects
            return;
        }
        if (st.table->currentIndex().row() != layer) {
            st.table->setCurrentIndex(st.model->index(layer, Layer));
            st.table->scrollTo(st.model->index(layer, Layer));
        }
    };
    auto load_base = [this, show_layer] {
        state_->model->reset();
        QTableView* table = state_->table;
        // Before sizing: a hidden column keeps the width it had. With the oracle's columns the
        // last one keeps its own width (a stretched last column is never narrower than 100 px)
        // and the bars a little less room, so that every column fits a 1280-wide window.
        const bool oracle = state_->model->hasOracle();
        for (int c : {OracleAuc, OraclePrecision, OracleRecall}) table->setColumnHidden(c, !oracle);
        table->horizontalHeader()->setStretchLastSection(!oracle);
        table->resizeColumnsToContents();
        // Room for the bars, not only for the percentages.
        for (int c : {GlobalFraction, VariantFraction}) {
            table->setColumnWidth(c, std::max(table->columnWidth(c), oracle ? 64 : 72));
        }
        show_layer(state_->selection->layer());
    };
    connect(session, &Session::baseChanged, this, load_base);
    // The what-if column only while there is something to show in it.
    auto refresh_variant = [this] {
        state_->model->refreshVariant();
        state_->table->setColumnHidden(VariantFraction, !state_->session->variant());
    };
    connect(session, &Session::variantChanged, this, refresh_variant);
    refresh_variant();
    connect(session, &Session::whatIfOptionsChanged, this,
            [this] { state_->model->refreshVariant(); });
    connect(s.table->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
            [this](const QModelIndex& current) {
                if (current.isValid()) state_->selection->setLayer(current.row());
            });
    connect(selection, &Selection::layerChanged, this, show_layer);
    // A view made after the run shows it at once.
    load_base();
}

LayersView::~LayersView() = default;

QTableView* LayersView::table() const { return state_->table; }

QAbstractItemModel* LayersView::model() const { return state_->model; }

}  // namespace l2a::ui
