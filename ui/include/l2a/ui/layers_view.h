// One row per layer: global fraction (base, and variant when there is one), time per phase,
// KV-cache bytes, the routing oracle's scores when the base has distant masses (AUC, precision,
// recall), and a check box that prunes the layer's global attention (which edits the
// session's what-if options). Selecting a row selects the layer everywhere.
#pragma once

#include <QWidget>
#include <memory>

class QAbstractItemModel;
class QTableView;

namespace l2a::ui {

class Selection;
class Session;

class LayersView : public QWidget {
    Q_OBJECT
public:
    // Columns of the table model.
    enum Column {
        Layer,
        Prune,
        GlobalFraction,
        VariantFraction,
        Local,
        Router,
        Global,
        Mlp,
        KvBytes,
        OracleAuc,  // the oracle's columns: shown only when the base has distant masses
        OraclePrecision,
        OracleRecall,
        ColumnCount
    };

    LayersView(Session* session, Selection* selection, QWidget* parent = nullptr);
    ~LayersView() override;

    QTableView* table() const;
    QAbstractItemModel* model() const;

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace l2a::ui
