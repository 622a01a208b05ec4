// The document with every token tinted: by how many layers sent it to global attention, by the
// router probability in the selected layer, or by its loss change in the what-if variant. Hover
// shows position, token, per-layer decisions and probabilities; a click selects the token, and
// the view scrolls to the token selected elsewhere. Over any tint, the attention lens of the
// explained token (the session's explanation) is a violet strip along the top of each token it
// reads, darker with its weight; with the routing oracle run, the tokens the router missed in
// the selected layer are underlined. Stays responsive at 128K tokens (tints are applied per
// visible block, not to the whole text at once).
#pragma once

#include <QList>
#include <QWidget>
#include <memory>

class QAction;

namespace l2a::ui {

class Selection;
class Session;
class DocumentText;

class DocumentView : public QWidget {
    Q_OBJECT
public:
    enum class Tint { RoutedLayers, RouterProbability, LossChange };

    DocumentView(Session* session, Selection* selection, QWidget* parent = nullptr);
    ~DocumentView() override;

    Tint tint() const;
    void setTint(Tint tint);
    // The token under a point of the text area (viewport coordinates), -1 if none. For tests.
    qint64 tokenAt(const QPoint& viewport_pos) const;
    // Where the selected token is drawn (viewport coordinates); empty when none is selected.
    QRect selectedTokenRect() const;
    // The tooltip text for a token (what hovering shows).
    QString tokenToolTip(qint64 token) const;
    // Actions at the top of the text's context menu (Explain Token); a right click on a token
    // selects it first.
    void addContextAction(QAction* action);
    // The strength of the lens strip over a token in [0, 1] (its weight over the largest), 0
    // where none is drawn; and whether the token is underlined as missed. For tests.
    double lensStrength(qint64 token) const;
    bool missedMarked(qint64 token) const;

private:
    friend class DocumentText;
    void updateLegend();
    void updateLensLegend();

    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace l2a::ui
