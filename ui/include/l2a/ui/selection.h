// The one selection every view shares: the token and the layer the user picked. A view that
// changes it calls the setters; every view follows the signals (KDAB Hotspot's shared filter).
#pragma once

#include <QObject>

namespace l2a::ui {

class Selection : public QObject {
    Q_OBJECT
public:
    explicit Selection(QObject* parent = nullptr);

    qint64 token() const { return token_; }  // -1: none
    int layer() const { return layer_; }     // -1: none

public slots:
    // Emit only when the value changes, so views can set it from their own change handlers.
    void setToken(qint64 token);
    void setLayer(int layer);
    void clear();

signals:
    void tokenChanged(qint64 token);
    void layerChanged(int layer);

private:
    qint64 token_ = -1;
    int layer_ = -1;
};

}  // namespace l2a::ui
