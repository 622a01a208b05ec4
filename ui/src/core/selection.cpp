#include "l2a/ui/selection.h"

namespace l2a::ui {

Selection::Selection(QObject* parent) : QObject(parent) {}

void Selection::setToken(qint64 token) {
    if (token < -1) token = -1;
    if (token == token_) return;
    token_ = token;
    emit tokenChanged(token_);
}

void Selection::setLayer(int layer) {
    if (layer < -1) layer = -1;
    if (layer == layer_) return;
    layer_ = layer;
    emit layerChanged(layer_);
}

void Selection::clear() {
    setToken(-1);
    setLayer(-1);
}

}  // namespace l2a::ui
