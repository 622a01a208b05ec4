// Tokenizing, truncation and Profile assembly shared by `l2a run`, `l2a whatif` and the desktop app.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "l2a/engine/demo.h"
#include "l2a/engine/document_run.h"
#include "l2a/engine/model.h"
#include "l2a/engine/whatif.h"

namespace {

const l2a::Model& demo_model() {
    static const l2a::Model model = [] {
        const auto dir = std::filesystem::path(L2A_TEST_WORK_DIR) / "document_run" / "demo";
        return l2a::Model::load(l2a::ensure_untrained_model(dir));
    }();
    return model;
}

TEST(DocumentRun, TokenSpansCoverTheText) {
    const l2a::Tokenizer& tokenizer = *demo_model().tokenizer();
    const std::string text = l2a::demo_document(2000);
    const l2a::TokenizedDocument doc = l2a::tokenize_document("<demo document>", text, 0,
                                                              tokenizer);
    ASSERT_FALSE(doc.ids.empty());
    ASSERT_EQ(doc.begin.size(), doc.ids.size());
    ASSERT_EQ(doc.end.size(), doc.ids.size());
    EXPECT_EQ(doc.tokens_before_truncation, static_cast<std::int64_t>(doc.ids.size()));
    EXPECT_EQ(doc.begin.front(), 0u);
    EXPECT_EQ(doc.end.back(), text.size());
    for (std::size_t i = 1; i < doc.ids.size(); ++i) EXPECT_EQ(doc.begin[i], doc.end[i - 1]);
}

TEST(DocumentRun, TruncateKeepsPrefixAndRecordsCount) {
    const l2a::Tokenizer& tokenizer = *demo_model().tokenizer();
    l2a::TokenizedDocument doc =
        l2a::tokenize_document("doc.txt", l2a::demo_document(2000), 0, tokenizer);
    const auto all = static_cast<std::int64_t>(doc.ids.size());
    ASSERT_GT(all, 40);
    const auto first_ids = doc.ids;
    l2a::truncate(doc, 0);  // 0: keep everything
    EXPECT_EQ(static_cast<std::int64_t>(doc.ids.size()), all);
    l2a::truncate(doc, 40);
    ASSERT_EQ(doc.ids.size(), 40u);
    EXPECT_EQ(doc.tokens_before_truncation, all);
    EXPECT_EQ(doc.text.size(), doc.end.back());
    for (std::size_t i = 0; i < 40; ++i) EXPECT_EQ(doc.ids[i], first_ids[i]);
}

TEST(DocumentRun, ProfileHoldsTheRun) {
    const l2a::Model& model = demo_model();
    l2a::TokenizedDocument doc =
        l2a::tokenize_document("doc.txt", l2a::demo_document(2000), 0, *model.tokenizer());
    l2a::truncate(doc, 48);
    const l2a::TokenizedDocument kept = doc;
    l2a::RunOptions options;
    options.device = "cpu";
    const l2a::WhatIfRun base = l2a::run_whatif_base(model, doc.ids, options);
    const l2a::Profile p = l2a::make_profile(model, doc, options, base.result);
    EXPECT_EQ(p.document_path, "doc.txt");
    EXPECT_EQ(p.document_text, kept.text);
    EXPECT_EQ(p.token_ids, kept.ids);
    EXPECT_EQ(p.token_begin, kept.begin);
    EXPECT_EQ(p.token_end, kept.end);
    EXPECT_EQ(p.tokens_before_truncation, kept.tokens_before_truncation);
    EXPECT_EQ(p.num_layers, model.config().num_hidden_layers);
    EXPECT_EQ(p.decisions.size(), static_cast<std::size_t>(p.num_layers) * 48u);
    EXPECT_FALSE(p.created_at.empty());
    EXPECT_EQ(p.tool_version, l2a::tool_version());
    EXPECT_EQ(p.timeline_source, "host timers only: CPU run");

    const l2a::Profile v = l2a::make_variant_profile(p, base);
    EXPECT_EQ(v.token_ids, p.token_ids);
    EXPECT_EQ(v.document_text, p.document_text);
    EXPECT_EQ(v.decisions, p.decisions);
    // Position 0 has no prediction (NaN), so the losses are compared from position 1.
    ASSERT_EQ(v.token_nll.size(), p.token_nll.size());
    for (std::size_t i = 1; i < p.token_nll.size(); ++i) EXPECT_EQ(v.token_nll[i], p.token_nll[i]);
}

TEST(DocumentRun, TimestampIsIso8601Utc) {
    const std::string now = l2a::utc_now_iso8601();
    ASSERT_EQ(now.size(), 20u);
    EXPECT_EQ(now[4], '-');
    EXPECT_EQ(now[10], 'T');
    EXPECT_EQ(now.back(), 'Z');
}

}  // namespace
