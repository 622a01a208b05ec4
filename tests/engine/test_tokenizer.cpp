// The tokenizer: parity with HuggingFace `tokenizers` (ids and byte offsets) on the fixtures and,
// when installed, the real Qwen3 tokenizer; decoding; errors; NFC alignment; speed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../../engine/src/unicode.h"  // NFC alignment is checked directly below
#include "l2a/engine/error.h"
#include "l2a/engine/tokenizer.h"
#include "test_support.h"

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using l2a::Encoding;
using l2a::Tokenizer;
using l2a::test::read_file;

const fs::path fixtures_dir = fs::path(L2A_SOURCE_DIR) / "tests" / "data" / "tokenizers";

#if defined(__SANITIZE_ADDRESS__)
constexpr double slowdown = 8.0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr double slowdown = 8.0;
#else
constexpr double slowdown = 1.0;
#endif
#else
constexpr double slowdown = 1.0;
#endif

std::string excerpt(const std::string& text, std::size_t at = 0) {
    const std::size_t begin = at > 40 ? at - 40 : 0;
    return Json(l2a::unicode::to_valid_utf8(text.substr(begin, 120))).dump();
}

// ---- golden references from the Python generator ---------------------------------------------

struct GoldenRun {
    enum class Status { ok, skipped, failed } status = Status::failed;
    std::string message;
    Json manifest;
    fs::path dir;
};

GoldenRun run_golden(const std::string& selection) {
    GoldenRun run;
    run.dir =
        fs::path(L2A_TEST_WORK_DIR) / "tokenizer" / (selection + "-" + std::to_string(::getpid()));
    std::error_code error;
    fs::remove_all(run.dir, error);
    fs::create_directories(run.dir);
    const fs::path python = L2A_PYTHON;
    if (python.empty() || !fs::exists(python)) {
        run.status = GoldenRun::Status::skipped;
        run.message = "L2A_PYTHON (" + python.string() + ") does not exist";
        return run;
    }
    const fs::path script = fs::path(L2A_SOURCE_DIR) / "tests" / "engine" / "tokenizer_golden.py";
    const fs::path log = run.dir / "golden.log";
    const int code = l2a::test::run_python_script(
        script, l2a::test::shell_quote(run.dir.string()) + " " + selection, log);
    if (code == l2a::test::kPythonSkipExitCode) {
        run.status = GoldenRun::Status::skipped;
        run.message = read_file(log);
        return run;
    }
    if (code != 0) {
        run.message =
            "tokenizer_golden.py failed (status " + std::to_string(code) + "):\n" + read_file(log);
        return run;
    }
    run.manifest = Json::parse(read_file(run.dir / "manifest.json"));
    run.status = GoldenRun::Status::ok;
    return run;
}

void cleanup(const GoldenRun& run) {
    std::error_code error;
    fs::remove_all(run.dir, error);
}

// Compares one tokenizer with HF on every golden text; reports a few mismatches in detail.
void expect_matches_golden(const Json& entry) {
    const std::string name = entry.at("name");
    SCOPED_TRACE("case " + name);
    const Tokenizer tokenizer = Tokenizer::from_file(entry.at("tokenizer").get<std::string>());
    const Json golden = Json::parse(read_file(entry.at("golden").get<std::string>()));
    const Json& texts = golden.at("texts");
    ASSERT_GT(texts.size(), 300u);
    int mismatches = 0;
    std::size_t tokens_compared = 0;
    for (std::size_t i = 0; i < texts.size() && mismatches < 8; ++i) {
        const std::string text = texts[i];
        const auto expected_ids = golden.at("ids")[i].get<std::vector<std::int32_t>>();
        const auto expected_offsets =
            golden.at("offsets")[i].get<std::vector<std::pair<std::uint32_t, std::uint32_t>>>();
        const Encoding encoding = tokenizer.encode(text);
        tokens_compared += expected_ids.size();
        if (encoding.ids != expected_ids || encoding.offsets != expected_offsets) {
            ++mismatches;
            std::size_t k = 0;
            while (k < encoding.ids.size() && k < expected_ids.size() &&
                   encoding.ids[k] == expected_ids[k] &&
                   encoding.offsets[k] == expected_offsets[k]) {
                ++k;
            }
            std::ostringstream detail;
            detail << name << " text #" << i << ": first difference at token " << k << " of "
                   << expected_ids.size() << " (ours " << encoding.ids.size() << ")";
            if (k < encoding.ids.size()) {
                detail << "; ours id " << encoding.ids[k] << " [" << encoding.offsets[k].first
                       << ", " << encoding.offsets[k].second << ")";
            }
            if (k < expected_ids.size()) {
                detail << "; HF id " << expected_ids[k] << " [" << expected_offsets[k].first << ", "
                       << expected_offsets[k].second << ") near "
                       << excerpt(text, expected_offsets[k].first);
            } else {
                detail << " in " << excerpt(text);
            }
            ADD_FAILURE() << detail.str();
            continue;
        }
        // HF decodes with from_utf8_lossy; ours returns the exact bytes.
        EXPECT_EQ(l2a::unicode::to_valid_utf8(tokenizer.decode(encoding.ids)),
                  golden.at("decoded")[i].get<std::string>())
            << name << " text #" << i;
        EXPECT_EQ(l2a::unicode::to_valid_utf8(tokenizer.decode(encoding.ids, true)),
                  golden.at("decoded_skip_special")[i].get<std::string>())
            << name << " text #" << i;
    }
    EXPECT_EQ(mismatches, 0) << name << ": encodings that differ from HuggingFace";
    EXPECT_GT(tokens_compared, 10000u);
}

TEST(TokenizerParity, FixturesMatchHuggingFace) {
    const GoldenRun run = run_golden("fixtures");
    if (run.status == GoldenRun::Status::skipped) {
        GTEST_SKIP() << "HuggingFace reference unavailable: " << run.message;
    }
    ASSERT_EQ(run.status, GoldenRun::Status::ok) << run.message;
    std::vector<std::string> names;
    for (const Json& entry : run.manifest.at("cases")) {
        names.push_back(entry.at("name"));
        expect_matches_golden(entry);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"qwen_style", "qwen_style_legacy_merges",
                                               "qwen_style_ignore_merges", "gpt2_style",
                                               "added_token_flags", "split_behaviours",
                                               "classes_removed", "byte_level"}));
    cleanup(run);
}

TEST(TokenizerParity, RealQwen3MatchesHuggingFace) {
    const GoldenRun run = run_golden("qwen3");
    if (run.status == GoldenRun::Status::skipped) {
        GTEST_SKIP() << "HuggingFace reference unavailable: " << run.message;
    }
    ASSERT_EQ(run.status, GoldenRun::Status::ok) << run.message;
    if (run.manifest.at("cases").empty()) {
        const std::string reason = run.manifest.at("skipped").value("qwen3", "");
        cleanup(run);
        GTEST_SKIP() << "real Qwen3 tokenizer not available: " << reason;
    }
    const Json& entry = run.manifest.at("cases").at(0);
    const Tokenizer tokenizer = Tokenizer::from_file(entry.at("tokenizer").get<std::string>());
    EXPECT_EQ(tokenizer.vocab_size(), 151669);
    EXPECT_EQ(tokenizer.token_to_id("<|im_end|>"), 151645);
    EXPECT_EQ(tokenizer.token_to_id("<think>"), 151667);
    expect_matches_golden(entry);
    cleanup(run);
}

// ---- fixtures without Python ----------------------------------------------------------------

Tokenizer qwen_style() { return Tokenizer::from_file(fixtures_dir / "qwen_style.json"); }
Tokenizer byte_level() { return Tokenizer::from_file(fixtures_dir / "byte_level.json"); }

// Random valid UTF-8 drawn from ASCII, Latin, combining marks, CJK, emoji and joiners.
std::string random_text(std::mt19937& rng, std::size_t length) {
    static const std::vector<std::pair<char32_t, char32_t>> ranges = {
        {0x20, 0x7E},     {0x09, 0x0D},     {0xA0, 0x17F},      {0x300, 0x36F},   {0x1100, 0x11FF},
        {0x4E00, 0x4FFF}, {0xAC00, 0xAC40}, {0x1F300, 0x1F64F}, {0x200B, 0x200F}, {0xFE00, 0xFE0F}};
    std::string out;
    for (std::size_t i = 0; i < length; ++i) {
        const auto& [low, high] = ranges[rng() % ranges.size()];
        l2a::unicode::append_utf8(out, low + static_cast<char32_t>(rng() % (high - low + 1)));
    }
    return out;
}

TEST(Tokenizer, ByteLevelVocabularyEncodesEveryByte) {
    const Tokenizer tokenizer = byte_level();
    EXPECT_EQ(tokenizer.vocab_size(), 259);
    const std::string text = "A\xC3\xA9<|im_end|>\xE4\xB8\xAD";  // A é <|im_end|> 中
    const Encoding encoding = tokenizer.encode(text);
    const std::vector<std::int32_t> ids{'A', 0xC3, 0xA9, 258, 0xE4, 0xB8, 0xAD};
    EXPECT_EQ(encoding.ids, ids);
    // Every byte token of a character spans the whole character, as in HF.
    const std::vector<std::pair<std::uint32_t, std::uint32_t>> offsets{
        {0, 1}, {1, 3}, {1, 3}, {3, 13}, {13, 16}, {13, 16}, {13, 16}};
    EXPECT_EQ(encoding.offsets, offsets);
    EXPECT_EQ(tokenizer.decode(encoding.ids), text);
    EXPECT_EQ(tokenizer.decode(encoding.ids, true), "A\xC3\xA9\xE4\xB8\xAD");
}

TEST(Tokenizer, DecodeRoundTripsText) {
    const Tokenizer bytes = byte_level();
    const Tokenizer qwen = qwen_style();
    std::mt19937 rng(42);
    for (int i = 0; i < 300; ++i) {
        const std::string text = random_text(rng, 1 + rng() % 60);
        EXPECT_EQ(bytes.decode(bytes.encode(text).ids), text) << excerpt(text);
        // The Qwen configuration normalizes to NFC before it tokenizes.
        EXPECT_EQ(qwen.decode(qwen.encode(text).ids), l2a::unicode::nfc(text)) << excerpt(text);
    }
    const std::string chat = "<|im_start|>user\nWie geht's?<|im_end|>\n<think>\n</think>";
    EXPECT_EQ(qwen.decode(qwen.encode(chat).ids), chat);
    EXPECT_EQ(qwen.decode(qwen.encode(chat).ids, true), "user\nWie geht's?\n<think>\n</think>");
    EXPECT_EQ(qwen.decode(qwen.encode("cafe\xCC\x81").ids), "caf\xC3\xA9");
}

TEST(Tokenizer, DecodeSkipsIdsWithoutToken) {
    const Tokenizer tokenizer = byte_level();
    EXPECT_EQ(tokenizer.decode({'o', -1, 'k', 100000}), "ok");
}

TEST(Tokenizer, TokenTextRendersPartialCharacters) {
    const Tokenizer tokenizer = byte_level();
    EXPECT_EQ(tokenizer.token_text('a'), "a");
    EXPECT_EQ(tokenizer.token_text(0xE4), "\xEF\xBF\xBD");
    EXPECT_EQ(tokenizer.token_text(256), "<|endoftext|>");
    EXPECT_EQ(tokenizer.token_text(5000), "");
}

TEST(Tokenizer, LooksUpTokensAndAddedTokens) {
    const Tokenizer tokenizer = qwen_style();
    EXPECT_EQ(tokenizer.vocab_size(), 4005);
    EXPECT_EQ(tokenizer.token_to_id("<|endoftext|>"), 4000);
    EXPECT_EQ(tokenizer.token_to_id("<|im_end|>"), 4002);
    EXPECT_EQ(tokenizer.token_to_id("</think>"), 4004);
    EXPECT_EQ(tokenizer.token_to_id("!"), 0);
    EXPECT_EQ(tokenizer.token_to_id("\xC4\xA0"), 220);  // the byte-level character for ' '
    EXPECT_EQ(tokenizer.token_to_id("\xC4\xA0the"), 292);
    EXPECT_FALSE(tokenizer.token_to_id("no such token").has_value());
}

TEST(Tokenizer, SpecialTokensSplitWordsAtExactOffsets) {
    const Tokenizer tokenizer = qwen_style();
    const std::string text = "abc<|im_end|>def <think>x";
    const Encoding encoding = tokenizer.encode(text);
    const auto find = [&](std::int32_t id) {
        for (std::size_t k = 0; k < encoding.ids.size(); ++k) {
            if (encoding.ids[k] == id) {
                return encoding.offsets[k];
            }
        }
        return std::pair<std::uint32_t, std::uint32_t>{0, 0};
    };
    EXPECT_EQ(find(4002), (std::pair<std::uint32_t, std::uint32_t>{3, 13}));
    EXPECT_EQ(find(4003), (std::pair<std::uint32_t, std::uint32_t>{17, 24}));
    // Tokens tile the text: each starts where the previous ended.
    std::uint32_t end = 0;
    for (const auto& [first, second] : encoding.offsets) {
        EXPECT_EQ(first, end);
        end = second;
    }
    EXPECT_EQ(end, text.size());
}

// ---- a hand-written tokenizer ------------------------------------------------------------

Json small_tokenizer() {
    return Json{
        {"version", "1.0"},
        {"truncation", nullptr},
        {"padding", nullptr},
        {"added_tokens", Json::array({Json{{"id", 6},
                                           {"content", "<|end|>"},
                                           {"single_word", false},
                                           {"lstrip", false},
                                           {"rstrip", false},
                                           {"normalized", false},
                                           {"special", true}}})},
        {"normalizer", nullptr},
        {"pre_tokenizer",
         {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", false},
          {"use_regex", false}}},
        {"post_processor", nullptr},
        {"decoder", {{"type", "ByteLevel"}}},
        {"model",
         {{"type", "BPE"},
          {"dropout", nullptr},
          {"unk_token", nullptr},
          {"byte_fallback", false},
          {"ignore_merges", false},
          {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}}},
          {"merges", Json::array({"b c", "a b", "ab c"})}}},
    };
}

Tokenizer build(const Json& json) { return Tokenizer::from_json(json.dump(), "small.json"); }

TEST(Tokenizer, MergesByRankAndHonoursIgnoreMerges) {
    Json json = small_tokenizer();
    const Tokenizer by_rank = build(json);
    // "b c" outranks "a b", so "abc" never becomes one token through merges.
    EXPECT_EQ(by_rank.encode("abc").ids, (std::vector<std::int32_t>{0, 4}));
    EXPECT_EQ(by_rank.encode("abcabc<|end|>").ids, (std::vector<std::int32_t>{0, 4, 0, 4, 6}));
    json["model"]["ignore_merges"] = true;
    const Tokenizer whole_words = build(json);
    EXPECT_EQ(whole_words.encode("abc").ids, (std::vector<std::int32_t>{5}));
    EXPECT_EQ(whole_words.encode("abcabc").ids, (std::vector<std::int32_t>{0, 4, 0, 4}));
    // Pair-form merges mean the same as string merges.
    json["model"]["ignore_merges"] = false;
    json["model"]["merges"] =
        Json::array({Json::array({"b", "c"}), Json::array({"a", "b"}), Json::array({"ab", "c"})});
    EXPECT_EQ(build(json).encode("abc").ids, (std::vector<std::int32_t>{0, 4}));
}

TEST(Tokenizer, NumbersAddedTokensAsHuggingFaceDoes) {
    Json json = small_tokenizer();
    json["added_tokens"][0]["id"] = 9;  // HF ignores the file's id (it only warns)
    json["added_tokens"].push_back(json["added_tokens"][0]);
    json["added_tokens"][1]["content"] = "abc";  // already a model token: keeps its id
    json["added_tokens"].push_back(json["added_tokens"][0]);
    json["added_tokens"][2]["content"] = "<|pad|>";
    const Tokenizer tokenizer = build(json);
    EXPECT_EQ(tokenizer.token_to_id("<|end|>"), 6);
    EXPECT_EQ(tokenizer.token_to_id("abc"), 5);
    EXPECT_EQ(tokenizer.token_to_id("<|pad|>"), 7);
    EXPECT_EQ(tokenizer.vocab_size(), 8);
    EXPECT_EQ(tokenizer.encode("abc").ids, (std::vector<std::int32_t>{5}));
}

TEST(Tokenizer, RejectsInvalidUtf8Input) {
    const Tokenizer tokenizer = build(small_tokenizer());
    EXPECT_THROW(tokenizer.encode("ab\xFF"), l2a::Error);
    EXPECT_THROW(tokenizer.encode("\xED\xA0\x80"), l2a::Error);  // a surrogate
    EXPECT_TRUE(tokenizer.encode("").ids.empty());
}

// ---- errors --------------------------------------------------------------------------------

// The error message for `json`, which must name the origin.
std::string error_for(const Json& json) {
    return l2a::test::thrown_error([&] { build(json); }).value_or("(no error)");
}

void expect_error(const Json& json, const std::string& expected) {
    const std::string message = error_for(json);
    EXPECT_EQ(message.rfind("small.json: ", 0), 0u) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
}

TEST(TokenizerErrors, MissingFileNamesIt) {
    const fs::path path = fs::path(L2A_TEST_WORK_DIR) / "tokenizer" / "absent" / "tokenizer.json";
    try {
        Tokenizer::from_file(path);
        FAIL() << "no error";
    } catch (const l2a::Error& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find(path.string()), std::string::npos) << message;
        EXPECT_NE(message.find("not found"), std::string::npos) << message;
    }
}

TEST(TokenizerErrors, MalformedJson) {
    try {
        Tokenizer::from_json("{\"model\": {", "broken/tokenizer.json");
        FAIL() << "no error";
    } catch (const l2a::Error& error) {
        const std::string message = error.what();
        EXPECT_EQ(message.rfind("broken/tokenizer.json: malformed JSON at line 1, column 12: ", 0),
                  0u)
            << message;
        EXPECT_EQ(message.find("json.exception"), std::string::npos) << message;
    }
    try {
        Tokenizer::from_json("[1, 2]", "list.json");
        FAIL() << "no error";
    } catch (const l2a::Error& error) {
        EXPECT_EQ(std::string(error.what()).rfind("list.json: ", 0), 0u) << error.what();
    }
}

TEST(TokenizerErrors, UnsupportedParts) {
    Json json = small_tokenizer();
    json["model"]["type"] = "WordPiece";
    expect_error(json, "unsupported model type 'WordPiece'");

    json = small_tokenizer();
    json["normalizer"] = {{"type", "NFKC"}};
    expect_error(json, "unsupported normalizer type 'NFKC'");

    json = small_tokenizer();
    json["normalizer"] = {
        {"type", "Sequence"},
        {"normalizers", Json::array({Json{{"type", "NFC"}}, Json{{"type", "Lowercase"}}})}};
    expect_error(json, "normalizer.normalizers[1]: unsupported normalizer type 'Lowercase'");

    json = small_tokenizer();
    json["pre_tokenizer"] = {{"type", "Whitespace"}};
    expect_error(json, "unsupported pre_tokenizer type 'Whitespace'");

    json = small_tokenizer();
    json["pre_tokenizer"]["add_prefix_space"] = true;
    expect_error(json, "add_prefix_space");

    json = small_tokenizer();
    json["pre_tokenizer"] = {{"type", "Split"},
                             {"pattern", {{"Regex", "\\s+"}}},
                             {"behavior", "Isolated"},
                             {"invert", false}};
    expect_error(json, "has no ByteLevel step");

    json = small_tokenizer();
    json["pre_tokenizer"] = nullptr;
    expect_error(json, "pre_tokenizer");

    json = small_tokenizer();
    json["decoder"] = {{"type", "WordPiece"}};
    expect_error(json, "unsupported decoder type 'WordPiece'");

    json = small_tokenizer();
    json["model"]["dropout"] = 0.1;
    expect_error(json, "dropout");

    json = small_tokenizer();
    json["model"]["byte_fallback"] = true;
    expect_error(json, "byte_fallback");
}

TEST(TokenizerErrors, BadPattern) {
    Json json = small_tokenizer();
    json["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers", Json::array({Json{{"type", "Split"},
                                            {"pattern", {{"Regex", "(unclosed"}}},
                                            {"behavior", "Isolated"},
                                            {"invert", false}},
                                       json["pre_tokenizer"]})}};
    expect_error(json, "cannot compile the regular expression '(unclosed'");
    json["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Regex", "a"}};
    json["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways";
    expect_error(json, "unknown split behavior 'Sideways'");
}

TEST(TokenizerErrors, MergesReferringToUnknownTokens) {
    Json json = small_tokenizer();
    json["model"]["merges"] = Json::array({"b c", "a d"});
    expect_error(json,
                 "model.merges[1]: merge 'a d' refers to 'd', which is not in the vocabulary");

    json["model"]["merges"] = Json::array({"b c", "c a"});  // "ca" is not a token
    expect_error(json, "refers to 'ca'");

    json["model"]["merges"] = Json::array({"a b c"});
    expect_error(json, "model.merges[0]: 'a b c' is not two tokens separated by one space");

    json["model"]["merges"] = Json::array({Json::array({"a"})});
    expect_error(json, "model.merges[0]");
}

TEST(TokenizerErrors, BadVocabularyAndAddedTokens) {
    Json json = small_tokenizer();
    json["model"]["vocab"]["d"] = "seven";
    expect_error(json, "expected an integer token id");

    json = small_tokenizer();
    json["model"]["vocab"]["d"] = 2;
    expect_error(json, "id 2 is used by both");

    json = small_tokenizer();
    json["model"]["vocab"]["d"] = 1LL << 40;
    expect_error(json, "out of range");

    json = small_tokenizer();
    json.erase("model");
    expect_error(json, "missing \"model\"");

    // Added tokens are numbered after the model's tokens, counted (as HF does); a vocabulary
    // with a gap makes that collide.
    json = small_tokenizer();
    json["model"]["vocab"]["abc"] = 6;
    json["model"]["merges"] = Json::array({"b c"});
    expect_error(json, "which the model gives to 'abc'");

    json = small_tokenizer();
    json["added_tokens"][0]["content"] = "";
    expect_error(json, "added_tokens[0]");

    json = small_tokenizer();
    json["model"]["unk_token"] = "<unk>";
    expect_error(json, "model.unk_token: '<unk>' is not in the vocabulary");
}

// ---- NFC alignment --------------------------------------------------------------------------

// For every code point, alone and among combining marks: the text is ICU's NFC and every output
// byte maps to exactly one original character (HF's alignment), never to a whole segment.
TEST(TokenizerNfc, EveryCodePointNormalizesWithCharacterAlignment) {
    std::size_t checked = 0;
    for (char32_t cp = 0x80; cp < 0x110000; ++cp) {
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            continue;
        }
        std::string single;
        l2a::unicode::append_utf8(single, cp);
        for (const std::string& text :
             {single, single + "\xCC\x81", "A" + single + "\xCC\xA3\xCC\x81"}) {
            l2a::unicode::AlignedText aligned;
            l2a::unicode::append_nfc(text, 5, aligned);
            ASSERT_EQ(aligned.text, l2a::unicode::nfc(text))
                << "U+" << std::hex << static_cast<unsigned>(cp);
            ASSERT_EQ(aligned.origin.size(), aligned.text.size());
            std::vector<l2a::unicode::ByteSpan> chars;
            for (std::size_t pos = 0; pos < text.size();) {
                const std::size_t start = pos;
                l2a::unicode::next_code_point(text, pos);
                chars.emplace_back(5 + start, 5 + pos);
            }
            for (const auto& span : aligned.origin) {
                ASSERT_NE(std::find(chars.begin(), chars.end(), span), chars.end())
                    << "U+" << std::hex << static_cast<unsigned>(cp) << " maps to [" << std::dec
                    << span.first << ", " << span.second << ")";
            }
            ++checked;
        }
    }
    EXPECT_GT(checked, 3000000u);
}

TEST(TokenizerNfc, ComposedCharacterTakesFirstOriginal) {
    l2a::unicode::AlignedText aligned;
    l2a::unicode::append_nfc("cafe\xCC\x81 x", 0, aligned);  // e + U+0301 -> é
    EXPECT_EQ(aligned.text, "caf\xC3\xA9 x");
    const std::vector<l2a::unicode::ByteSpan> expected{{0, 1}, {1, 2}, {2, 3}, {3, 4},
                                                       {3, 4}, {6, 7}, {7, 8}};
    EXPECT_EQ(aligned.origin, expected);
}

// ---- speed and threads ---------------------------------------------------------------------

std::string megabyte_of_text() {
    std::mt19937 rng(7);
    const std::vector<std::string> pieces = {
        "The router sends a fraction of the tokens to global attention. ",
        "It's what they'll measure: 128K tokens, 36 layers, 2.5% global.\n",
        "\xE4\xBB\x8A\xE5\xA4\xA9\xE5\xA4\xA9\xE6\xB0\x94\xE5\xBE\x88\xE5\xA5\xBD\xE3\x80\x82",
        "    for (int i = 0; i < n; ++i) { sum += x[i]; }\n",
        "\xF0\x9F\x98\x80 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD ",
        "cafe\xCC\x81 ",
        "\t\t  \n\n",
        "<|im_start|>user\n",
        "<|im_end|>\n",
        "31415926535897932384626433 ",
    };
    std::string text;
    while (text.size() < (1u << 20)) {
        text += pieces[rng() % pieces.size()];
        if (rng() % 50 == 0) {
            text += random_text(rng, 20);
        }
    }
    return text;
}

TEST(TokenizerSpeed, EncodesAMegabyteQuickly) {
    const Tokenizer tokenizer = qwen_style();
    const std::string text = megabyte_of_text();
    const auto start = std::chrono::steady_clock::now();
    const Encoding encoding = tokenizer.encode(text);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "encoded " << text.size() << " bytes into " << encoding.ids.size() << " tokens in "
              << seconds << " s\n";
    EXPECT_LT(seconds, 2.0 * slowdown);
    EXPECT_GT(encoding.ids.size(), text.size() / 8);
    EXPECT_EQ(tokenizer.decode(encoding.ids), l2a::unicode::nfc(text));
}

TEST(TokenizerSpeed, LongRunsAreNotQuadratic) {
    const Tokenizer tokenizer = qwen_style();
    for (const std::string& run :
         {std::string(1 << 20, ' '), std::string(1 << 19, '='), std::string(1 << 19, 'a')}) {
        const auto start = std::chrono::steady_clock::now();
        const Encoding encoding = tokenizer.encode(run + "x");
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        EXPECT_LT(seconds, 3.0 * slowdown) << run.substr(0, 1);
        EXPECT_EQ(tokenizer.decode(encoding.ids), run + "x");
    }
}

TEST(TokenizerThreads, ConcurrentEncodesAgree) {
    const Tokenizer tokenizer = qwen_style();
    std::mt19937 rng(3);
    std::string text;
    for (int i = 0; i < 200; ++i) {
        text += random_text(rng, 30) + " <|im_end|> It's 2024. ";
    }
    const Encoding reference = tokenizer.encode(text);
    std::vector<Encoding> results(4);
    std::vector<std::thread> threads;
    for (auto& result : results) {
        threads.emplace_back([&] { result = tokenizer.encode(text); });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    for (const Encoding& result : results) {
        EXPECT_EQ(result.ids, reference.ids);
        EXPECT_EQ(result.offsets, reference.offsets);
    }
}

}  // namespace
