// The random stream of the document generators (synthetic_docs.cpp, handbook_docs.cpp):
// SplitMix64, the same on every machine, and their cursor in the texts they interleave. Private
// to the engine.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "splitmix.h"

namespace l2a {

class DocRandom {
public:
    // The seed goes through the mixing function first: with a plain multiple of the increment,
    // seeds S and S + 1 would give the same stream shifted by one draw (nearly the same
    // documents), and a model trained on such documents memorizes instead of looking back.
    explicit DocRandom(std::uint64_t seed) : state_(splitmix_mix(seed + 0x632BE59BD9B4E019ull)) {}
    std::uint64_t next() { return splitmix64(state_); }
    std::size_t below(std::size_t n) { return n ? static_cast<std::size_t>(next() % n) : 0; }
    template <typename T, std::size_t N>
    const T& pick(const T (&items)[N]) {
        return items[below(N)];
    }

private:
    std::uint64_t state_;
};

// Where the generators are in the natural texts they interleave (SyntheticDocOptions::mix_texts):
// the next chunk of a few hundred bytes, taken in order and cut at a line or word boundary, or
// nothing when the current text is used up (the next call starts the next text, wrapping). The
// first chunk starts at a place drawn from the document's seed.
class MixCursor {
public:
    std::optional<std::string> next(const std::vector<std::string>& texts, DocRandom& r) {
        if (!started_) {
            // Each document starts at its own place (a line start, else a word start, drawn from
            // its seed): from the first byte, every document would carry the same passage, which
            // a model memorizes.
            started_ = true;
            index_ = r.below(texts.size());
            const std::string& first = texts[index_];
            const std::size_t at = r.below(first.size());
            std::size_t line = first.find('\n', at), word = first.find(' ', at);
            offset_ = line != std::string::npos   ? line + 1
                      : word != std::string::npos ? word + 1
                                                  : 0;
        }
        const std::string& source = texts[index_ % texts.size()];
        if (offset_ >= source.size()) {
            offset_ = 0;
            ++index_;
            return std::nullopt;
        }
        std::size_t end = std::min(source.size(), offset_ + 200 + r.below(300));
        while (end < source.size() && source[end] != ' ' && source[end] != '\n') ++end;
        std::string chunk = source.substr(offset_, end - offset_);
        // Keep the document valid UTF-8: stop before a cut multi-byte character.
        while (!chunk.empty() && (static_cast<unsigned char>(chunk.back()) & 0x80))
            chunk.pop_back();
        offset_ = end;
        return chunk;
    }

private:
    bool started_ = false;
    std::size_t index_ = 0;
    std::size_t offset_ = 0;
};

}  // namespace l2a
