// The embedded default: the trained demo model shipped with the tool (assets/models/l2a-demo, a
// small byte-level L2A Qwen3; its model card is the README there) and a generated demo document
// of the kind it was trained on. Also a deterministic untrained model of the same shape (random
// weights, labelled untrained) for tests and fixtures.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace l2a {

// Where the demo model may be, in order: $L2A_DEMO_DIR alone when it is set; else
// <executable's folder>/../share/l2a-studio/models/l2a-demo (an installed tool) and the source
// tree's assets/models/l2a-demo (a build tree).
std::vector<std::filesystem::path> demo_model_candidates();

// The first candidate that holds a config.json (the last candidate when none does).
std::filesystem::path demo_model_dir();

// demo_model_dir(), checked: throws l2a::Error naming the folders looked in when the model is
// missing.
std::filesystem::path require_demo_model();

// Creates an untrained L2A model of the demo model's shape (config.json, model.safetensors,
// tokenizer.json) in `dir` unless it is already there and complete; written atomically
// (temporary folder renamed). Returns `dir`. The weights depend only on a fixed seed: every
// machine gets the same bytes. Its config.json says "l2a_untrained": true.
std::filesystem::path ensure_untrained_model(const std::filesystem::path& dir);

// A byte-level tokenizer.json in HuggingFace's format: ids 0..255 are the bytes (GPT-2's
// byte-to-unicode symbols, no merges, no regex split), then <|endoftext|> 256, <|im_start|> 257,
// <|im_end|> 258. The demo models and `l2a make-docs --tokenizer-out` use it; HuggingFace
// `tokenizers` loads it and encodes every text to its UTF-8 bytes, as our tokenizer does.
std::string byte_level_tokenizer_json();

// The demo document: a generated handbook in English (l2a make-docs --style handbook, a fixed seed
// of its own) of about `approx_bytes` bytes: defined terms, named parts with part numbers,
// ratings, rooms and keepers, and numbered sections, all recalled far later, and warnings
// repeated verbatim. Deterministic.
std::string demo_document(std::size_t approx_bytes = 8192);

}  // namespace l2a
