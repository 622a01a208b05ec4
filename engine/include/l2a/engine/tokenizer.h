// HuggingFace tokenizer.json for byte-level BPE as used by Qwen2/2.5/3 (and our byte-level demo
// vocabulary): normalizer, Split pre-tokenizer regex (Unicode classes), ByteLevel mapping,
// BPE merges, added and special tokens. Offsets are byte ranges in the input text.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace l2a {

struct Encoding {
    std::vector<std::int32_t> ids;
    // Byte range [begin, end) of each token in the encoded text (UTF-8 bytes).
    std::vector<std::pair<std::uint32_t, std::uint32_t>> offsets;
};

class Tokenizer {
public:
    // Throws l2a::Error naming the file for unreadable, malformed or unsupported tokenizers
    // (unknown model type, normalizer or pre-tokenizer).
    static Tokenizer from_file(const std::filesystem::path& tokenizer_json);
    static Tokenizer from_json(std::string_view json_text, std::string_view origin);

    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;
    ~Tokenizer();

    // `text` must be valid UTF-8 (see document.h). Added/special tokens that occur in the text
    // are matched as single tokens, as HF does with encode(text, add_special_tokens=False).
    // Throws l2a::Error when `text` is not valid UTF-8. Safe to call from several threads.
    Encoding encode(std::string_view text) const;
    // The bytes the ids stand for (byte-level tokens mapped back through GPT-2's byte table).
    // Exact, so that decode(encode(t).ids) is t after normalization; ids that split a character
    // give a partial UTF-8 sequence at that end. Ids without a token are skipped, as HF does.
    std::string decode(const std::vector<std::int32_t>& ids, bool skip_special = false) const;
    // The token's text as shown to a user (bytes decoded; may be a partial UTF-8 sequence,
    // which is rendered with U+FFFD).
    std::string token_text(std::int32_t id) const;
    std::optional<std::int32_t> token_to_id(std::string_view token) const;
    std::int64_t vocab_size() const;  // largest id + 1, added tokens included

private:
    struct Impl;
    explicit Tokenizer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace l2a
