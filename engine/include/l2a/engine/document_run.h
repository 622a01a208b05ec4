// One document through a model into a Profile: what `l2a run`, `l2a whatif` and the desktop app
// share between reading the input and showing the result.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "l2a/engine/model.h"
#include "l2a/engine/prefill.h"
#include "l2a/engine/profile.h"
#include "l2a/engine/run_options.h"
#include "l2a/engine/tokenizer.h"
#include "l2a/engine/whatif.h"

namespace l2a {

// A document as the model sees it: its text and every token's byte span in it.
struct TokenizedDocument {
    std::string label;  // the file as the user named it, or "<demo document>"
    std::string text;   // valid UTF-8
    std::size_t replaced_sequences = 0;
    std::vector<std::int32_t> ids;
    std::vector<std::uint32_t> begin;           // [T] byte offsets into text
    std::vector<std::uint32_t> end;             // [T]
    std::int64_t tokens_before_truncation = 0;  // = ids.size() unless truncate() cut it
    // false when only the beginning of the file was read (load_tokenized_document): then
    // tokens_before_truncation is a lower bound, the tokens of the part read.
    bool counted_all = true;
    std::uint64_t file_bytes = 0;  // the file's size (regular files), else the bytes read
    std::uint64_t bytes_read = 0;  // how much of it was tokenized
};

// `text` must be valid UTF-8 (load_document and sanitize_utf8 make it so).
TokenizedDocument tokenize_document(std::string label, std::string text,
                                    std::size_t replaced_sequences, const Tokenizer& tokenizer);

// Reads the document at `path` and tokenizes no more of it than `max_tokens` tokens need (0:
// all of it): the beginning of a long file is read in growing steps and cut where the
// tokenizer's pre-tokenization is known to split (after a line break followed by text, or
// between two words), so that its tokens are exactly the first tokens of the whole file. The
// result holds every token of the part read (counted_all false when that is not the whole
// file); truncate() then keeps max_tokens. Errors as load_document.
TokenizedDocument load_tokenized_document(const std::filesystem::path& path, std::string label,
                                          const Tokenizer& tokenizer, std::int64_t max_tokens);

// Keeps the first `max_tokens` tokens (0: all) and the text they cover; records how many there
// were before.
void truncate(TokenizedDocument& document, std::int64_t max_tokens);

// The Profile of a finished run of `document` on `model` (metrics computed, created_at and
// tool_version stamped). The kernel timeline is left empty for the caller's tracer to fill;
// timeline_source says "host timers only: CPU run" on the CPU and "host timers only" otherwise.
Profile make_profile(const Model& model, TokenizedDocument document, const RunOptions& options,
                     PrefillResult result);

// A what-if variant of `base` as a Profile: the base's document and tokens, the variant's rows,
// options, metrics, ranges and measured time (time to first token).
Profile make_variant_profile(const Profile& base, const WhatIfRun& variant);

// "2026-11-22T10:00:00Z" and the tool's version, as profiles record them.
std::string utc_now_iso8601();
std::string tool_version();

}  // namespace l2a
