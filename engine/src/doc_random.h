// The random stream of the document generators (synthetic_docs.cpp, handbook_docs.cpp):
// SplitMix64, the same on every machine. Private to the engine.
#pragma once

#include <cstddef>
#include <cstdint>

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

}  // namespace l2a
