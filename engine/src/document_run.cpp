#include "l2a/engine/document_run.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string_view>
#include <utility>

#include "l2a/engine/document.h"
#include "l2a/engine/error.h"
#include "l2a/engine/metrics.h"
#include "l2a/engine/tensor_parallel.h"
#include "l2a/engine/units.h"

#ifndef L2A_VERSION
#define L2A_VERSION "unknown"
#endif

namespace l2a {

TokenizedDocument tokenize_document(std::string label, std::string text,
                                    std::size_t replaced_sequences, const Tokenizer& tokenizer) {
    TokenizedDocument doc;
    doc.label = std::move(label);
    doc.text = std::move(text);
    doc.replaced_sequences = replaced_sequences;
    Encoding encoding = tokenizer.encode(doc.text);
    doc.ids = std::move(encoding.ids);
    doc.begin.reserve(doc.ids.size());
    doc.end.reserve(doc.ids.size());
    for (const auto& [b, e] : encoding.offsets) {
        doc.begin.push_back(static_cast<std::uint32_t>(b));
        doc.end.push_back(static_cast<std::uint32_t>(e));
    }
    doc.tokens_before_truncation = static_cast<std::int64_t>(doc.ids.size());
    return doc;
}

namespace {

bool ascii_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// The last position in `text` (0: none) before which the byte-level pre-tokenizers split
// whatever follows: right after a line break that is followed by a character that is not
// whitespace, or between a letter and " word". A piece of the pre-tokenizer never spans such a
// point, so the tokens before it do not depend on what comes after.
std::size_t last_safe_cut(std::string_view text) {
    if (text.size() < 2) return 0;
    for (std::size_t i = text.size() - 1; i >= 1; --i) {
        const unsigned char next = static_cast<unsigned char>(text[i]);
        if (text[i - 1] == '\n' && next >= 0x21 && next != 0x7F) return i;
        if (text[i] == ' ' && i + 1 < text.size() && ascii_letter(text[i - 1]) &&
            ascii_letter(text[i + 1])) {
            return i;
        }
    }
    return 0;
}

}  // namespace

TokenizedDocument load_tokenized_document(const std::filesystem::path& path, std::string label,
                                          const Tokenizer& tokenizer, std::int64_t max_tokens) {
    // Text runs about four bytes per token; sixteen leaves room, and each retry reads four
    // times more, up to the whole file.
    std::uint64_t budget =
        max_tokens > 0 ? std::max<std::uint64_t>(std::uint64_t{1} << 16,
                                                 static_cast<std::uint64_t>(max_tokens) * 16)
                       : 0;
    for (;;) {
        Document document = load_document(path, budget);
        if (document.complete) {
            TokenizedDocument doc = tokenize_document(std::move(label), std::move(document.text),
                                                      document.replaced_sequences, tokenizer);
            doc.file_bytes = document.file_bytes;
            doc.bytes_read = document.file_bytes;
            return doc;
        }
        const std::size_t cut = last_safe_cut(document.text);
        if (cut > 0) {
            const std::uint64_t cut_in_file = file_offset(document, cut);
            document.text.resize(cut);
            TokenizedDocument doc = tokenize_document(label, std::move(document.text),
                                                      document.replaced_sequences, tokenizer);
            if (static_cast<std::int64_t>(doc.ids.size()) > max_tokens) {
                doc.counted_all = false;
                doc.file_bytes = document.file_bytes;
                doc.bytes_read = cut_in_file;
                return doc;
            }
        }
        if (budget >= kMaxDocumentBytes / 4) {
            budget = 0;  // the whole file
        } else {
            budget *= 4;
        }
    }
}

void truncate(TokenizedDocument& doc, std::int64_t max_tokens) {
    const auto tokens = static_cast<std::int64_t>(doc.ids.size());
    doc.tokens_before_truncation = std::max(doc.tokens_before_truncation, tokens);
    if (max_tokens <= 0 || tokens <= max_tokens) return;
    const auto keep = static_cast<std::size_t>(max_tokens);
    doc.ids.resize(keep);
    if (doc.begin.size() > keep) doc.begin.resize(keep);
    if (doc.end.size() > keep) doc.end.resize(keep);
    // The text beyond the last kept token is not part of the run.
    if (!doc.text.empty() && !doc.end.empty()) doc.text.resize(doc.end.back());
}

Profile make_profile(const Model& model, TokenizedDocument document, const RunOptions& options,
                     PrefillResult result) {
    const auto num_tokens = static_cast<std::int64_t>(document.ids.size());
    Profile profile;
    profile.model = model.summary();
    profile.document_path = std::move(document.label);
    profile.document_text = std::move(document.text);
    profile.replaced_sequences = document.replaced_sequences;
    profile.tokens_before_truncation = std::max(document.tokens_before_truncation, num_tokens);
    profile.token_ids = std::move(document.ids);
    profile.token_begin = std::move(document.begin);
    profile.token_end = std::move(document.end);
    profile.num_layers = result.num_layers;
    profile.router_logits = std::move(result.router_logits);
    profile.decisions = std::move(result.decisions);
    profile.token_nll = std::move(result.token_nll);
    profile.options = options;
    profile.metrics = compute_metrics(whole_config(model), options, num_tokens, profile.decisions,
                                      profile.token_nll);
    profile.ranges = std::move(result.ranges);
    profile.wall_seconds = result.wall_seconds;
    profile.cpu_threads = cpu_threads();
    profile.device = std::move(result.device);
    profile.dtype = model.placement().dtype;
    profile.peak_device_bytes = result.peak_device_bytes;
    profile.timeline_source =
        is_cpu_device(options.device) ? "host timers only: CPU run" : "host timers only";
    profile.created_at = utc_now_iso8601();
    profile.tool_version = tool_version();
    return profile;
}

Profile make_variant_profile(const Profile& base, const WhatIfRun& run) {
    Profile v = base;
    v.router_logits = run.result.router_logits;
    v.decisions = run.result.decisions;
    v.token_nll = run.result.token_nll;
    v.options = run.options;
    v.metrics = run.metrics;
    v.ranges = run.result.ranges;
    // The variant ran in this process; a tensor-parallel run gathers the other ranks' ranges
    // (and sets the number of processes) after this.
    v.tensor_parallel = 1;
    v.kernels.clear();
    v.memory_ops.clear();
    v.timeline_source =
        "host timers only: what-if re-run from layer " + std::to_string(run.start_layer);
    v.device = run.result.device;
    v.peak_device_bytes = run.result.peak_device_bytes;
    v.cpu_threads = cpu_threads();
    if (run.start_layer > 0) {
        // Not one measured run: the base's time for the layers reused plus the re-run's.
        v.wall_seconds = run.reused_base_seconds + run.run_seconds;
        v.time_basis = "what-if: layers 0-" + std::to_string(run.start_layer - 1) +
                       " reused from the base run (" + format_duration(run.reused_base_seconds) +
                       ") + re-run from layer " + std::to_string(run.start_layer) + " (" +
                       format_duration(run.run_seconds) + ")";
    } else {
        v.wall_seconds = run.run_seconds;
        v.time_basis.clear();
    }
    v.created_at = utc_now_iso8601();
    v.tool_version = tool_version();
    return v;
}

std::string utc_now_iso8601() {
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return buffer;
}

std::string tool_version() { return L2A_VERSION; }

}  // namespace l2a
