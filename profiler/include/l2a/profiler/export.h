// A Profile in the formats people already use: Chrome Trace Event JSON (Perfetto,
// chrome://tracing), CSV tables and a self-contained HTML report. The `to_*` functions build the
// text; the `export_*` functions write it atomically (temporary file + rename) and throw
// l2a::Error naming the file.
#pragma once

#include <filesystem>
#include <string>

#include "l2a/engine/profile.h"

namespace l2a {

// ---- Chrome Trace Event JSON ----------------------------------------------------------------
// Host ranges as complete ("X") events on a host track, kernels and memory operations on one
// track per GPU stream, a counter track ("C") of the routed fraction per layer, and process and
// thread names ("M"). Timestamps in microseconds since the start of the run. Every track is
// properly nested: an event that would partly overlap another of its track (which the engine's
// ranges and one stream's kernels never do) goes to an extra "(overlap)" track instead.
std::string profile_to_chrome_trace(const Profile& profile);
void export_chrome_trace(const Profile& profile, const std::filesystem::path& path);

// ---- CSV (RFC 4180: CRLF line ends, fields with commas, quotes or line breaks quoted) -------
// Per layer: layer, global_fraction, routed_tokens, tokens, pruned, kv_bytes,
// kv_bytes_without_l2a, seconds, local_seconds, router_seconds, global_seconds, mlp_seconds,
// kernels, kernel_seconds, share_of_run. Times are empty when the run recorded none.
std::string profile_layers_csv(const Profile& profile);
// Per token: position, token_id, byte_begin, byte_end, text, nll, routed_layers,
// first_routed_layer, last_routed_layer (empty when the token was routed nowhere).
std::string profile_tokens_csv(const Profile& profile);

// Per token and layer (token-major: every layer of token 0, then token 1, ...): token, layer,
// router_logit, probability, decision. probability = sigmoid(router_logit / sigmoid_temp), the
// engine's definition (its decision rule is probability >= threshold); router_logit and
// probability are empty where the run computed no logit (plain models, base runs). decision
// is 1 where the token ran global attention in the layer, 0 otherwise (always 0 in a pruned
// layer).
std::string profile_routing_csv(const Profile& profile);
inline constexpr const char* kRoutingCsvHeader =
    "token,layer,router_logit,probability,decision,distant_mass";

// The files of `out`: "run.csv" or "run" -> "run.layers.csv", "run.tokens.csv" and
// "run.routing.csv".
struct CsvPaths {
    std::filesystem::path layers;
    std::filesystem::path tokens;
    std::filesystem::path routing;
};
CsvPaths csv_paths(const std::filesystem::path& out);
// Checks the profile, then writes the three files, each atomically.
CsvPaths export_csv(const Profile& profile, const std::filesystem::path& out);

// ---- HTML report -----------------------------------------------------------------------------
// One file, no scripts and no network access: run metadata, layer sparsity chart, token x layer
// routing map (max-pooled to at most kHtmlMapColumns x kHtmlMapRows cells, so that a routed
// token never disappears), time per layer and phase, and the document with its most-routed
// passages highlighted (long documents trimmed around them). With `compare`, a what-if section:
// the change in NLL per token and in decisions per layer from `profile` to `compare`; the two
// must be runs of the same tokens through models with the same number of layers (l2a::Error
// otherwise).
inline constexpr int kHtmlMapColumns = 1200;
inline constexpr int kHtmlMapRows = 64;
std::string profile_to_html(const Profile& profile, const Profile* compare = nullptr);
void export_html(const Profile& profile, const std::filesystem::path& path,
                 const Profile* compare = nullptr);

}  // namespace l2a
