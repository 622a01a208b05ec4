// The long-range documents: deterministic, about the length asked, every reference span repeats
// what was stated at least min_distance bytes earlier, mixed-in text appears, and the
// byte-level tokenizer makes one token per byte. Handbook-style documents besides: English words
// of the generator's vocabulary only, all four kinds of reference, no sentence repeated but the
// warnings meant to be.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

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

// Each document takes the mixed-in text from a place of its own (from its seed), in order from
// there: documents that all began with the text's first passage would teach a model to recite it.
TEST(SyntheticDocs, EachDocumentMixesTextFromItsOwnPlace) {
    std::string lines;
    for (int i = 0; i < 400; ++i) {
        char line[48];
        std::snprintf(line, sizeof line, "Line %04d of the reference manual text.\n", i);
        lines += line;
    }
    for (const SyntheticDocStyle style :
         {SyntheticDocStyle::synthetic, SyntheticDocStyle::handbook}) {
        SCOPED_TRACE(synthetic_doc_style_name(style));
        std::set<int> firsts;
        for (std::uint64_t seed = 1; seed <= 6; ++seed) {
            SyntheticDocOptions o;
            o.style = style;
            o.target_bytes = 4000;
            o.seed = seed;
            o.mix_texts = {lines};
            const std::string text = make_synthetic_doc(o).text;
            std::vector<int> seen;
            for (std::size_t at = text.find("Line "); at != std::string::npos;
                 at = text.find("Line ", at + 1)) {
                if (at + 9 <= text.size())
                    seen.push_back(std::atoi(text.substr(at + 5, 4).c_str()));
            }
            ASSERT_FALSE(seen.empty());
            // In order (a chunk cut at the space inside "Line NNNN" hides that one line), or
            // wrapped around to the text's start.
            for (std::size_t i = 1; i < seen.size(); ++i) {
                const int step = seen[i] - seen[i - 1];
                EXPECT_TRUE((step >= 1 && step <= 2) || seen[i] <= 1) << "line " << seen[i];
            }
            firsts.insert(seen.front());
        }
        EXPECT_GE(firsts.size(), 5u) << "documents start mixing at the same line";
    }
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

// ---- handbook style ---------------------------------------------------------------------------

SyntheticDoc handbook(std::uint64_t seed, std::size_t bytes = 8192, std::size_t distance = 1536,
                      bool dense = false) {
    SyntheticDocOptions o;
    o.style = SyntheticDocStyle::handbook;
    o.target_bytes = bytes;
    o.min_distance = distance;
    o.seed = seed;
    o.dense = dense;
    return make_synthetic_doc(o);
}

TEST(HandbookDocs, StylesParseAndNameThemselves) {
    EXPECT_EQ(parse_synthetic_doc_style("handbook"), SyntheticDocStyle::handbook);
    EXPECT_EQ(parse_synthetic_doc_style("synthetic"), SyntheticDocStyle::synthetic);
    EXPECT_FALSE(parse_synthetic_doc_style("Handbook").has_value());
    EXPECT_FALSE(parse_synthetic_doc_style("").has_value());
    EXPECT_STREQ(synthetic_doc_style_name(SyntheticDocStyle::handbook), "handbook");
    EXPECT_STREQ(synthetic_doc_style_name(SyntheticDocStyle::synthetic), "synthetic");
    EXPECT_EQ(SyntheticDocOptions{}.style, SyntheticDocStyle::synthetic);
}

TEST(HandbookDocs, DeterministicPerSeedAndDifferentAcrossSeeds) {
    const SyntheticDoc a = handbook(7), b = handbook(7);
    EXPECT_EQ(a.text, b.text);
    ASSERT_EQ(a.references.size(), b.references.size());
    for (std::size_t i = 0; i < a.references.size(); ++i) {
        EXPECT_EQ(a.references[i].begin, b.references[i].begin);
        EXPECT_EQ(a.references[i].source_begin, b.references[i].source_begin);
        EXPECT_EQ(a.references[i].kind, b.references[i].kind);
    }
    std::set<std::string> texts;
    std::set<std::string> titles;
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        const SyntheticDoc doc = handbook(seed);
        texts.insert(doc.text);
        titles.insert(doc.text.substr(0, doc.text.find('\n')));
    }
    EXPECT_EQ(texts.size(), 20u);
    EXPECT_GE(titles.size(), 8u) << "places and workplaces vary with the seed";
    // The synthetic style of the same seed is another document.
    SyntheticDocOptions o;
    o.seed = 7;
    EXPECT_NE(make_synthetic_doc(o).text, a.text);
}

TEST(HandbookDocs, ReferencesRecallExactlyWhatWasStatedFarEarlier) {
    for (std::uint64_t seed = 1; seed <= 30; ++seed) {
        const SyntheticDocOptions defaults;
        const SyntheticDoc doc = handbook(seed);
        EXPECT_GE(doc.text.size(), 8192u);
        EXPECT_LT(doc.text.size(), 8192u + 400u);
        std::string valid;
        EXPECT_EQ(sanitize_utf8(doc.text, valid), 0u);
        ASSERT_GE(doc.references.size(), 8u) << "seed " << seed;
        std::map<std::string, std::size_t> kinds;
        for (const ReferenceSpan& r : doc.references) {
            ASSERT_LT(r.source_begin, r.source_end);
            ASSERT_LE(r.source_end + defaults.min_distance, r.begin) << r.kind << " seed " << seed;
            ASSERT_LT(r.begin, r.end);
            ASSERT_LE(r.end, doc.text.size());
            const std::string recalled = doc.text.substr(r.begin, r.end - r.begin);
            const std::string stated =
                doc.text.substr(r.source_begin, r.source_end - r.source_begin);
            EXPECT_EQ(recalled, stated) << r.kind << " seed " << seed;
            ++kinds[r.kind];
            // What each kind recalls, as the generator states it.
            if (r.kind == "section") {
                // A number ("4.2", in its heading "### 4.2 Title") or a title (the heading's rest).
                const std::size_t line = doc.text.rfind('\n', r.source_begin) + 1;
                EXPECT_EQ(doc.text.compare(line, 4, "### "), 0) << stated;
                if (std::isdigit(static_cast<unsigned char>(stated[0]))) {
                    EXPECT_TRUE(std::regex_match(stated, std::regex("[0-9]+\\.[0-9]+"))) << stated;
                    EXPECT_EQ(doc.text.compare(r.begin - 8, 8, "Section "), 0);
                } else {
                    EXPECT_EQ(doc.text[r.source_end], '\n') << stated;
                }
            } else if (r.kind == "term") {
                EXPECT_EQ(recalled.rfind("the ", 0), 0u) << recalled;
                EXPECT_NE(recalled.find(" that "), std::string::npos) << recalled;
            } else if (r.kind == "repeat") {
                // The whole warning comes again: its cue before the reference, its end after.
                const std::size_t line = doc.text.rfind('\n', r.source_begin) + 1;
                const std::string cue = doc.text.substr(line, r.source_begin - line);
                EXPECT_TRUE(cue.rfind("Warning: ", 0) == 0 || cue.rfind("Procedure: ", 0) == 0)
                    << cue;
                EXPECT_EQ(doc.text.compare(r.begin - cue.size(), cue.size(), cue), 0) << cue;
                EXPECT_EQ(doc.text[r.begin - cue.size() - 1], '\n');
                EXPECT_EQ(recalled.back(), '.');
            } else {
                ASSERT_EQ(r.kind, "key");
                // A part number, a rating, a room or a person.
                EXPECT_TRUE(std::regex_match(
                    recalled,
                    std::regex("[A-Z]{1,2}-[0-9]{4}|[0-9]+ [a-z ]+|(Room|Bay|Cabinet|Store|Shelf) "
                               "[0-9]+|[A-Z][a-z]+ [A-Z][a-z]+")))
                    << recalled;
            }
        }
        EXPECT_EQ(kinds.size(), 4u) << "seed " << seed << ": key, term, section and repeat";
        // The sidecar carries the same spans.
        const auto j = nlohmann::json::parse(synthetic_doc_sidecar_json(doc, seed));
        EXPECT_EQ(j["bytes"], doc.text.size());
        ASSERT_EQ(j["references"].size(), doc.references.size());
        EXPECT_EQ(j["references"][0]["begin"], doc.references[0].begin);
        EXPECT_EQ(j["references"][0]["kind"], doc.references[0].kind);
    }
}

// Words as the test reads them: runs of letters, digits and hyphens.
std::vector<std::string> words_of(const std::string& text) {
    std::vector<std::string> words;
    std::string word;
    for (const char c : text + " ") {
        if (std::isalnum(static_cast<unsigned char>(c)) || c == '-') {
            word += c;
        } else if (!word.empty()) {
            words.push_back(word);
            word.clear();
        }
    }
    return words;
}

TEST(HandbookDocs, EveryWordIsFromTheVocabularyOrANumber) {
    const std::set<std::string>& vocabulary = handbook_vocabulary();
    EXPECT_GT(vocabulary.size(), 300u);
    for (const std::string& word : vocabulary) {
        ASSERT_TRUE(std::regex_match(word, std::regex("[a-z]+"))) << word;
    }
    const std::regex part("[A-Z]{1,2}-[0-9]{4}"), number("[0-9]+");
    std::size_t checked = 0;
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        for (const SyntheticDoc& doc : {handbook(seed), handbook(seed, 2048, 200, true)}) {
            for (const std::string& word : words_of(doc.text)) {
                ++checked;
                if (std::regex_match(word, part) || std::regex_match(word, number)) continue;
                std::string lower;
                for (const char c : word)
                    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                ASSERT_TRUE(vocabulary.count(lower))
                    << "'" << word << "' (seed " << seed << ") is not a vocabulary word";
            }
        }
    }
    EXPECT_GT(checked, 20u * 1000u);
}

TEST(HandbookDocs, SentencesRepeatOnlyInTheRepeatedWarnings) {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        const SyntheticDoc doc = handbook(seed);
        // Sentences of the prose: headings left out; a sentence ends at ". " or a line's end.
        std::map<std::string, std::vector<std::size_t>> where;
        std::size_t sentences = 0;
        for (std::size_t line = 0; line < doc.text.size();) {
            const std::size_t end = std::min(doc.text.find('\n', line), doc.text.size());
            if (doc.text[line] != '#') {
                for (std::size_t begin = line; begin < end;) {
                    std::size_t stop = doc.text.find(". ", begin);
                    stop = stop < end ? stop + 1 : end;
                    where[doc.text.substr(begin, stop - begin)].push_back(begin);
                    ++sentences;
                    begin = stop + 1;
                }
            }
            line = end + 1;
        }
        auto in_repeat = [&](std::size_t at) {
            for (const ReferenceSpan& r : doc.references) {
                if (r.kind != "repeat") continue;
                for (const std::size_t begin : {r.begin, r.source_begin}) {
                    const std::size_t line = doc.text.rfind('\n', begin) + 1;
                    if (at == line) return true;
                }
            }
            return false;
        };
        for (const auto& [sentence, places] : where) {
            if (places.size() < 2) continue;
            for (const std::size_t at : places) {
                EXPECT_TRUE(in_repeat(at))
                    << "seed " << seed << ": '" << sentence << "' " << places.size() << " times";
            }
        }
        EXPECT_GT(sentences, 40u);
        EXPECT_GT(where.size(), sentences * 8 / 10) << "seed " << seed;
    }
}

TEST(HandbookDocs, DenseDocumentsRecallMoreAndMixedTextAppears) {
    auto share = [](bool dense) {
        std::size_t recalled = 0, total = 0;
        for (std::uint64_t seed = 1; seed <= 20; ++seed) {
            const SyntheticDoc doc = handbook(seed, 1024, 64, dense);
            for (const ReferenceSpan& r : doc.references) {
                EXPECT_LE(r.source_end + 64, r.begin);
                EXPECT_EQ(doc.text.substr(r.begin, r.end - r.begin),
                          doc.text.substr(r.source_begin, r.source_end - r.source_begin));
                recalled += r.end - r.begin;
            }
            total += doc.text.size();
        }
        return static_cast<double>(recalled) / static_cast<double>(total);
    };
    const double sparse = share(false), dense = share(true);
    EXPECT_GT(dense, 1.3 * sparse);

    SyntheticDocOptions o;
    o.style = SyntheticDocStyle::handbook;
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

TEST(HandbookDocs, TheDemoDocumentIsAFixedHandbook) {
    const std::string text = demo_document();
    EXPECT_EQ(text, demo_document());
    EXPECT_EQ(text.rfind("# The ", 0), 0u);
    EXPECT_NE(text.find("Handbook"), std::string::npos);
    EXPECT_GE(text.size(), 8192u);
    EXPECT_LT(text.size(), 8192u + 400u);
    const std::string small = demo_document(600);
    EXPECT_LE(small.size(), 660u);
    EXPECT_GT(small.size(), 300u);
}
}  // namespace
}  // namespace l2a
