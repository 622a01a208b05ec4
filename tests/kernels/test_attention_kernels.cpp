// GPU kernels of kernels/ against fp32 CPU references (double accumulation), on fresh random
// inputs. Outputs are poisoned (all-ones bits: NaN in bf16, fp16 and fp32) before each run, so
// the tests see both that every row that should be written was, and that nothing else was.
// Tests that need a GPU skip without one; argument validation runs everywhere.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gpu_test_support.h"
#include "l2a/kernels/attention.h"

namespace l2a::kernels {
namespace {

using namespace test_support;

// ---- routing patterns -----------------------------------------------------------------------

enum class Routing { none, fifth, all, first_only, last_only };

const char* routing_name(Routing routing) {
    switch (routing) {
        case Routing::none:
            return "none";
        case Routing::fifth:
            return "fifth";
        case Routing::all:
            return "all";
        case Routing::first_only:
            return "first";
        case Routing::last_only:
            return "last";
    }
    return "?";
}

std::vector<uint8_t> make_decisions(int64_t tokens, Routing routing, std::mt19937& random) {
    std::vector<uint8_t> decisions(static_cast<size_t>(tokens), 0);
    std::bernoulli_distribution fifth(0.2);
    for (int64_t t = 0; t < tokens; ++t) {
        switch (routing) {
            case Routing::none:
                break;
            case Routing::fifth:
                decisions[t] = fifth(random) ? 1 : 0;
                break;
            case Routing::all:
                decisions[t] = 1;
                break;
            case Routing::first_only:
                decisions[t] = t == 0 ? 1 : 0;
                break;
            case Routing::last_only:
                decisions[t] = t == tokens - 1 ? 1 : 0;
                break;
        }
    }
    // Any nonzero byte means routed, not only 1.
    for (auto& decision : decisions) {
        if (decision != 0) decision = static_cast<uint8_t>(1 + random() % 255);
    }
    return decisions;
}

std::vector<int32_t> routed_positions(const std::vector<uint8_t>& decisions) {
    std::vector<int32_t> positions;
    for (size_t t = 0; t < decisions.size(); ++t) {
        if (decisions[t] != 0) positions.push_back(static_cast<int32_t>(t));
    }
    return positions;
}

// The attention paths the dispatcher can be forced onto through L2A_ATTENTION_PATH.
enum class AttentionPath { mma, wgmma };

const char* path_name(AttentionPath path) { return path == AttentionPath::mma ? "mma" : "wgmma"; }

// Whether the wgmma path must run here: a compute capability 9.x device and a build whose
// CUDA architectures include sm_90a (then the dispatcher has no reason to refuse it).
bool wgmma_path_expected() {
#if defined(L2A_HAVE_SM90A)
    if (!has_cuda_device()) return false;
    int device = 0;
    int major = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return major == 9;
#else
    return false;
#endif
}

// Sets an environment variable (L2A_ATTENTION_PATH, L2A_SM90_PAIRS) for one scope, or unsets it
// (nullptr), and restores the previous value.
class ScopedEnvironment {
public:
    ScopedEnvironment(const char* variable, const char* value) : variable_(variable) {
        const char* previous = std::getenv(variable_);
        had_previous_ = previous != nullptr;
        if (had_previous_) previous_ = previous;
        if (value == nullptr) {
            unsetenv(variable_);
        } else {
            setenv(variable_, value, 1);
        }
    }
    ~ScopedEnvironment() {
        if (had_previous_) {
            setenv(variable_, previous_.c_str(), 1);
        } else {
            unsetenv(variable_);
        }
    }
    ScopedEnvironment(const ScopedEnvironment&) = delete;
    ScopedEnvironment& operator=(const ScopedEnvironment&) = delete;

private:
    const char* variable_;
    bool had_previous_ = false;
    std::string previous_;
};

// Forces the dispatcher onto a path for one scope.
class ScopedAttentionPath : public ScopedEnvironment {
public:
    explicit ScopedAttentionPath(const char* value)
        : ScopedEnvironment("L2A_ATTENTION_PATH", value) {}
};

// ---- compaction -----------------------------------------------------------------------------

struct CompactionCase {
    int64_t tokens;
    Routing routing;
};

std::string compaction_case_name(const testing::TestParamInfo<CompactionCase>& info) {
    return "T" + std::to_string(info.param.tokens) + "_" + routing_name(info.param.routing);
}

using CompactionTest = GpuTest<CompactionCase>;

TEST_P(CompactionTest, MatchesCpuCompaction) {
    const CompactionCase& c = GetParam();
    std::mt19937 random = seeded_random(compaction_case_name({c, 0}));
    const std::vector<uint8_t> decisions = make_decisions(c.tokens, c.routing, random);
    const std::vector<int32_t> expected = routed_positions(decisions);

    DeviceBuffer decisions_device(decisions.size());
    decisions_device.upload(decisions);
    constexpr int32_t kUnwritten = -7;
    const size_t position_slots = static_cast<size_t>(std::max<int64_t>(c.tokens, 1));
    DeviceBuffer positions(position_slots * sizeof(int32_t));
    positions.upload(std::vector<int32_t>(position_slots, kUnwritten));
    DeviceBuffer count(sizeof(int32_t));
    count.upload(std::vector<int32_t>{kUnwritten});
    const size_t workspace_bytes = routed_compaction_workspace_bytes(c.tokens);
    DeviceBuffer workspace(workspace_bytes);

    Stream stream;
    compact_routed_queries(decisions_device.as<uint8_t>(), c.tokens, positions.as<int32_t>(),
                           count.as<int32_t>(), workspace.as<void>(), workspace_bytes,
                           stream.get());
    stream.finish();

    const int32_t count_host = count.download<int32_t>()[0];
    ASSERT_EQ(count_host, static_cast<int32_t>(expected.size()));
    const std::vector<int32_t> positions_host = positions.download<int32_t>();
    for (size_t i = 0; i < expected.size(); ++i) {
        ASSERT_EQ(positions_host[i], expected[i]) << "routed index " << i;
    }
    for (size_t i = expected.size(); i < positions_host.size(); ++i) {
        ASSERT_EQ(positions_host[i], kUnwritten) << "slot " << i << " past the count was written";
    }
}

std::vector<CompactionCase> compaction_cases() {
    std::vector<CompactionCase> cases{{0, Routing::none}};
    for (int64_t tokens : {1, 17, 4095, 4096, 4097, 10000, 131077}) {
        for (Routing routing : {Routing::none, Routing::fifth, Routing::all, Routing::first_only,
                                Routing::last_only}) {
            cases.push_back({tokens, routing});
        }
    }
    return cases;
}

INSTANTIATE_TEST_SUITE_P(Sizes, CompactionTest, testing::ValuesIn(compaction_cases()),
                         compaction_case_name);

// ---- attention ------------------------------------------------------------------------------

enum class Kind { global, window };

struct AttentionCase {
    Kind kind;
    int64_t tokens;
    int q_heads;
    int kv_heads;
    int head_dim;
    ElementType type;
    Routing routing;      // global attention
    int64_t window;       // sliding-window attention
    bool padded_layout;   // strides larger than the dense ones, padding filled with NaN
    bool packed = false;  // global: Q and O hold only the routed rows, in routing order
    AttentionPath path = AttentionPath::mma;
    bool unpaired = false;  // wgmma, D = 128: blocks not paired (L2A_SM90_PAIRS=0)
};

std::string attention_case_name(const AttentionCase& c) {
    std::string name = "T" + std::to_string(c.tokens) + "_D" + std::to_string(c.head_dim) + "_H" +
                       std::to_string(c.q_heads) + "x" + std::to_string(c.kv_heads) + "_" +
                       (c.type == ElementType::bf16 ? "bf16" : "fp16");
    name += c.kind == Kind::global ? std::string("_routed_") + routing_name(c.routing)
                                   : "_W" + std::to_string(c.window);
    if (c.padded_layout) name += "_padded";
    if (c.packed) name += "_packed";
    if (c.unpaired) name += "_unpaired";
    name += std::string("_") + path_name(c.path);
    return name;
}

// A [tokens, heads, head_dim] tensor: dense values for the reference, strided 16-bit bits for
// the device.
struct HostTensor {
    int64_t tokens = 0;
    int heads = 0;
    int head_dim = 0;
    int64_t token_stride = 0;
    int64_t head_stride = 0;
    std::vector<float> values;   // dense [tokens, heads, head_dim], already rounded
    std::vector<uint16_t> bits;  // strided, padding poisoned

    float at(int64_t t, int h, int d) const {
        return values[(static_cast<size_t>(t) * heads + h) * head_dim + d];
    }
    size_t offset(int64_t t, int h, int d) const {
        return static_cast<size_t>(t * token_stride + h * head_stride + d);
    }
};

HostTensor make_layout(int64_t tokens, int heads, int head_dim, bool padded) {
    HostTensor tensor;
    tensor.tokens = tokens;
    tensor.heads = heads;
    tensor.head_dim = head_dim;
    tensor.head_stride = head_dim + (padded ? 8 : 0);
    tensor.token_stride = heads * tensor.head_stride + (padded ? 16 : 0);
    tensor.bits.assign(static_cast<size_t>(std::max<int64_t>(tokens, 1) * tensor.token_stride),
                       kPoison16);
    return tensor;
}

HostTensor random_tensor(int64_t tokens, int heads, int head_dim, bool padded, ElementType type,
                         std::mt19937& random) {
    HostTensor tensor = make_layout(tokens, heads, head_dim, padded);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    tensor.values.resize(static_cast<size_t>(tokens) * heads * head_dim);
    for (int64_t t = 0; t < tokens; ++t) {
        for (int h = 0; h < heads; ++h) {
            for (int d = 0; d < head_dim; ++d) {
                const uint16_t bits = to_bits(type, normal(random));
                tensor.bits[tensor.offset(t, h, d)] = bits;
                tensor.values[(static_cast<size_t>(t) * heads + h) * head_dim + d] =
                    from_bits(type, bits);
            }
        }
    }
    return tensor;
}

struct ReferenceResult {
    std::vector<double> out;  // dense [tokens, q_heads, head_dim]; rows of `positions` only
    std::vector<double> lse;  // [q_heads, tokens]
};

// Softmax attention in double for the given query positions; a query at p sees keys
// first..p with first = 0 (window 0) or max(0, p - window + 1). Positions are shared out among
// the machine's cores in chunks (each writes only its own rows), so the largest cases take
// seconds rather than most of a minute; the result does not depend on the sharing.
ReferenceResult reference_attention(const HostTensor& q, const HostTensor& k, const HostTensor& v,
                                    const std::vector<int32_t>& positions, int64_t window) {
    const int64_t tokens = q.tokens;
    const int q_heads = q.heads;
    const int head_dim = q.head_dim;
    const int q_per_kv = q_heads / k.heads;
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
    ReferenceResult result;
    result.out.assign(static_cast<size_t>(tokens) * q_heads * head_dim, 0.0);
    result.lse.assign(static_cast<size_t>(tokens) * q_heads, 0.0);

    const auto one_position = [&](int32_t p, std::vector<double>& scores,
                                  std::vector<double>& accumulator) {
        const int64_t first = window > 0 ? std::max<int64_t>(0, p - window + 1) : 0;
        scores.assign(static_cast<size_t>(p - first + 1), 0.0);
        for (int h = 0; h < q_heads; ++h) {
            const int kv = h / q_per_kv;
            double max_score = -std::numeric_limits<double>::infinity();
            for (int64_t j = first; j <= p; ++j) {
                double dot = 0.0;
                for (int d = 0; d < head_dim; ++d) {
                    dot += static_cast<double>(q.at(p, h, d)) * k.at(j, kv, d);
                }
                scores[j - first] = dot * scale;
                max_score = std::max(max_score, scores[j - first]);
            }
            double sum = 0.0;
            std::fill(accumulator.begin(), accumulator.end(), 0.0);
            for (int64_t j = first; j <= p; ++j) {
                const double weight = std::exp(scores[j - first] - max_score);
                sum += weight;
                for (int d = 0; d < head_dim; ++d) accumulator[d] += weight * v.at(j, kv, d);
            }
            for (int d = 0; d < head_dim; ++d) {
                result.out[(static_cast<size_t>(p) * q_heads + h) * head_dim + d] =
                    accumulator[d] / sum;
            }
            result.lse[static_cast<size_t>(h) * tokens + p] = max_score + std::log(sum);
        }
    };
    constexpr size_t kChunk = 8;
    std::atomic<size_t> next_chunk{0};
    const auto worker = [&] {
        std::vector<double> scores;
        std::vector<double> accumulator(static_cast<size_t>(head_dim));
        for (size_t begin = next_chunk.fetch_add(kChunk); begin < positions.size();
             begin = next_chunk.fetch_add(kChunk)) {
            const size_t end = std::min(positions.size(), begin + kChunk);
            for (size_t i = begin; i < end; ++i) one_position(positions[i], scores, accumulator);
        }
    };
    const size_t chunks = (positions.size() + kChunk - 1) / kChunk;
    const size_t workers =
        std::min<size_t>(chunks, std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 32));
    std::vector<std::thread> threads;
    for (size_t i = 1; i < workers; ++i) threads.emplace_back(worker);
    worker();
    for (std::thread& thread : threads) thread.join();
    return result;
}

// Device copies of a case's Q, K and V, its output buffer all poison (out_layout's bits) and
// its LSE ([q heads, tokens]) all poison.
struct AttentionBuffers {
    AttentionBuffers(const HostTensor& q_host, const HostTensor& k_host, const HostTensor& v_host,
                     const HostTensor& out_layout)
        : q(q_host.bits),
          k(k_host.bits),
          v(v_host.bits),
          out(out_layout.bits),
          lse(std::vector<uint32_t>(static_cast<size_t>(q_host.tokens) * q_host.heads, kPoison32)) {
    }
    DeviceBuffer q, k, v, out, lse;
};

ConstTokenHeadTensor const_view(const DeviceBuffer& buffer, const HostTensor& layout) {
    return {buffer.as<void>(), layout.token_stride, layout.head_stride};
}

// Checks every element of the output buffer and LSE: rows of `positions` hold finite values
// close to the reference, everything else still holds the poison.
void check_outputs(const AttentionCase& c, const HostTensor& out_layout,
                   const std::vector<uint16_t>& out_bits, const std::vector<float>& lse,
                   const std::vector<int32_t>& positions, const ReferenceResult& reference) {
    std::vector<uint8_t> written(out_bits.size(), 0);
    double error_squared = 0.0;
    double reference_squared = 0.0;
    for (const int32_t p : positions) {
        for (int h = 0; h < c.q_heads; ++h) {
            for (int d = 0; d < c.head_dim; ++d) {
                const size_t slot = out_layout.offset(p, h, d);
                written[slot] = 1;
                const float value = from_bits(c.type, out_bits[slot]);
                ASSERT_TRUE(std::isfinite(value))
                    << "out[" << p << ", " << h << ", " << d << "] was not written (or is not "
                    << "finite): bits 0x" << std::hex << out_bits[slot];
                const double expected =
                    reference.out[(static_cast<size_t>(p) * c.q_heads + h) * c.head_dim + d];
                error_squared += (value - expected) * (value - expected);
                reference_squared += expected * expected;
            }
        }
    }
    for (size_t slot = 0; slot < out_bits.size(); ++slot) {
        if (written[slot] == 0) {
            ASSERT_EQ(out_bits[slot], kPoison16)
                << "output element " << slot << " outside the computed rows was written";
        }
    }
    if (!positions.empty()) {
        const double relative_error = std::sqrt(error_squared / reference_squared);
        EXPECT_LE(relative_error, 1e-2) << "||out - ref|| / ||ref|| over the computed rows";
    }

    std::vector<uint8_t> lse_written(lse.size(), 0);
    for (const int32_t p : positions) {
        for (int h = 0; h < c.q_heads; ++h) {
            const size_t slot = static_cast<size_t>(h) * c.tokens + p;
            lse_written[slot] = 1;
            const double expected = reference.lse[slot];
            ASSERT_TRUE(std::isfinite(lse[slot])) << "lse[" << h << ", " << p << "]";
            ASSERT_NEAR(lse[slot], expected, 1e-3 * std::max(1.0, std::abs(expected)))
                << "lse[" << h << ", " << p << "]";
        }
    }
    for (size_t slot = 0; slot < lse.size(); ++slot) {
        if (lse_written[slot] == 0) {
            uint32_t bits;
            std::memcpy(&bits, &lse[slot], sizeof(bits));
            ASSERT_EQ(bits, kPoison32) << "lse entry " << slot << " outside the computed rows";
        }
    }
}

using AttentionTest = GpuTest<AttentionCase>;

TEST_P(AttentionTest, MatchesReference) {
    const AttentionCase& c = GetParam();
    if (c.path == AttentionPath::wgmma && !wgmma_path_expected()) {
        GTEST_SKIP() << "the wgmma path needs a compute capability 9.x device and sm_90a code";
    }
    const ScopedAttentionPath forced_path(path_name(c.path));
    const ScopedEnvironment pairs("L2A_SM90_PAIRS", c.unpaired ? "0" : nullptr);
    std::mt19937 random = seeded_random(attention_case_name(c));
    const HostTensor q =
        random_tensor(c.tokens, c.q_heads, c.head_dim, c.padded_layout, c.type, random);
    const HostTensor k =
        random_tensor(c.tokens, c.kv_heads, c.head_dim, c.padded_layout, c.type, random);
    const HostTensor v =
        random_tensor(c.tokens, c.kv_heads, c.head_dim, c.padded_layout, c.type, random);
    const HostTensor out_layout = make_layout(c.tokens, c.q_heads, c.head_dim, c.padded_layout);

    std::vector<int32_t> positions;
    if (c.kind == Kind::global) {
        positions = routed_positions(make_decisions(c.tokens, c.routing, random));
    } else {
        for (int64_t t = 0; t < c.tokens; ++t) positions.push_back(static_cast<int32_t>(t));
    }

    AttentionBuffers buffers(q, k, v, out_layout);  // the output and LSE all poison

    // Slots past the count hold an out-of-range position: reading one would show up.
    std::vector<int32_t> position_slots(static_cast<size_t>(c.tokens),
                                        static_cast<int32_t>(c.tokens + 1000));
    std::copy(positions.begin(), positions.end(), position_slots.begin());
    DeviceBuffer positions_device(position_slots.size() * sizeof(int32_t));
    positions_device.upload(position_slots);
    DeviceBuffer count_device(sizeof(int32_t));
    count_device.upload(std::vector<int32_t>{static_cast<int32_t>(positions.size())});

    const AttentionShape shape{c.tokens, c.q_heads, c.kv_heads, c.head_dim, c.type};
    const TokenHeadTensor out_view{buffers.out.as<void>(), out_layout.token_stride,
                                   out_layout.head_stride};
    Stream stream;
    // A kernel's arguments over these buffers (Args: either kernel's), Q and O in token order.
    const auto over_buffers = [&]<typename Args>(Args args) {
        args.shape = shape;
        args.q = const_view(buffers.q, q);
        args.k = const_view(buffers.k, k);
        args.v = const_view(buffers.v, v);
        args.out = out_view;
        args.lse = buffers.lse.as<float>();
        return args;
    };
    // The window kernel's (the whole pass and the LSE-only pass).
    const auto window_args = [&] {
        SlidingWindowAttentionArgs args = over_buffers(SlidingWindowAttentionArgs{});
        args.window = c.window;
        return args;
    };
    std::vector<uint16_t> out_bits;
    if (c.kind == Kind::global && c.packed) {
        // Q rows gathered into routing order; O comes back in routing order and is scattered to
        // token rows here, so that the same checks see every element.
        const size_t row_elements = static_cast<size_t>(q.token_stride);
        std::vector<uint16_t> packed_q(std::max<size_t>(positions.size(), 1) * row_elements,
                                       kPoison16);
        for (size_t i = 0; i < positions.size(); ++i) {
            std::copy_n(q.bits.begin() + static_cast<ptrdiff_t>(positions[i] * row_elements),
                        row_elements, packed_q.begin() + static_cast<ptrdiff_t>(i * row_elements));
        }
        const size_t out_row = static_cast<size_t>(out_layout.token_stride);
        DeviceBuffer packed_q_device(packed_q.size() * sizeof(uint16_t));
        packed_q_device.upload(packed_q);
        DeviceBuffer packed_out_device(packed_q.size() / row_elements * out_row * sizeof(uint16_t));
        packed_out_device.upload(
            std::vector<uint16_t>(packed_q.size() / row_elements * out_row, kPoison16));
        GlobalAttentionArgs args;
        args.shape = shape;
        args.q = {packed_q_device.as<void>(), q.token_stride, q.head_stride};
        args.k = const_view(buffers.k, k);
        args.v = const_view(buffers.v, v);
        args.out = {packed_out_device.as<void>(), out_layout.token_stride, out_layout.head_stride};
        args.lse = buffers.lse.as<float>();
        args.routed_positions = positions_device.as<int32_t>();
        args.routed_count = count_device.as<int32_t>();
        args.packed = true;
        global_attention_forward(args, stream.get());
        stream.finish();
        const std::vector<uint16_t> packed_out = packed_out_device.download<uint16_t>();
        // Rows past the count must still hold the poison.
        for (size_t slot = positions.size() * out_row; slot < packed_out.size(); ++slot) {
            ASSERT_EQ(packed_out[slot], kPoison16) << "packed output row past the count written";
        }
        out_bits = out_layout.bits;
        for (size_t i = 0; i < positions.size(); ++i) {
            std::copy_n(packed_out.begin() + static_cast<ptrdiff_t>(i * out_row), out_row,
                        out_bits.begin() + static_cast<ptrdiff_t>(positions[i] * out_row));
        }
    } else if (c.kind == Kind::global) {
        GlobalAttentionArgs args = over_buffers(GlobalAttentionArgs{});
        args.routed_positions = positions_device.as<int32_t>();
        args.routed_count = count_device.as<int32_t>();
        global_attention_forward(args, stream.get());
    } else {
        sliding_window_attention_forward(window_args(), stream.get());
    }
    stream.finish();
    if (out_bits.empty()) out_bits = buffers.out.download<uint16_t>();
    // The variant the case names ran: the path's kernel, and on the wgmma path routed D = 128
    // launches paired unless turned off.
    const std::string kernel = last_kernel_launched();
    if (c.path == AttentionPath::mma) {
        EXPECT_EQ(kernel.rfind("attention_forward_kernel<", 0), 0u) << kernel;
    } else {
        EXPECT_EQ(kernel.rfind("attention_sm90_kernel<", 0), 0u) << kernel;
        const bool paired = c.kind == Kind::global && c.head_dim == 128 && !c.unpaired;
        EXPECT_EQ(kernel.find(", paired>") != std::string::npos, paired) << kernel;
    }

    const ReferenceResult reference =
        reference_attention(q, k, v, positions, c.kind == Kind::window ? c.window : 0);
    const std::vector<float> lse = buffers.lse.download<float>();
    check_outputs(c, out_layout, out_bits, lse, positions, reference);
    if (c.kind != Kind::window || HasFatalFailure()) return;

    // The LSE-only pass (the routing oracle's): the same LSEs as the whole pass, and on the
    // wgmma path no output row written.
    buffers.out.upload(out_layout.bits);  // all poison again
    buffers.lse.upload(std::vector<uint32_t>(static_cast<size_t>(c.tokens) * c.q_heads, kPoison32));
    SlidingWindowAttentionArgs args = window_args();
    args.lse_only = true;
    sliding_window_attention_forward(args, stream.get());
    stream.finish();
    const std::vector<float> lse_alone = buffers.lse.download<float>();
    for (size_t slot = 0; slot < lse.size(); ++slot) {
        ASSERT_NEAR(lse_alone[slot], lse[slot], 1e-6 * std::max(1.0f, std::abs(lse[slot])))
            << "LSE-only pass, lse entry " << slot;
    }
    if (c.path == AttentionPath::wgmma) {
        const std::string lse_kernel = last_kernel_launched();
        EXPECT_NE(lse_kernel.find(", LSE only>"), std::string::npos) << lse_kernel;
        const std::vector<uint16_t> untouched = buffers.out.download<uint16_t>();
        for (size_t slot = 0; slot < untouched.size(); ++slot) {
            ASSERT_EQ(untouched[slot], kPoison16) << "LSE-only pass wrote output element " << slot;
        }
    }
    args.lse = nullptr;
    EXPECT_THROW(sliding_window_attention_forward(args, stream.get()), KernelError);
}

const std::vector<int64_t> kTokenCounts{1, 17, 64, 200, 1000, 2049};
const std::vector<Routing> kAllRoutings{Routing::none, Routing::fifth, Routing::all,
                                        Routing::first_only, Routing::last_only};

AttentionCase global_case(int64_t tokens, int q_heads, int kv_heads, int head_dim, ElementType type,
                          Routing routing, bool padded = false) {
    return {Kind::global, tokens, q_heads, kv_heads, head_dim, type, routing, 0, padded};
}

AttentionCase window_case(int64_t tokens, int q_heads, int kv_heads, int head_dim, ElementType type,
                          int64_t window, bool padded = false) {
    return {Kind::window, tokens, q_heads, kv_heads, head_dim, type, Routing::all, window, padded};
}

std::vector<AttentionCase> global_cases() {
    std::vector<AttentionCase> cases;
    for (int64_t tokens : kTokenCounts) {
        for (int head_dim : {64, 128}) {
            for (Routing routing : kAllRoutings) {
                cases.push_back(global_case(tokens, 4, 1, head_dim, ElementType::bf16, routing));
            }
        }
    }
    // GQA ratios 1, 7 and 28/4 (Qwen2.5-7B's heads).
    for (auto [q_heads, kv_heads] : {std::pair{2, 2}, std::pair{7, 1}, std::pair{28, 4}}) {
        for (int64_t tokens : {17, 200, 1000}) {
            for (int head_dim : {64, 128}) {
                for (Routing routing : {Routing::fifth, Routing::all}) {
                    cases.push_back(global_case(tokens, q_heads, kv_heads, head_dim,
                                                ElementType::bf16, routing));
                }
            }
        }
    }
    for (int64_t tokens : {17, 200, 2049}) {
        for (int head_dim : {64, 128}) {
            for (Routing routing : {Routing::fifth, Routing::all, Routing::last_only}) {
                cases.push_back(global_case(tokens, 4, 1, head_dim, ElementType::fp16, routing));
            }
        }
    }
    for (int head_dim : {64, 128}) {
        for (ElementType type : {ElementType::bf16, ElementType::fp16}) {
            cases.push_back(global_case(200, 7, 1, head_dim, type, Routing::fifth, true));
        }
    }
    // Routed counts at a pair's edges (D = 128 row tiles run in pairs of 128-row blocks): one
    // full block whose partner repeats it (128), a partner with one row (129), two full blocks
    // (256), a second pair of one block with one row (257).
    for (int64_t tokens : {128, 129, 256, 257}) {
        cases.push_back(global_case(tokens, 4, 1, 128, ElementType::bf16, Routing::all));
    }
    // Packed Q and O (the engine's layout: only routed rows are projected).
    for (int64_t tokens : {1, 200, 2049}) {
        for (int head_dim : {64, 128}) {
            for (Routing routing : kAllRoutings) {
                AttentionCase packed =
                    global_case(tokens, 28, 4, head_dim, ElementType::bf16, routing, tokens == 200);
                packed.packed = true;
                cases.push_back(packed);
            }
        }
    }
    return cases;
}

std::vector<AttentionCase> window_cases() {
    std::vector<AttentionCase> cases;
    for (int64_t tokens : kTokenCounts) {
        for (int head_dim : {64, 128}) {
            for (int64_t window : {1, 16, 100, 4095}) {
                cases.push_back(window_case(tokens, 4, 1, head_dim, ElementType::bf16, window));
            }
        }
    }
    for (int64_t tokens : {200, 2049}) {
        for (int head_dim : {64, 128}) {
            for (int64_t window : {16, 100, 4095}) {
                cases.push_back(window_case(tokens, 4, 1, head_dim, ElementType::fp16, window));
            }
        }
    }
    // Blocks whose key range spans more tiles than the ring has stages (stages are refilled):
    // 727 keys are 5 tiles of 176 for 2 stages at D = 128, 927 keys 6 tiles for 4 stages at
    // D = 64. (A consumer no longer passes over a tile in a window: tiles start at the block's
    // first key, and the second consumer's first key is at most 64 keys later.)
    cases.push_back(window_case(1000, 4, 1, 128, ElementType::bf16, 600));
    cases.push_back(window_case(1000, 4, 1, 64, ElementType::bf16, 800));
    for (auto [q_heads, kv_heads] : {std::pair{2, 2}, std::pair{7, 1}, std::pair{28, 4}}) {
        for (int64_t tokens : {200, 1000}) {
            for (int head_dim : {64, 128}) {
                for (int64_t window : {100, 4095}) {
                    cases.push_back(window_case(tokens, q_heads, kv_heads, head_dim,
                                                ElementType::bf16, window));
                }
            }
        }
    }
    for (int head_dim : {64, 128}) {
        cases.push_back(window_case(200, 7, 1, head_dim, ElementType::bf16, 100, true));
    }
    // Many blocks per kv head and per SM (672 items at 3,000 tokens x 28 heads), with key ranges
    // that start mid-tile and a last row tile that ends mid-tile.
    for (int head_dim : {64, 128}) {
        cases.push_back(window_case(3000, 28, 4, head_dim, ElementType::bf16, 300));
    }
    cases.push_back(window_case(3000, 28, 4, 128, ElementType::fp16, 4095));
    return cases;
}

// Every case on each path; the wgmma path's routed D = 128 cases of a full tile and more also with
// unpaired blocks (the kernel those launches use when L2A_SM90_PAIRS=0; D = 64, windows and
// LSE-only launches are never paired).
std::vector<AttentionCase> on_every_path(std::vector<AttentionCase> cases) {
    const size_t count = cases.size();
    for (size_t i = 0; i < count; ++i) {
        AttentionCase on_wgmma = cases[i];
        on_wgmma.path = AttentionPath::wgmma;
        cases.push_back(on_wgmma);
        if (on_wgmma.kind == Kind::global && on_wgmma.head_dim == 128 && on_wgmma.tokens >= 128) {
            on_wgmma.unpaired = true;
            cases.push_back(on_wgmma);
        }
    }
    return cases;
}

std::string attention_param_name(const testing::TestParamInfo<AttentionCase>& info) {
    return attention_case_name(info.param);
}

INSTANTIATE_TEST_SUITE_P(Global, AttentionTest, testing::ValuesIn(on_every_path(global_cases())),
                         attention_param_name);
INSTANTIATE_TEST_SUITE_P(Window, AttentionTest, testing::ValuesIn(on_every_path(window_cases())),
                         attention_param_name);

// Decisions -> compaction -> global attention, with the count never leaving the device.
TEST(RoutedPipelineTest, CompactionFeedsGlobalAttention) {
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    const AttentionCase c = global_case(1000, 28, 4, 128, ElementType::bf16, Routing::fifth);
    std::mt19937 random = seeded_random("pipeline");
    const HostTensor q = random_tensor(c.tokens, c.q_heads, c.head_dim, false, c.type, random);
    const HostTensor k = random_tensor(c.tokens, c.kv_heads, c.head_dim, false, c.type, random);
    const HostTensor v = random_tensor(c.tokens, c.kv_heads, c.head_dim, false, c.type, random);
    const HostTensor out_layout = make_layout(c.tokens, c.q_heads, c.head_dim, false);
    const std::vector<uint8_t> decisions = make_decisions(c.tokens, c.routing, random);
    const std::vector<int32_t> positions = routed_positions(decisions);

    DeviceBuffer decisions_device(decisions.size());
    decisions_device.upload(decisions);
    DeviceBuffer positions_device(static_cast<size_t>(c.tokens) * sizeof(int32_t));
    DeviceBuffer count_device(sizeof(int32_t));
    const size_t workspace_bytes = routed_compaction_workspace_bytes(c.tokens);
    DeviceBuffer workspace(workspace_bytes);
    AttentionBuffers buffers(q, k, v, out_layout);  // the output and LSE all poison

    Stream stream;
    compact_routed_queries(decisions_device.as<uint8_t>(), c.tokens, positions_device.as<int32_t>(),
                           count_device.as<int32_t>(), workspace.as<void>(), workspace_bytes,
                           stream.get());
    GlobalAttentionArgs args;
    args.shape = {c.tokens, c.q_heads, c.kv_heads, c.head_dim, c.type};
    args.q = const_view(buffers.q, q);
    args.k = const_view(buffers.k, k);
    args.v = const_view(buffers.v, v);
    args.out = {buffers.out.as<void>(), out_layout.token_stride, out_layout.head_stride};
    args.lse = buffers.lse.as<float>();
    args.routed_positions = positions_device.as<int32_t>();
    args.routed_count = count_device.as<int32_t>();
    global_attention_forward(args, stream.get());
    stream.finish();

    ASSERT_EQ(count_device.download<int32_t>()[0], static_cast<int32_t>(positions.size()));
    check_outputs(c, out_layout, buffers.out.download<uint16_t>(), buffers.lse.download<float>(),
                  positions, reference_attention(q, k, v, positions, 0));
}

// K and V whose kv heads share one tensor (head stride 0) are valid arguments: every kv head
// reads the same keys and values. No tensor map describes them, so the Hopper path hands them to
// the mma.sync kernel (where it would have read the next token as the next head), and forcing
// the wgmma path names the strides.
TEST(AttentionLayoutTest, KvHeadsSharingOneTensor) {
    if (!has_cuda_device()) GTEST_SKIP() << "no CUDA device";
    const ScopedAttentionPath default_path(nullptr);
    const AttentionCase c = window_case(300, 4, 2, 128, ElementType::bf16, 100);
    std::mt19937 random = seeded_random("shared kv heads");
    const HostTensor q = random_tensor(c.tokens, c.q_heads, c.head_dim, false, c.type, random);
    // One head of data seen as two: the reference reads it as one kv head for all q heads.
    const HostTensor k = random_tensor(c.tokens, 1, c.head_dim, false, c.type, random);
    const HostTensor v = random_tensor(c.tokens, 1, c.head_dim, false, c.type, random);
    const HostTensor out_layout = make_layout(c.tokens, c.q_heads, c.head_dim, false);
    std::vector<int32_t> positions;
    for (int64_t t = 0; t < c.tokens; ++t) positions.push_back(static_cast<int32_t>(t));

    AttentionBuffers buffers(q, k, v, out_layout);  // the output and LSE all poison

    SlidingWindowAttentionArgs args;
    args.shape = {c.tokens, c.q_heads, c.kv_heads, c.head_dim, c.type};
    args.q = const_view(buffers.q, q);
    args.k = {buffers.k.as<void>(), k.token_stride, 0};
    args.v = {buffers.v.as<void>(), v.token_stride, 0};
    args.out = {buffers.out.as<void>(), out_layout.token_stride, out_layout.head_stride};
    args.lse = buffers.lse.as<float>();
    args.window = c.window;
    Stream stream;
    sliding_window_attention_forward(args, stream.get());
    stream.finish();
    EXPECT_EQ(last_kernel_launched().rfind("attention_forward_kernel<", 0), 0u)
        << last_kernel_launched();
    check_outputs(c, out_layout, buffers.out.download<uint16_t>(), buffers.lse.download<float>(),
                  positions, reference_attention(q, k, v, positions, c.window));

    if (!wgmma_path_expected()) return;
    const ScopedAttentionPath forced_path("wgmma");
    try {
        sliding_window_attention_forward(args, stream.get());
        ADD_FAILURE() << "the forced wgmma path took K and V whose heads share one tensor";
    } catch (const KernelError& error) {
        EXPECT_NE(std::string(error.what()).find("head strides 0 / 0"), std::string::npos)
            << error.what();
    }
}

// ---- argument validation: host-only, runs without a GPU -------------------------------------

GlobalAttentionArgs plausible_global_args(void* fake_device_memory) {
    GlobalAttentionArgs args;
    args.shape = {16, 4, 1, 64, ElementType::bf16};
    args.q = {fake_device_memory, 4 * 64, 64};
    args.k = {fake_device_memory, 64, 64};
    args.v = {fake_device_memory, 64, 64};
    args.out = {fake_device_memory, 4 * 64, 64};
    args.routed_positions = static_cast<const int32_t*>(fake_device_memory);
    args.routed_count = static_cast<const int32_t*>(fake_device_memory);
    return args;
}

std::string global_error(const GlobalAttentionArgs& args) {
    try {
        global_attention_forward(args, nullptr);
    } catch (const KernelError& error) {
        return error.what();
    }
    return "";
}

TEST(AttentionValidationTest, RejectsUnsupportedHeadDim) {
    alignas(16) static unsigned char memory[16];
    GlobalAttentionArgs args = plausible_global_args(memory);
    args.shape.head_dim = 96;
    EXPECT_EQ(global_error(args),
              "l2a::kernels::global_attention_forward: head_dim 96 is not supported (64 or 128)");
}

TEST(AttentionValidationTest, RejectsHeadsThatDoNotGroup) {
    alignas(16) static unsigned char memory[16];
    GlobalAttentionArgs args = plausible_global_args(memory);
    args.shape.q_heads = 28;
    args.shape.kv_heads = 5;
    EXPECT_EQ(global_error(args),
              "l2a::kernels::global_attention_forward: q_heads (28) is not a multiple of "
              "kv_heads (5)");
}

TEST(AttentionValidationTest, RejectsMisalignedTensorsAndStrides) {
    alignas(16) static unsigned char memory[32];
    GlobalAttentionArgs args = plausible_global_args(memory);
    args.k.data = memory + 2;
    EXPECT_EQ(global_error(args),
              "l2a::kernels::global_attention_forward: k is not 16-byte aligned");
    args = plausible_global_args(memory);
    args.v.token_stride = 68;
    EXPECT_EQ(global_error(args),
              "l2a::kernels::global_attention_forward: v strides (token 68, head 64) must be "
              "non-negative multiples of 8 elements");
}

TEST(AttentionValidationTest, RejectsMissingRouting) {
    alignas(16) static unsigned char memory[16];
    GlobalAttentionArgs args = plausible_global_args(memory);
    args.routed_count = nullptr;
    EXPECT_EQ(global_error(args), "l2a::kernels::global_attention_forward: routed_count is null");
}

TEST(AttentionValidationTest, RejectsUnknownPathInEnvironment) {
    alignas(16) static unsigned char memory[16];
    const ScopedAttentionPath forced_path("tensor-cores");
    EXPECT_EQ(global_error(plausible_global_args(memory)),
              "l2a::kernels::global_attention_forward: environment variable L2A_ATTENTION_PATH is "
              "\"tensor-cores\"; expected \"mma\", \"wgmma\" or unset");
}

TEST(AttentionValidationTest, RejectsUnknownPairsInEnvironment) {
    alignas(16) static unsigned char memory[16];
    const ScopedEnvironment pairs("L2A_SM90_PAIRS", "yes");
    EXPECT_EQ(global_error(plausible_global_args(memory)),
              "l2a::kernels::global_attention_forward: environment variable L2A_SM90_PAIRS is "
              "\"yes\"; expected \"0\", \"1\" or unset");
}

TEST(AttentionValidationTest, RejectsForcedWgmmaWhereItCannotRun) {
    if (wgmma_path_expected()) GTEST_SKIP() << "the wgmma path runs on this machine";
    alignas(16) static unsigned char memory[16];
    const ScopedAttentionPath forced_path("wgmma");
    const std::string error = global_error(plausible_global_args(memory));
    EXPECT_EQ(error.rfind("l2a::kernels::global_attention_forward: L2A_ATTENTION_PATH=wgmma, but "
                          "the wgmma path cannot run here: ",
                          0),
              0u)
        << error;
}

TEST(AttentionValidationTest, RejectsEmptyWindow) {
    alignas(16) static unsigned char memory[16];
    SlidingWindowAttentionArgs args;
    args.shape = {16, 4, 1, 64, ElementType::fp16};
    args.q = {memory, 4 * 64, 64};
    args.k = {memory, 64, 64};
    args.v = {memory, 64, 64};
    args.out = {memory, 4 * 64, 64};
    args.window = 0;
    try {
        sliding_window_attention_forward(args, nullptr);
        FAIL() << "window 0 was accepted";
    } catch (const KernelError& error) {
        EXPECT_STREQ(error.what(),
                     "l2a::kernels::sliding_window_attention_forward: window (0) must be at "
                     "least 1");
    }
}

TEST(AttentionValidationTest, ZeroTokensLaunchNothing) {
    // No pointer is needed, and nothing touches the device, when there is nothing to compute.
    GlobalAttentionArgs global;
    global.shape = {0, 4, 1, 128, ElementType::bf16};
    EXPECT_NO_THROW(global_attention_forward(global, nullptr));
    SlidingWindowAttentionArgs window;
    window.shape = {0, 4, 1, 128, ElementType::bf16};
    window.window = 4095;
    EXPECT_NO_THROW(sliding_window_attention_forward(window, nullptr));
}

TEST(CompactionValidationTest, RejectsSmallWorkspace) {
    alignas(16) static unsigned char memory[16];
    const size_t needed = routed_compaction_workspace_bytes(10000);
    ASSERT_GT(needed, 4u);
    try {
        compact_routed_queries(memory, 10000, reinterpret_cast<int32_t*>(memory),
                               reinterpret_cast<int32_t*>(memory), memory, 4, nullptr);
        FAIL() << "a 4-byte workspace was accepted";
    } catch (const KernelError& error) {
        EXPECT_STREQ(error.what(), ("l2a::kernels::compact_routed_queries: workspace has 4 "
                                    "bytes, needs " +
                                    std::to_string(needed))
                                       .c_str());
    }
}

}  // namespace
}  // namespace l2a::kernels
