// Tensor parallel: what each rank recorded of a run (its host ranges, GPU kernels and memory
// operations) as bytes that ProcessGroup::all_gather_bytes carries, and the merge of every
// rank's into one Profile, so that a run split across processes (and GPUs) shows one timeline
// with a track per rank and per GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "l2a/engine/profile.h"

namespace l2a {

// This rank's ranges, kernels and memory operations of `profile`, with `started_ns`: the start
// of its run on the steady clock, which the processes of one computer share.
std::vector<std::byte> encode_rank_timeline(const Profile& profile, std::int64_t started_ns);

// Replaces the ranges, kernels and memory operations of `profile` by every rank's (`parts[r]`:
// what encode_rank_timeline gave on rank r): rank 0's first and in their order, so that records
// that index rank 0's ranges still do, then rank 1's, and so on. Each record gets its rank, its
// times move onto rank 0's start, and its range index moves to where its range landed. Sets
// Profile::tensor_parallel to the number of parts. Throws l2a::Error naming the rank whose part
// is damaged.
void merge_rank_timelines(Profile& profile, const std::vector<std::vector<std::byte>>& parts);

}  // namespace l2a
