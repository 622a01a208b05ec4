// The layers view on synthetic profiles: one row per layer with fractions, phase times and KV
// bytes; the prune check box edits the session's what-if options (and only where pruning means
// something); row selection and the shared layer selection follow each other.
#include <QHeaderView>
#include <QSignalSpy>
#include <QStyle>
#include <QStyleOptionViewItem>
#include <QTableView>
#include <QtTest>
#include <memory>

#include "l2a/ui/layers_view.h"
#include "l2a/ui/selection.h"
#include "l2a/ui/session.h"

using namespace l2a;
using namespace l2a::ui;

namespace {

constexpr int kLayers = 4;

std::shared_ptr<Profile> make_profile(bool l2a) {
    auto p = std::make_shared<Profile>();
    p->model.is_l2a = l2a;
    p->model.num_layers = kLayers;
    p->num_layers = kLayers;
    const int T = 8;
    p->document_text = "abcdefgh";
    for (int t = 0; t < T; ++t) {
        p->token_ids.push_back(t);
        p->token_begin.push_back(static_cast<std::uint32_t>(t));
        p->token_end.push_back(static_cast<std::uint32_t>(t + 1));
    }
    p->decisions.assign(kLayers * T, 0);
    p->router_logits.assign(kLayers * T, 0.0f);
    p->token_nll.assign(T, 1.0f);
    for (int l = 0; l < kLayers; ++l) {
        p->metrics.global_fraction.push_back(0.1 * (l + 1));
        p->metrics.kv.push_back({4096, 1024 * static_cast<std::int64_t>(l)});
    }
    // Layer 1: local 1 ms, router 0.5 ms, global 2 ms, mlp 3 ms.
    p->ranges = {{Phase::Layer, 1, 0, 7'000'000, 0, {}},
                 {Phase::Local, 1, 0, 1'000'000, 1, {}},
                 {Phase::Router, 1, 1'000'000, 1'500'000, 1, {}},
                 {Phase::Global, 1, 1'500'000, 3'500'000, 1, {}},
                 {Phase::Mlp, 1, 3'500'000, 6'500'000, 1, {}}};
    p->wall_seconds = 0.01;
    return p;
}

class TestLayersView : public QObject {
    Q_OBJECT

    std::unique_ptr<Session> session_;
    std::unique_ptr<Selection> selection_;
    std::unique_ptr<LayersView> view_;

    QString shown(int row, int column, int role = Qt::DisplayRole) const {
        return view_->model()->index(row, column).data(role).toString();
    }

private slots:
    void init() {
        session_ = std::make_unique<Session>();
        selection_ = std::make_unique<Selection>();
        view_ = std::make_unique<LayersView>(session_.get(), selection_.get());
        view_->resize(900, 300);
        view_->show();
        QVERIFY(QTest::qWaitForWindowExposed(view_.get()));
    }
    void cleanup() {
        view_.reset();
        selection_.reset();
        session_.reset();
    }

    void rowsAndColumns() {
        QCOMPARE(view_->model()->rowCount(), 0);
        session_->setBase(make_profile(true));
        QCOMPARE(view_->model()->rowCount(), kLayers);
        QCOMPARE(view_->model()->columnCount(), int(LayersView::ColumnCount));
        QCOMPARE(shown(2, LayersView::Layer), QString("2"));
        QCOMPARE(shown(2, LayersView::GlobalFraction), QString("30.0%"));
        QVERIFY(shown(2, LayersView::VariantFraction).isEmpty());
        QCOMPARE(shown(1, LayersView::Local), QString("1.00 ms"));
        QCOMPARE(shown(1, LayersView::Router), QString("500.0 µs"));
        QCOMPARE(shown(1, LayersView::Global), QString("2.00 ms"));
        QCOMPARE(shown(1, LayersView::Mlp), QString("3.00 ms"));
        QCOMPARE(shown(3, LayersView::KvBytes), QString("7.00 KiB"));  // 4096 + 3072
        QVERIFY(shown(3, LayersView::KvBytes, Qt::ToolTipRole).contains("3.00 KiB"));
        for (int c = 0; c < LayersView::ColumnCount; ++c) {
            QVERIFY(!view_->model()
                         ->headerData(c, Qt::Horizontal, Qt::ToolTipRole)
                         .toString()
                         .isEmpty());
        }
        // A variant brings its own fractions.
        auto v = std::make_shared<Profile>(*make_profile(true));
        v->metrics.global_fraction[2] = 0.0;
        session_->setVariant(v);
        QCOMPARE(shown(2, LayersView::VariantFraction), QString("0.0%"));
        QVERIFY(!view_->table()->isColumnHidden(LayersView::VariantFraction));
        session_->clearVariant();
        QVERIFY(shown(2, LayersView::VariantFraction).isEmpty());
        QVERIFY(view_->table()->isColumnHidden(LayersView::VariantFraction));
    }

    // With the oracle's distant masses, the oracle columns' tooltip gives the routed/local ratio
    // and its ceiling. Layer 0 routes tokens 0 and 1 (masses 0.2 and 0.9); the local ones have
    // 0.1 but token 6, 0.7: ratio 0.55 / 0.2 = 2.75; the best two (0.9, 0.7) against the rest's
    // 0.7 / 6: ceiling 6.857.
    void oracleTooltipGivesTheRatioAndItsCeiling() {
        auto p = make_profile(true);
        const int T = 8;
        p->distant_mass.assign(kLayers * T, 0.1f);
        p->distant_mass[0] = 0.2f;
        p->distant_mass[1] = 0.9f;
        p->distant_mass[6] = 0.7f;
        p->decisions[0] = p->decisions[1] = 1;
        p->oracle_min_mass = 0.5;
        session_->setBase(p);
        const QString tip = shown(0, LayersView::OracleAuc, Qt::ToolTipRole);
        QVERIFY2(tip.contains("2.750x"), qPrintable(tip));
        QVERIFY2(tip.contains("would reach 6.857x"), qPrintable(tip));
    }

    void viewMadeAfterTheRunShowsIt() {
        session_->setBase(make_profile(true));
        selection_->setLayer(1);
        LayersView late(session_.get(), selection_.get());
        QCOMPARE(late.model()->rowCount(), kLayers);
        QCOMPARE(late.model()->index(1, LayersView::Mlp).data().toString(), QString("3.00 ms"));
        QCOMPARE(late.table()->currentIndex().row(), 1);
    }

    void pruneCheckBoxEditsWhatIfOptions() {
        session_->setBase(make_profile(true));
        QSignalSpy spy(session_.get(), &Session::whatIfOptionsChanged);
        const QModelIndex box = view_->model()->index(2, LayersView::Prune);
        QVERIFY(box.flags() & Qt::ItemIsUserCheckable);
        QCOMPARE(box.data(Qt::CheckStateRole).toInt(), int(Qt::Unchecked));

        // A click on the check indicator, as a user does it.
        QTableView* table = view_->table();
        table->scrollTo(box);
        QStyleOptionViewItem option;
        option.initFrom(table->viewport());
        option.rect = table->visualRect(box);
        option.features |= QStyleOptionViewItem::HasCheckIndicator;
        const QRect indicator =
            table->style()->subElementRect(QStyle::SE_ItemViewItemCheckIndicator, &option, table);
        QTest::mouseClick(table->viewport(), Qt::LeftButton, {}, indicator.center());
        QCOMPARE(spy.count(), 1);
        QCOMPARE(session_->whatIfOptions().prune, PruningPlan({2}));
        QCOMPARE(box.data(Qt::CheckStateRole).toInt(), int(Qt::Checked));

        QVERIFY(view_->model()->setData(view_->model()->index(0, LayersView::Prune), Qt::Checked,
                                        Qt::CheckStateRole));
        QCOMPARE(session_->whatIfOptions().prune, PruningPlan({0, 2}));
        QCOMPARE(spy.count(), 2);
        QVERIFY(view_->model()->setData(box, Qt::Unchecked, Qt::CheckStateRole));
        QCOMPARE(session_->whatIfOptions().prune, PruningPlan({0}));
        QCOMPARE(spy.count(), 3);

        // The box follows options set elsewhere (the what-if view's reset).
        session_->setWhatIfOptions(session_->base()->options);
        QCOMPARE(view_->model()->index(0, LayersView::Prune).data(Qt::CheckStateRole).toInt(),
                 int(Qt::Unchecked));
    }

    void plainModelsAndBaseRunsCannotPrune() {
        session_->setBase(make_profile(false));
        QModelIndex box = view_->model()->index(1, LayersView::Prune);
        QVERIFY(!(box.flags() & Qt::ItemIsUserCheckable));
        QVERIFY(!box.data(Qt::CheckStateRole).isValid());
        QVERIFY(!view_->model()->setData(box, Qt::Checked, Qt::CheckStateRole));
        QVERIFY(session_->whatIfOptions().prune.empty());

        auto as_base = make_profile(true);
        as_base->options.as_base = true;
        session_->setBase(as_base);
        box = view_->model()->index(1, LayersView::Prune);
        QVERIFY(!(box.flags() & Qt::ItemIsUserCheckable));
        QVERIFY(!view_->model()->setData(box, Qt::Checked, Qt::CheckStateRole));
        QVERIFY(session_->whatIfOptions().prune.empty());
    }

    void rowSelectionFollowsSharedLayer() {
        session_->setBase(make_profile(true));
        QTableView* table = view_->table();
        QSignalSpy spy(selection_.get(), &Selection::layerChanged);
        QTest::mouseClick(table->viewport(), Qt::LeftButton, {},
                          table->visualRect(view_->model()->index(2, LayersView::Layer)).center());
        QCOMPARE(selection_->layer(), 2);
        QCOMPARE(spy.count(), 1);

        selection_->setLayer(3);
        QCOMPARE(table->currentIndex().row(), 3);
        QVERIFY(table->selectionModel()->isRowSelected(3, {}));
        QVERIFY(!table->selectionModel()->isRowSelected(2, {}));

        selection_->setLayer(-1);
        QVERIFY(!table->selectionModel()->hasSelection());
        // Clicking the same row again selects it again.
        QTest::mouseClick(table->viewport(), Qt::LeftButton, {},
                          table->visualRect(view_->model()->index(3, LayersView::Layer)).center());
        QCOMPARE(selection_->layer(), 3);
    }
};

}  // namespace

QTEST_MAIN(TestLayersView)
#include "test_views_layers.moc"
