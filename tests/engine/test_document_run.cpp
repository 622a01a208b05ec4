// Tokenizing, truncation and Profile assembly shared by `l2a run`, `l2a whatif` and the desktop
// app.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "l2a/engine/demo.h"
#include "l2a/engine/document.h"
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
    const l2a::TokenizedDocument doc =
        l2a::tokenize_document("<demo document>", text, 0, tokenizer);
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

// A long file is read only as far as max_tokens needs, and the tokens read are exactly the
// first tokens of the whole file (the cut lies where the pre-tokenizer splits anyway).
// Both the demo's byte-level tokenizer and a Qwen-style one with BPE merges.
class LongDocument : public ::testing::TestWithParam<std::string> {};

TEST_P(LongDocument, IsReadOnlyAsFarAsMaxTokensNeeds) {
    const l2a::Tokenizer qwen_style = l2a::Tokenizer::from_file(
        std::filesystem::path(L2A_SOURCE_DIR) / "tests/data/tokenizers/qwen_style.json");
    const l2a::Tokenizer& tokenizer = GetParam() == "demo" ? *demo_model().tokenizer() : qwen_style;
    const auto dir =
        std::filesystem::path(L2A_TEST_WORK_DIR) / "document_run" / ("long-" + GetParam());
    std::filesystem::create_directories(dir);
    const std::string unit = l2a::demo_document(4000);
    std::string text;
    while (text.size() < 2'000'000) text += unit;
    const auto path = dir / "long.txt";
    {
        std::FILE* f = std::fopen(path.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        std::fwrite(text.data(), 1, text.size(), f);
        std::fclose(f);
    }
    const l2a::TokenizedDocument full = l2a::tokenize_document("long.txt", text, 0, tokenizer);
    for (const std::int64_t max_tokens : {1, 300, 20000}) {
        SCOPED_TRACE(max_tokens);
        l2a::TokenizedDocument part =
            l2a::load_tokenized_document(path, "long.txt", tokenizer, max_tokens);
        EXPECT_FALSE(part.counted_all);
        EXPECT_EQ(part.file_bytes, text.size());
        EXPECT_LT(part.bytes_read, text.size() / 4);
        const auto n = static_cast<std::size_t>(max_tokens);
        ASSERT_GT(part.ids.size(), n);
        for (std::size_t i = 0; i < part.ids.size(); ++i) {
            ASSERT_EQ(part.ids[i], full.ids[i]) << i;
            ASSERT_EQ(part.begin[i], full.begin[i]) << i;
            ASSERT_EQ(part.end[i], full.end[i]) << i;
        }
        l2a::truncate(part, max_tokens);
        EXPECT_EQ(part.ids.size(), n);
        EXPECT_GT(part.tokens_before_truncation, max_tokens);  // a lower bound of the whole
        EXPECT_EQ(part.text, text.substr(0, full.end[n - 1]));
    }
    // Asking for more than there is reads it all and counts it all.
    const l2a::TokenizedDocument all =
        l2a::load_tokenized_document(path, "long.txt", tokenizer, 10'000'000);
    EXPECT_TRUE(all.counted_all);
    EXPECT_EQ(all.ids, full.ids);

    // One line without spaces gives no safe place to cut: it is read whole, never cut wrongly.
    const auto line = dir / "line.txt";
    {
        std::FILE* f = std::fopen(line.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        const std::string word(300'000, 'x');
        std::fwrite(word.data(), 1, word.size(), f);
        std::fclose(f);
    }
    const l2a::TokenizedDocument word =
        l2a::load_tokenized_document(line, "line.txt", tokenizer, 10);
    EXPECT_TRUE(word.counted_all);
    EXPECT_EQ(word.ids,
              l2a::tokenize_document("line.txt", std::string(300'000, 'x'), 0, tokenizer).ids);
}

INSTANTIATE_TEST_SUITE_P(DocumentRun, LongDocument, ::testing::Values("demo", "qwen_style"));

// A file read in part whose bytes are partly not UTF-8 (each bad sequence becomes the three
// bytes of U+FFFD, so the text is longer than the bytes it came from) after a byte order mark:
// bytes_read is where the cut falls in the file, and those bytes give exactly the text that was
// tokenized.
TEST(DocumentRun, APartReadOfInvalidUtf8SaysHowMuchOfTheFile) {
    const auto dir = std::filesystem::path(L2A_TEST_WORK_DIR) / "document_run" / "invalid";
    std::filesystem::create_directories(dir);
    std::string bytes = "\xef\xbb\xbf";
    while (bytes.size() < 600'000) bytes += "\xff\xfe\xc3 abc \xe2\x82 word\x80\x80\nnext line\n";
    const auto path = dir / "invalid.txt";
    {
        std::FILE* f = std::fopen(path.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        std::fwrite(bytes.data(), 1, bytes.size(), f);
        std::fclose(f);
    }
    const l2a::TokenizedDocument part =
        l2a::load_tokenized_document(path, "invalid.txt", *demo_model().tokenizer(), 100);
    EXPECT_FALSE(part.counted_all);
    EXPECT_EQ(part.file_bytes, bytes.size());
    ASSERT_GT(part.bytes_read, 3u);
    EXPECT_LT(part.bytes_read, bytes.size());
    std::string expected;
    EXPECT_GT(l2a::sanitize_utf8(std::string_view(bytes).substr(3, part.bytes_read - 3), expected),
              0u);
    EXPECT_EQ(part.text, expected);
    EXPECT_GT(part.text.size(), part.bytes_read) << "the replacements make the text longer";
}

}  // namespace
