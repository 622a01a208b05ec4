// The long-range documents: deterministic, about the length asked, every reference span repeats
// what was stated at least min_distance bytes earlier, mixed-in text appears, and the
// byte-level tokenizer makes one token per byte.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "l2a/engine/demo.h"
#include "l2a/engine/document.h"
#include "l2a/engine/synthetic_docs.h"
#include "l2a/engine/tokenizer.h"

namespace l2a {
namespace {

TEST(SyntheticDocs, DeterministicPerSeedAndDifferentAcrossSeeds) {
    SyntheticDocOptions o;
    o.target_bytes = 6000;
    o.seed = 7;
    const SyntheticDoc a = make_synthetic_doc(o);
    const SyntheticDoc b = make_synthetic_doc(o);
    EXPECT_EQ(a.text, b.text);
    EXPECT_EQ(a.references.size(), b.references.size());
    o.seed = 8;
    EXPECT_NE(make_synthetic_doc(o).text, a.text);
}

TEST(SyntheticDocs, ReferencesRepeatWhatWasStatedFarEarlier) {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        SyntheticDocOptions o;
        o.target_bytes = 8192;
        o.min_distance = 1024;
        o.seed = seed;
        const SyntheticDoc doc = make_synthetic_doc(o);
        EXPECT_GE(doc.text.size(), 8192u);
        EXPECT_LT(doc.text.size(), 8192u + 400u);
        std::string valid;
        EXPECT_EQ(sanitize_utf8(doc.text, valid), 0u);
        ASSERT_GE(doc.references.size(), 5u) << "seed " << seed;
        std::set<std::string> kinds;
        for (const ReferenceSpan& r : doc.references) {
            ASSERT_LT(r.source_begin, r.source_end);
            ASSERT_LE(r.source_end + o.min_distance, r.begin) << r.kind;
            ASSERT_LT(r.begin, r.end);
            ASSERT_LE(r.end, doc.text.size());
            EXPECT_EQ(doc.text.substr(r.begin, r.end - r.begin),
                      doc.text.substr(r.source_begin, r.source_end - r.source_begin));
            kinds.insert(r.kind);
        }
        if (seed == 1) {
            EXPECT_EQ(kinds.size(), 4u) << "key, term, section and repeat all occur";
        }
        // The sidecar carries the same spans.
        const auto j = nlohmann::json::parse(synthetic_doc_sidecar_json(doc, seed));
        EXPECT_EQ(j["bytes"], doc.text.size());
        ASSERT_EQ(j["references"].size(), doc.references.size());
        EXPECT_EQ(j["references"][0]["begin"], doc.references[0].begin);
        EXPECT_EQ(j["references"][0]["kind"], doc.references[0].kind);
    }
}

// Dense documents: a far larger share of the bytes are recalls, still at the minimum distance.
TEST(SyntheticDocs, DenseDocumentsRecallMore) {
    auto share = [](bool dense) {
        std::size_t recalled = 0, total = 0;
        for (std::uint64_t seed = 1; seed <= 20; ++seed) {
            SyntheticDocOptions o;
            o.target_bytes = 1024;
            o.min_distance = 64;
            o.seed = seed;
            o.dense = dense;
            const SyntheticDoc doc = make_synthetic_doc(o);
            for (const ReferenceSpan& r : doc.references) {
                EXPECT_LE(r.source_end + o.min_distance, r.begin);
                EXPECT_EQ(doc.text.substr(r.begin, r.end - r.begin),
                          doc.text.substr(r.source_begin, r.source_end - r.source_begin));
                recalled += r.end - r.begin;
            }
            total += doc.text.size();
        }
        return static_cast<double>(recalled) / static_cast<double>(total);
    };
    const double sparse = share(false), dense = share(true);
    EXPECT_GT(dense, 0.12);
    EXPECT_GT(dense, 2.0 * sparse);
}

TEST(SyntheticDocs, MixedTextIsInterleaved) {
    SyntheticDocOptions o;
    o.target_bytes = 8000;
    o.mix_texts = {
        "It was a bright cold day in April, and the clocks were striking thirteen. "
        "Café crème, naïve résumé: multi-byte words stay whole. "};
    for (int i = 0; i < 5; ++i) o.mix_texts[0] += o.mix_texts[0];
    const SyntheticDoc doc = make_synthetic_doc(o);
    EXPECT_NE(doc.text.find("bright cold day in April"), std::string::npos);
    std::string valid;
    EXPECT_EQ(sanitize_utf8(doc.text, valid), 0u) << "a multi-byte character was cut";
    EXPECT_FALSE(doc.references.empty());
}

TEST(SyntheticDocs, ByteLevelTokenizerMakesOneTokenPerByte) {
    const Tokenizer tokenizer = Tokenizer::from_json(byte_level_tokenizer_json(), "byte-level");
    SyntheticDocOptions o;
    o.target_bytes = 3000;
    o.min_distance = 500;
    const SyntheticDoc doc = make_synthetic_doc(o);
    const Encoding e = tokenizer.encode(doc.text + "<|endoftext|>é");
    ASSERT_EQ(e.ids.size(), doc.text.size() + 3);
    for (std::size_t i = 0; i < doc.text.size(); ++i) {
        ASSERT_EQ(e.ids[i], static_cast<unsigned char>(doc.text[i])) << "byte " << i;
        ASSERT_EQ(e.offsets[i].first, i);
    }
    EXPECT_EQ(e.ids[doc.text.size()], 256);  // <|endoftext|>
    EXPECT_EQ(e.ids[doc.text.size() + 1], 0xC3);
    EXPECT_EQ(e.ids[doc.text.size() + 2], 0xA9);
}

}  // namespace
}  // namespace l2a
