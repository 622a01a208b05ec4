// The embedded default: a small L2A model created deterministically on first use (random
// weights, labelled untrained) and a generated demo document.
#pragma once

#include <filesystem>
#include <string>

namespace l2a {

// Where the demo model lives: $L2A_DEMO_DIR, else $XDG_CACHE_HOME/l2a-studio/..., else
// ~/.cache/l2a-studio/... (versioned folder name).
std::filesystem::path demo_model_dir();

// Creates the demo model folder (config.json, model.safetensors, tokenizer.json) unless it is
// already there and complete; written atomically (temporary folder renamed). Returns its path.
// The weights depend only on a fixed seed: every machine gets the same bytes.
std::filesystem::path ensure_demo_model(const std::filesystem::path& dir = demo_model_dir());

// A byte-level tokenizer.json in HuggingFace's format: ids 0..255 are the bytes (GPT-2's
// byte-to-unicode symbols, no merges, no regex split), then <|endoftext|> 256, <|im_start|> 257,
// <|im_end|> 258. The demo model and `l2a make-docs --tokenizer-out` use it; HuggingFace
// `tokenizers` loads it and encodes every text to its UTF-8 bytes, as our tokenizer does.
std::string byte_level_tokenizer_json();

// A generated English document with numbered sections, early definitions and later references
// (about `approx_bytes` long, deterministic).
std::string demo_document(std::size_t approx_bytes = 6000);

}  // namespace l2a
