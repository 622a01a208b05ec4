// Long documents with long-range dependencies, for training and measuring L2A routing: facts
// stated early (keys and their values, defined terms, numbered sections) and used much later,
// and passages repeated verbatim far apart. Every place where the text can only be predicted
// by looking far back is recorded as a reference span, so that routing and loss can be measured
// on exactly those bytes. Deterministic for a seed; torch-free.
//
// Two styles: "synthetic" (keys with code values, defined made-up words, numbered claims and
// passages of made-up syllables; the demo model is trained on these) and "handbook" (plain
// English prose of a technical handbook for an imaginary workplace: defined terms restated
// later, named parts with part numbers, ratings, rooms and keepers recalled later, numbered
// sections cited later by number and title, and warnings repeated verbatim).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace l2a {

enum class SyntheticDocStyle { synthetic, handbook };

// "synthetic" or "handbook"; nullopt for anything else.
std::optional<SyntheticDocStyle> parse_synthetic_doc_style(std::string_view name);
const char* synthetic_doc_style_name(SyntheticDocStyle style);

struct SyntheticDocOptions {
    std::size_t target_bytes = 8192;  // about this long (byte-level: about this many tokens)
    std::uint64_t seed = 1;
    // A reference is at least this many bytes after what it refers to, so that a sliding
    // window of fewer bytes cannot see both.
    std::size_t min_distance = 1536;
    // Dense: no filler, recalls whenever a fact is old enough (most facts are recalled, and a
    // fifth or more of the text can only be predicted by looking back). For a first training
    // stage that teaches a model to look back at all; evaluation documents use the default mix.
    bool dense = false;
    // Natural text to interleave (chunks of a few hundred bytes, taken in order, wrapping);
    // empty: generated filler only.
    std::vector<std::string> mix_texts;
    // synthetic: as the demo model was trained on (the default; its output for a seed stays
    // byte for byte what it has been). handbook: English handbook prose, same reference kinds.
    SyntheticDocStyle style = SyntheticDocStyle::synthetic;
};

// One long-range dependency: the bytes [begin, end) of the text repeat or complete what
// [source_begin, source_end) stated earlier.
struct ReferenceSpan {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::size_t source_begin = 0;
    std::size_t source_end = 0;
    std::string kind;  // "key", "term", "section", "repeat"
    // Handbook documents: the reference's bytes equal the source's for every kind ("key": a
    // part number, rating, room or keeper of a named part; "term": a term's definition;
    // "section": a section's title or number; "repeat": the rest of a repeated warning).
};

struct SyntheticDoc {
    std::string text;  // valid UTF-8
    std::vector<ReferenceSpan> references;
};

SyntheticDoc make_synthetic_doc(const SyntheticDocOptions& options);

// Every word a handbook-style document may contain (lowercase, letters only), besides part
// numbers such as "P-4471" and plain numbers; mixed-in texts (mix_texts) are not counted.
const std::set<std::string>& handbook_vocabulary();

// The sidecar of a document: {"bytes": N, "seed": S, "references": [{"kind", "begin", "end",
// "source_begin", "source_end"}, ...]} (byte offsets into the .txt).
std::string synthetic_doc_sidecar_json(const SyntheticDoc& doc, std::uint64_t seed);

}  // namespace l2a
