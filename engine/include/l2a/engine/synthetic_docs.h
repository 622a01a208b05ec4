// Long documents with long-range dependencies, for training and measuring L2A routing: facts
// stated early (keys and their values, defined terms, numbered sections) and used much later,
// and passages repeated verbatim far apart. Every place where the text can only be predicted
// by looking far back is recorded as a reference span, so that routing and loss can be measured
// on exactly those bytes. Deterministic for a seed; torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace l2a {

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
};

// One long-range dependency: the bytes [begin, end) of the text repeat or complete what
// [source_begin, source_end) stated earlier.
struct ReferenceSpan {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::size_t source_begin = 0;
    std::size_t source_end = 0;
    std::string kind;  // "key", "term", "section", "repeat"
};

struct SyntheticDoc {
    std::string text;  // valid UTF-8
    std::vector<ReferenceSpan> references;
};

SyntheticDoc make_synthetic_doc(const SyntheticDocOptions& options);

// The sidecar of a document: {"bytes": N, "seed": S, "references": [{"kind", "begin", "end",
// "source_begin", "source_end"}, ...]} (byte offsets into the .txt).
std::string synthetic_doc_sidecar_json(const SyntheticDoc& doc, std::uint64_t seed);

}  // namespace l2a
