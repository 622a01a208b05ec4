// L2A attention on the GPU: routed-query compaction, conditional global attention and
// sliding-window attention. A C++ API of device pointers, sizes, strides and a stream; no
// tensor library. Every function validates its arguments on the host and checks its launches;
// failures throw KernelError. Nothing here synchronizes the stream.
//
// Layout conventions (see kernels/README.md):
// - Q, K, V and O are [tokens, heads, head_dim] with head_dim contiguous; token and head strides
//   are given in elements, must be multiples of 8, and every base pointer must be 16-byte
//   aligned (tiles move in 16-byte chunks).
// - LSE (natural-log sum of exp of the scaled scores) is fp32 [q_heads, tokens], contiguous:
//   lse[h * tokens + t]. It may be null when the caller does not need it.
// - Routed positions are int32 token indices in strictly increasing order (the Hopper path reads
//   each block's key range from its first and last rows); the routed count is one int32
//   that lives on the device, so no host synchronization is needed between routing and
//   attention.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace l2a::kernels {

// The one error type of the kernels module: which function or kernel, and what went wrong.
class KernelError : public std::runtime_error {
public:
    explicit KernelError(const std::string& message) : std::runtime_error(message) {}
};

enum class ElementType { bf16, fp16 };

// A read-only [tokens, heads, head_dim] tensor on the device.
struct ConstTokenHeadTensor {
    const void* data = nullptr;
    int64_t token_stride = 0;  // elements between token t and t+1
    int64_t head_stride = 0;   // elements between head h and h+1
};

// A writable [tokens, heads, head_dim] tensor on the device.
struct TokenHeadTensor {
    void* data = nullptr;
    int64_t token_stride = 0;
    int64_t head_stride = 0;
};

struct AttentionShape {
    int64_t tokens = 0;  // T: sequence length, at most INT32_MAX
    int q_heads = 0;     // Hq
    int kv_heads = 0;    // Hkv; Hq must be a multiple of it (q head h reads kv head h / (Hq/Hkv))
    int head_dim = 0;    // D: 64 or 128
    ElementType element_type = ElementType::bf16;  // of Q, K, V and O
};

// The name of the last kernel the calling thread launched through this module (for example
// "attention_sm90_kernel<bf16, D=128, routed queries, causal keys, paired>"), or "" before the
// first and after an attention call that launched nothing: which kernel variant a call chose,
// for tests and diagnostics.
std::string last_kernel_launched();

// ---- routed-query compaction --------------------------------------------------------------

// Device scratch bytes that compact_routed_queries needs for `tokens` decisions.
size_t routed_compaction_workspace_bytes(int64_t tokens);

// decisions: uint8 [tokens] on the device, nonzero = routed to global attention.
// Writes the routed token indices in increasing order to positions[0 .. count) (positions must
// hold `tokens` entries; entries past the count are left as they were) and the count to
// *count, both on the device.
void compact_routed_queries(const uint8_t* decisions, int64_t tokens, int32_t* positions,
                            int32_t* count, void* workspace, size_t workspace_bytes,
                            cudaStream_t stream);

// ---- attention ----------------------------------------------------------------------------

// Global (full causal) attention for the routed queries only. The routed query at position p
// attends keys 0..p with scale 1/sqrt(D). K and V are [T, Hkv, D] for every token.
// - packed = false: Q is the full [T, Hq, D] projection (rows of unrouted tokens are never read)
//   and row p of O (all heads) is written for routed p only; other rows are left as they were.
// - packed = true: Q and O hold the routed queries only, in routing order: row i is the routed
//   query at routed_positions[i] (Q and O need `count` rows; the engine projects only those).
// In both modes lse[h * T + p] is written for routed p only.
struct GlobalAttentionArgs {
    AttentionShape shape;
    ConstTokenHeadTensor q;
    ConstTokenHeadTensor k;
    ConstTokenHeadTensor v;
    TokenHeadTensor out;
    float* lse = nullptr;                       // optional, [Hq, T]
    const int32_t* routed_positions = nullptr;  // device, [count], increasing
    const int32_t* routed_count = nullptr;      // device, one value in [0, T]
    bool packed = false;                        // Q and O rows indexed by routed index
};
void global_attention_forward(const GlobalAttentionArgs& args, cudaStream_t stream);

// Sliding-window attention for every query: token t attends keys max(0, t-W+1) .. t.
// W >= 1; W >= T is plain causal attention. O and LSE are written for every token.
struct SlidingWindowAttentionArgs {
    AttentionShape shape;
    ConstTokenHeadTensor q;
    ConstTokenHeadTensor k;
    ConstTokenHeadTensor v;
    TokenHeadTensor out;
    float* lse = nullptr;  // optional, [Hq, T]
    int64_t window = 0;    // W
    // Only the LSEs are wanted (lse required): where the Hopper kernel runs it computes them
    // alone (no P V, about half the matrix products) and leaves `out` as it was; the mma.sync
    // path writes `out` as well. Either way `out` must be a valid tensor.
    bool lse_only = false;
};
void sliding_window_attention_forward(const SlidingWindowAttentionArgs& args, cudaStream_t stream);

}  // namespace l2a::kernels
