// Why a token went global: the attention lens of the explained token (Run > Explain Token). The
// router's logit, probability and decision, the share of its global attention on keys older
// than the local window (distant mass), the tokens its global attention reads most (mean over
// heads) and beside them those its local attention reads. With the routing oracle run, the
// selected layer's scores, the local tokens with the highest distant mass ("missed") and a
// density plot of router logit against distant mass. Clicking a token selects it.
#pragma once

#include <QWidget>
#include <memory>

class QTableWidget;

namespace l2a::ui {

class Selection;
class Session;

class LensView : public QWidget {
    Q_OBJECT
public:
    LensView(Session* session, Selection* selection, QWidget* parent = nullptr);
    ~LensView() override;

    // Rows: the top sources of the global attention, of the local attention, the missed tokens
    // of the selected layer. Column 0 holds the token index. For tests.
    QTableWidget* sourcesTable() const;
    QTableWidget* localTable() const;
    QTableWidget* missedTable() const;
    // The value shown for "token", "router", "distant", "oracle", as displayed; "" when none.
    QString shownValue(const QString& key) const;

private:
    void showLens();
    void showOracle();

    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace l2a::ui
