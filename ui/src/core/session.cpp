#include "l2a/ui/session.h"

#include <algorithm>

namespace l2a::ui {

Session::Session(QObject* parent) : QObject(parent) {}

void Session::setBase(ProfilePtr base, const QString& file, const RunInfo& info) {
    base_ = std::move(base);
    base_file_ = file;
    base_info_ = info;
    variant_.reset();
    comparison_.reset();
    whatif_options_ = base_ ? base_->options : RunOptions{};
    const bool had_explanation = explanation_ != nullptr;
    explanation_.reset();
    emit baseChanged();
    emit variantChanged();
    if (had_explanation) emit explanationChanged();
}

void Session::updateBase(ProfilePtr base) {
    base_ = std::move(base);
    emit baseChanged();
}

void Session::setExplanation(ExplanationPtr explanation) {
    explanation_ = std::move(explanation);
    emit explanationChanged();
}

void Session::setBaseFile(const QString& file) { base_file_ = file; }

void Session::setVariant(ProfilePtr variant, ComparisonPtr comparison) {
    variant_ = std::move(variant);
    comparison_ = std::move(comparison);
    emit variantChanged();
}

void Session::clearVariant() {
    if (!variant_ && !comparison_) return;
    variant_.reset();
    comparison_.reset();
    emit variantChanged();
}

void Session::setWhatIfOptions(const RunOptions& options) {
    RunOptions normalized = options;
    std::sort(normalized.prune.begin(), normalized.prune.end());
    normalized.prune.erase(std::unique(normalized.prune.begin(), normalized.prune.end()),
                           normalized.prune.end());
    if (normalized == whatif_options_) return;
    whatif_options_ = std::move(normalized);
    emit whatIfOptionsChanged();
}

void Session::setLayerPruned(int layer, bool pruned) {
    RunOptions options = whatif_options_;
    const auto it = std::find(options.prune.begin(), options.prune.end(), layer);
    if (pruned && it == options.prune.end()) options.prune.push_back(layer);
    if (!pruned && it != options.prune.end()) options.prune.erase(it);
    setWhatIfOptions(options);
}

}  // namespace l2a::ui
