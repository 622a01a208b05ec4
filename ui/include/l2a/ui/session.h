// What the views show: the base run, the what-if variant (or a second profile opened for
// comparison) and the options the user is editing for the next what-if. Lives on the GUI
// thread; profiles are immutable and shared.
#pragma once

#include <QObject>
#include <QString>
#include <cstdint>
#include <memory>
#include <string>

#include "l2a/engine/profile.h"
#include "l2a/engine/run_options.h"
#include "l2a/engine/whatif.h"
#include "l2a/profiler/study.h"

namespace l2a::ui {

using ProfilePtr = std::shared_ptr<const Profile>;
using ComparisonPtr = std::shared_ptr<const WhatIfComparison>;
using ExplanationPtr = std::shared_ptr<const StudyExplanation>;

// What a fresh run knows beside its Profile: how the model was placed and why the document
// was cut. A profile opened from a file has none of it (every field at its default).
struct RunInfo {
    std::string dtype;               // the placement's dtype ("fp32", "bf16", ...); "" unknown
    int threads = 0;                 // CPU threads the run used; 0 unknown
    std::int64_t max_positions = 0;  // the model's max_position_embeddings; 0 unknown
    std::int64_t requested_max_tokens = 0;  // the run option as asked (0: the whole document)
    // Why the document was cut: "" (it was not), "max tokens" (the run option) or "context"
    // (the whole document is longer than the model's max_position_embeddings).
    std::string cut_by;
    bool beyond_context = false;  // more tokens ran than the model has positions
};

class Session : public QObject {
    Q_OBJECT
public:
    explicit Session(QObject* parent = nullptr);

    const ProfilePtr& base() const { return base_; }
    // The variant: a what-if re-run of the base (with its comparison), or a profile opened for
    // side-by-side comparison (comparison null). Null when there is none.
    const ProfilePtr& variant() const { return variant_; }
    const ComparisonPtr& comparison() const { return comparison_; }
    // Where the base came from ("" for a fresh run): the .l2a file it was opened from or saved to.
    const QString& baseFile() const { return base_file_; }
    // What the run of the base knew beside its profile (defaults for an opened profile).
    const RunInfo& baseInfo() const { return base_info_; }

    // The options of the next what-if: the base's options with the user's edits (pruned layers,
    // threshold, routing policy). Equal to the base's options right after setBase.
    const RunOptions& whatIfOptions() const { return whatif_options_; }

    void setBase(ProfilePtr base, const QString& file = {},
                 const RunInfo& info = {});  // drops the variant and the explanation
    // `base` is the same run as the base with more in it (the routing oracle's distant
    // masses): it replaces the base and keeps the variant, the what-if options, the file, the
    // run info and the explanation. Emits baseChanged.
    void updateBase(ProfilePtr base);
    void setBaseFile(const QString& file);
    void setVariant(ProfilePtr variant, ComparisonPtr comparison = nullptr);
    void clearVariant();
    // Emits whatIfOptionsChanged when they differ from the current ones.
    void setWhatIfOptions(const RunOptions& options);
    // Convenience for the layer table's check boxes.
    void setLayerPruned(int layer, bool pruned);

    // The attention lens of one token of the base (Run > Explain Token); null when none.
    const ExplanationPtr& explanation() const { return explanation_; }
    void setExplanation(ExplanationPtr explanation);

signals:
    void baseChanged();
    void explanationChanged();
    void variantChanged();
    void whatIfOptionsChanged();

private:
    ProfilePtr base_;
    ProfilePtr variant_;
    ComparisonPtr comparison_;
    QString base_file_;
    RunInfo base_info_;
    RunOptions whatif_options_;
    ExplanationPtr explanation_;
};

}  // namespace l2a::ui
