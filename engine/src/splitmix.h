// SplitMix64: a small, portable generator (the standard library's distributions differ between
// implementations, and seeded results must be the same on every machine). Private to the engine.
#pragma once

#include <cstdint>

namespace l2a {

// The output function: a bijective mix of 64 bits.
inline std::uint64_t splitmix_mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

inline std::uint64_t splitmix64(std::uint64_t& state) {
    return splitmix_mix(state += 0x9E3779B97F4A7C15ull);
}

}  // namespace l2a
