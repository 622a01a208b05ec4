// Times the L2A attention kernels on one GPU: the global part (routed-query compaction plus
// conditional global attention), the local part (sliding-window attention) and both back to back,
// for a sweep of sequence lengths and routed fractions. Every configuration is first checked on a
// few random rows against a double-precision CPU reference, so a fast but wrong kernel never
// reaches the table. Timed the way kernels/bench/sdpa_baseline.py times its baselines: CUDA
// events, warm-up, median.
//
//     bench_attention_kernels [--tokens 8192,32768,131072] [--fractions 0,0.1,0.2,0.5,1]
//                             [--heads 28/4] [--head-dim 128] [--window 4095] [--q-scale 1]
//                             [--csv FILE]
//
// L2A_ATTENTION_PATH=mma|wgmma in the environment times one path of the dispatcher.

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <l2a/kernels/attention.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace {

namespace kernels = l2a::kernels;

// Bad flags, failed CUDA calls and wrong results all end the run with one message.
class BenchError : public std::runtime_error {
public:
    explicit BenchError(const std::string& message) : std::runtime_error(message) {}
};

void check_cuda(cudaError_t status, const char* call, int line) {
    if (status != cudaSuccess) {
        throw BenchError("bench_attention_kernels.cu:" + std::to_string(line) + ": " + call + ": " +
                         cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
    }
}

#define BENCH_CUDA_CHECK(call) check_cuda((call), #call, __LINE__)

constexpr double kMaxRelativeError = 1e-2;
// The LSE is the log of a sum of up to 131,072 fp32 terms: 1e-3 is about 50 times the drift of a
// round-to-nearest sum of that length (sqrt(n) units in the last place); the largest error seen
// is printed either way (g_lse, l_lse).
constexpr double kMaxLseError = 1e-3;
constexpr int kCheckedRows = 8;
constexpr uint16_t kPoison16 = 0xffff;  // a NaN in bf16: any row the kernels write replaces it

// ---- options --------------------------------------------------------------------------------

struct Options {
    std::vector<int64_t> tokens{8192, 32768, 131072};
    std::vector<double> fractions{0.0, 0.1, 0.2, 0.5, 1.0};
    int q_heads = 28;
    int kv_heads = 4;
    int head_dim = 128;
    int64_t window = 4095;
    int warmup = 3;
    int repeats = 10;
    int input_sets = 0;  // 0: chosen from the L2 size
    uint64_t seed = 20261122;
    double q_scale = 1.0;
    std::string csv_path;
};

constexpr const char* kUsage = R"(usage: bench_attention_kernels [options]

Times the L2A CUDA attention kernels (bf16, batch 1, Q/K/V/O in [tokens, heads, head_dim]):
  global = routed-query compaction + conditional global (causal) attention of the routed tokens
  local  = sliding-window attention of every token
  whole  = global then local, back to back on one stream
Each configuration is checked against a CPU double reference on a few random rows before it is
timed (outputs, and the log-sum-exp of each row, which the check's runs also write); a mismatch
ends the run with exit status 1.

options:
  --tokens LIST      sequence lengths, comma separated            (default 8192,32768,131072)
  --fractions LIST   routed fractions in [0, 1], comma separated  (default 0,0.1,0.2,0.5,1)
                     each token is routed independently with that probability (fixed seed)
  --heads HQ/HKV     query heads / key-value heads                (default 28/4; Qwen3-8B: 32/8)
  --head-dim D       64 or 128                                     (default 128)
  --window W         sliding window, keys t-W+1 .. t               (default 4095)
  --warmup N         untimed runs before timing                    (default 3)
  --repeats N        timed runs; the median is reported            (default 10)
  --sets N           input sets to rotate through (default: 3 when Q+K+V of one set is smaller
                     than 4x the L2 cache, else 1)
  --seed N           seed of inputs and routing                    (default 20261122)
  --q-scale S        standard deviation of the queries' values     (default 1)
                     scores spread about S: above 1 the softmax is sharper and a row's
                     maximum moves more often (trained models' attention is often sharp)
  --csv FILE         also write the table to FILE as CSV
  --help             this text

columns (ms are medians; TFLOP/s count multiply and add as 2 FLOPs):
  tokens     sequence length N
  routed     routed fraction asked for
  count      tokens actually routed
  global_ms  compaction + global attention
  g_tflops   global FLOPs / global_ms, global FLOPs = 4*D*Hq*sum over routed t of (t+1)
  g_causal   full causal FLOPs / global_ms, full causal FLOPs = 4*D*Hq*N*(N+1)/2
  local_ms   sliding-window attention
  l_tflops   local FLOPs / local_ms, local FLOPs = 4*D*Hq*sum over t of min(t+1, W)
  l_causal   full causal FLOPs / local_ms
  whole_ms   global + local back to back
  w_tflops   (global + local FLOPs) / whole_ms
  w_causal   full causal FLOPs / whole_ms: the speed full causal attention would need to match
  wg_ms      the global part inside whole_ms, timed by an event between the two parts
  wl_ms      the local part inside whole_ms (each column is a median of its own, so wg_ms +
             wl_ms need not equal whole_ms exactly)
  g_err      largest relative error of the checked global rows (L2 norm over head_dim)
  l_err      same for the checked local rows
  g_lse      largest absolute error of the checked global rows' log-sum-exp (natural log)
  l_lse      same for the checked local rows
)";

int64_t parse_integer(std::string_view text, const char* flag, int64_t low, int64_t high) {
    int64_t value = 0;
    const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (status != std::errc() || end != text.data() + text.size() || value < low || value > high) {
        throw BenchError(std::string(flag) + ": '" + std::string(text) +
                         "' is not an integer in [" + std::to_string(low) + ", " +
                         std::to_string(high) + "]");
    }
    return value;
}

// `text` as a number that `accept` takes; otherwise an error naming the flag and `range`.
template <typename Accept>
double parse_number(std::string_view text, const char* flag, const char* range, Accept accept) {
    const std::string copy(text);
    char* end = nullptr;
    const double value = std::strtod(copy.c_str(), &end);
    if (copy.empty() || end != copy.c_str() + copy.size() || !accept(value)) {
        throw BenchError(std::string(flag) + ": '" + copy + "' is not a number in " + range);
    }
    return value;
}

double parse_fraction(std::string_view text, const char* flag) {
    return parse_number(text, flag, "[0, 1]", [](double v) { return v >= 0.0 && v <= 1.0; });
}

std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> parts;
    size_t begin = 0;
    while (true) {
        const size_t end = text.find(separator, begin);
        parts.push_back(text.substr(begin, end == std::string_view::npos ? end : end - begin));
        if (end == std::string_view::npos) return parts;
        begin = end + 1;
    }
}

// Returns false when --help was asked for.
bool parse_options(int argc, char** argv, Options& options) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (flag == "--help" || flag == "-h") return false;
        if (i + 1 >= argc) throw BenchError(std::string(flag) + ": missing value (see --help)");
        const std::string_view value = argv[++i];
        if (flag == "--tokens") {
            options.tokens.clear();
            for (const auto part : split(value, ',')) {
                options.tokens.push_back(parse_integer(part, "--tokens", 1, INT32_MAX));
            }
        } else if (flag == "--fractions") {
            options.fractions.clear();
            for (const auto part : split(value, ',')) {
                options.fractions.push_back(parse_fraction(part, "--fractions"));
            }
        } else if (flag == "--heads") {
            const auto parts = split(value, '/');
            if (parts.size() != 2)
                throw BenchError("--heads: expected HQ/HKV, got '" + std::string(value) + "'");
            options.q_heads = static_cast<int>(parse_integer(parts[0], "--heads", 1, 1024));
            options.kv_heads = static_cast<int>(parse_integer(parts[1], "--heads", 1, 1024));
            if (options.q_heads % options.kv_heads != 0) {
                throw BenchError("--heads: query heads (" + std::to_string(options.q_heads) +
                                 ") are not a multiple of key-value heads (" +
                                 std::to_string(options.kv_heads) + ")");
            }
        } else if (flag == "--head-dim") {
            options.head_dim = static_cast<int>(parse_integer(value, "--head-dim", 64, 128));
            if (options.head_dim != 64 && options.head_dim != 128) {
                throw BenchError("--head-dim: " + std::string(value) + " is not 64 or 128");
            }
        } else if (flag == "--window") {
            options.window = parse_integer(value, "--window", 1, INT64_MAX);
        } else if (flag == "--warmup") {
            options.warmup = static_cast<int>(parse_integer(value, "--warmup", 0, 1000));
        } else if (flag == "--repeats") {
            options.repeats = static_cast<int>(parse_integer(value, "--repeats", 1, 1000));
        } else if (flag == "--sets") {
            options.input_sets = static_cast<int>(parse_integer(value, "--sets", 1, 8));
        } else if (flag == "--seed") {
            options.seed = static_cast<uint64_t>(parse_integer(value, "--seed", 0, INT64_MAX));
        } else if (flag == "--q-scale") {
            options.q_scale = parse_number(value, "--q-scale", "(0, 64]",
                                           [](double v) { return v > 0.0 && v <= 64.0; });
        } else if (flag == "--csv") {
            options.csv_path = std::string(value);
        } else {
            throw BenchError("unknown option '" + std::string(flag) + "' (see --help)");
        }
    }
    return true;
}

// ---- device resources -----------------------------------------------------------------------

template <typename T>
class DeviceArray {
public:
    explicit DeviceArray(size_t count) : count_(count) {
        BENCH_CUDA_CHECK(cudaMalloc(&data_, std::max<size_t>(count, 1) * sizeof(T)));
    }
    ~DeviceArray() {
        // A destructor cannot throw; a failed free means the context is already broken, and the
        // call that broke it has thrown.
        if (data_ != nullptr && cudaFree(data_) != cudaSuccess) {
            std::cerr << "bench_attention_kernels: cudaFree failed\n";
        }
    }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;
    DeviceArray(DeviceArray&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)), count_(other.count_) {}
    DeviceArray& operator=(DeviceArray&&) = delete;

    T* data() const { return data_; }
    size_t count() const { return count_; }
    size_t bytes() const { return count_ * sizeof(T); }

private:
    T* data_ = nullptr;
    size_t count_ = 0;
};

class Stream {
public:
    Stream() { BENCH_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
    ~Stream() {
        if (cudaStreamDestroy(stream_) != cudaSuccess) {
            std::cerr << "bench_attention_kernels: cudaStreamDestroy failed\n";
        }
    }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    cudaStream_t get() const { return stream_; }

private:
    cudaStream_t stream_ = nullptr;
};

class EventPool {
public:
    explicit EventPool(size_t count) : events_(count, nullptr) {
        for (auto& event : events_) BENCH_CUDA_CHECK(cudaEventCreate(&event));
    }
    ~EventPool() {
        for (auto event : events_) {
            if (event != nullptr && cudaEventDestroy(event) != cudaSuccess) {
                std::cerr << "bench_attention_kernels: cudaEventDestroy failed\n";
            }
        }
    }
    EventPool(const EventPool&) = delete;
    EventPool& operator=(const EventPool&) = delete;
    cudaEvent_t operator[](size_t index) const { return events_[index]; }

private:
    std::vector<cudaEvent_t> events_;
};

// ---- random inputs --------------------------------------------------------------------------

__host__ __device__ inline uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Normal values of standard deviation `scale` (Box-Muller on a counter hash); at scale 1 scores
// have unit-scale spread and softmax is neither flat nor one-hot. Generated on the device: 128K
// tokens of Q is 117M values.
__global__ void fill_normal_bf16(__nv_bfloat16* out, int64_t count, uint64_t seed, float scale) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
         i += stride) {
        const uint64_t hash = mix64(seed ^ mix64(static_cast<uint64_t>(i)));
        const float u1 = static_cast<float>((hash >> 40) + 1) * 0x1p-24f;  // (0, 1]
        const float u2 = static_cast<float>((hash >> 16) & 0xffffffull) * 0x1p-24f;
        const float normal = sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
        out[i] = __float2bfloat16_rn(normal * scale);
    }
}

void fill_random(DeviceArray<__nv_bfloat16>& array, uint64_t seed, cudaStream_t stream,
                 double scale = 1.0) {
    const int64_t count = static_cast<int64_t>(array.count());
    const int threads = 256;
    const int blocks = static_cast<int>(std::min<int64_t>((count + threads - 1) / threads, 8192));
    fill_normal_bf16<<<blocks, threads, 0, stream>>>(array.data(), count, mix64(seed),
                                                     static_cast<float>(scale));
    BENCH_CUDA_CHECK(cudaGetLastError());
}

float bf16_to_float(uint16_t bits) {
    const uint32_t widened = uint32_t(bits) << 16;
    float value;
    std::memcpy(&value, &widened, sizeof(value));
    return value;
}

// ---- shapes and FLOPs -----------------------------------------------------------------------

struct Shape {
    int64_t tokens;
    int q_heads;
    int kv_heads;
    int head_dim;
    int64_t window;

    size_t q_elements() const { return size_t(tokens) * q_heads * head_dim; }
    size_t kv_elements() const { return size_t(tokens) * kv_heads * head_dim; }
    // [T, H, D] with D contiguous: element (t, h, d) of a tensor with `heads` heads.
    size_t offset(int64_t t, int h, int heads) const { return (size_t(t) * heads + h) * head_dim; }
    double flops_per_key() const { return 4.0 * head_dim * q_heads; }
};

double global_flops(const Shape& shape, const std::vector<int32_t>& routed) {
    double keys = 0.0;
    for (const int32_t t : routed) keys += double(t) + 1.0;
    return shape.flops_per_key() * keys;
}

double local_flops(const Shape& shape) {
    double keys = 0.0;
    for (int64_t t = 0; t < shape.tokens; ++t) {
        keys += double(std::min<int64_t>(t + 1, shape.window));
    }
    return shape.flops_per_key() * keys;
}

double causal_flops(const Shape& shape) {
    const double n = double(shape.tokens);
    return shape.flops_per_key() * n * (n + 1.0) / 2.0;
}

// ---- one sequence length: inputs, outputs and the kernel calls --------------------------------

struct InputSet {
    DeviceArray<__nv_bfloat16> q, k, v;
};

struct Buffers {
    Shape shape;
    std::vector<InputSet> sets;
    DeviceArray<__nv_bfloat16> out_global, out_local;
    DeviceArray<float> lse_global, lse_local;  // [Hq, T], written by the check's runs only
    DeviceArray<uint8_t> decisions;
    DeviceArray<int32_t> positions, count;
    DeviceArray<unsigned char> workspace;
};

kernels::AttentionShape attention_shape(const Shape& shape) {
    kernels::AttentionShape result;
    result.tokens = shape.tokens;
    result.q_heads = shape.q_heads;
    result.kv_heads = shape.kv_heads;
    result.head_dim = shape.head_dim;
    result.element_type = kernels::ElementType::bf16;
    return result;
}

kernels::ConstTokenHeadTensor const_tensor(const DeviceArray<__nv_bfloat16>& array,
                                           const Shape& shape, int heads) {
    return {array.data(), int64_t(heads) * shape.head_dim, shape.head_dim};
}

kernels::TokenHeadTensor tensor(const DeviceArray<__nv_bfloat16>& array, const Shape& shape,
                                int heads) {
    return {array.data(), int64_t(heads) * shape.head_dim, shape.head_dim};
}

// L2A merges the two parts with a gated residual add, not by LSE, so the timed runs write no LSE
// (`lse` null); the check's runs do.
void run_global(const Buffers& b, const InputSet& in, cudaStream_t stream, float* lse = nullptr) {
    kernels::compact_routed_queries(b.decisions.data(), b.shape.tokens, b.positions.data(),
                                    b.count.data(), b.workspace.data(), b.workspace.bytes(),
                                    stream);
    kernels::GlobalAttentionArgs args;
    args.shape = attention_shape(b.shape);
    args.q = const_tensor(in.q, b.shape, b.shape.q_heads);
    args.k = const_tensor(in.k, b.shape, b.shape.kv_heads);
    args.v = const_tensor(in.v, b.shape, b.shape.kv_heads);
    args.out = tensor(b.out_global, b.shape, b.shape.q_heads);
    args.routed_positions = b.positions.data();
    args.routed_count = b.count.data();
    args.lse = lse;
    kernels::global_attention_forward(args, stream);
}

void run_local(const Buffers& b, const InputSet& in, cudaStream_t stream, float* lse = nullptr) {
    kernels::SlidingWindowAttentionArgs args;
    args.shape = attention_shape(b.shape);
    args.q = const_tensor(in.q, b.shape, b.shape.q_heads);
    args.k = const_tensor(in.k, b.shape, b.shape.kv_heads);
    args.v = const_tensor(in.v, b.shape, b.shape.kv_heads);
    args.out = tensor(b.out_local, b.shape, b.shape.q_heads);
    args.window = b.shape.window;
    args.lse = lse;
    kernels::sliding_window_attention_forward(args, stream);
}

// ---- correctness check against a CPU double reference ----------------------------------------

// K and V of input set 0 on the host, read by every reference row of one sequence length.
struct HostKeysValues {
    std::vector<uint16_t> k, v;
};

template <typename T>
std::vector<T> copy_to_host(const T* device, size_t count) {
    std::vector<T> host(count);
    if (count > 0) {
        BENCH_CUDA_CHECK(
            cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost));
    }
    return host;
}

struct RowError {
    double relative = 0.0;  // relative L2 error of the output row over head_dim
    double lse = 0.0;       // absolute error of the row's log-sum-exp
};

// The errors of one output row and its LSE (token t, query head h) against softmax attention
// over keys first..t, computed in double from the bf16 inputs.
RowError row_error(const Shape& shape, const InputSet& in, const HostKeysValues& kv,
                   const DeviceArray<__nv_bfloat16>& out, const DeviceArray<float>& lse, int64_t t,
                   int h, int64_t first) {
    const int d_count = shape.head_dim;
    const auto q_bits = copy_to_host(
        reinterpret_cast<const uint16_t*>(in.q.data()) + shape.offset(t, h, shape.q_heads),
        size_t(d_count));
    const auto out_bits = copy_to_host(
        reinterpret_cast<const uint16_t*>(out.data()) + shape.offset(t, h, shape.q_heads),
        size_t(d_count));
    std::vector<double> q(size_t(d_count), 0.0);
    for (int d = 0; d < d_count; ++d) q[size_t(d)] = bf16_to_float(q_bits[size_t(d)]);

    const int kv_head = h / (shape.q_heads / shape.kv_heads);
    const double scale = 1.0 / std::sqrt(double(d_count));
    std::vector<double> scores(size_t(t - first + 1));
    double max_score = -INFINITY;
    for (int64_t j = first; j <= t; ++j) {
        const uint16_t* key = kv.k.data() + shape.offset(j, kv_head, shape.kv_heads);
        double dot = 0.0;
        for (int d = 0; d < d_count; ++d) dot += q[size_t(d)] * bf16_to_float(key[d]);
        scores[size_t(j - first)] = dot * scale;
        max_score = std::max(max_score, dot * scale);
    }
    std::vector<double> expected(size_t(d_count), 0.0);
    double sum = 0.0;
    for (int64_t j = first; j <= t; ++j) {
        const double p = std::exp(scores[size_t(j - first)] - max_score);
        sum += p;
        const uint16_t* value = kv.v.data() + shape.offset(j, kv_head, shape.kv_heads);
        for (int d = 0; d < d_count; ++d) expected[size_t(d)] += p * bf16_to_float(value[d]);
    }
    double error_squared = 0.0;
    double expected_squared = 0.0;
    for (int d = 0; d < d_count; ++d) {
        const double e = expected[size_t(d)] / sum;
        const double diff = double(bf16_to_float(out_bits[size_t(d)])) - e;
        error_squared += diff * diff;
        expected_squared += e * e;
    }
    const auto lse_value = copy_to_host(lse.data() + int64_t(h) * shape.tokens + t, 1);
    // NaN (an unwritten poison row or LSE) propagates and fails the caller's comparison.
    RowError error;
    error.relative = std::sqrt(error_squared / std::max(expected_squared, 1e-300));
    error.lse = std::abs(double(lse_value[0]) - (max_score + std::log(sum)));
    return error;
}

std::vector<int> checked_heads(int q_heads, std::mt19937_64& random) {
    if (q_heads == 1) return {0};
    // One head from each half, so that two different kv heads are read whenever Hkv > 1.
    const int half = q_heads / 2;
    return {int(random() % uint64_t(half)), half + int(random() % uint64_t(q_heads - half))};
}

// Up to `wanted` distinct entries of `from`, always including its last one (the longest row).
template <typename T>
std::vector<T> sample(const std::vector<T>& from, size_t wanted, std::mt19937_64& random) {
    if (from.size() <= wanted) return from;
    std::vector<T> picked{from.back()};
    std::vector<size_t> indices(from.size() - 1);
    for (size_t i = 0; i < indices.size(); ++i) indices[i] = i;
    for (size_t i = 0; i + 1 < wanted; ++i) {
        const size_t j = i + size_t(random() % uint64_t(indices.size() - i));
        std::swap(indices[i], indices[j]);
        picked.push_back(from[indices[i]]);
    }
    return picked;
}

struct CheckResult {
    double global_error = 0.0;
    double local_error = 0.0;
    double global_lse_error = 0.0;
    double local_lse_error = 0.0;
};

// Throws when a checked row is off; else folds its errors into the part's largest.
void take_row(const std::string& where, const char* part, int64_t t, int h, const RowError& error,
              double& largest, double& largest_lse) {
    const std::string row =
        std::string(part) + " row (token " + std::to_string(t) + ", head " + std::to_string(h);
    if (!(error.relative <= kMaxRelativeError)) {
        throw BenchError(where + row + "): relative error " + std::to_string(error.relative) +
                         " > " + std::to_string(kMaxRelativeError));
    }
    if (!(error.lse <= kMaxLseError)) {
        throw BenchError(where + row + "): log-sum-exp off by " + std::to_string(error.lse) +
                         " > " + std::to_string(kMaxLseError));
    }
    largest = std::max(largest, error.relative);
    largest_lse = std::max(largest_lse, error.lse);
}

CheckResult check_once(const Buffers& b, const HostKeysValues& kv,
                       const std::vector<int32_t>& routed, const std::vector<uint8_t>& decisions,
                       double fraction, uint64_t seed, cudaStream_t stream) {
    const Shape& s = b.shape;
    const InputSet& in = b.sets[0];
    BENCH_CUDA_CHECK(cudaMemsetAsync(b.out_global.data(), 0xff, b.out_global.bytes(), stream));
    BENCH_CUDA_CHECK(cudaMemsetAsync(b.out_local.data(), 0xff, b.out_local.bytes(), stream));
    BENCH_CUDA_CHECK(cudaMemsetAsync(b.positions.data(), 0xff, b.positions.bytes(), stream));
    BENCH_CUDA_CHECK(cudaMemsetAsync(b.lse_global.data(), 0xff, b.lse_global.bytes(), stream));
    BENCH_CUDA_CHECK(cudaMemsetAsync(b.lse_local.data(), 0xff, b.lse_local.bytes(), stream));
    run_global(b, in, stream, b.lse_global.data());
    run_local(b, in, stream, b.lse_local.data());
    BENCH_CUDA_CHECK(cudaStreamSynchronize(stream));

    const std::string where = "check at tokens " + std::to_string(s.tokens) + ", routed " +
                              std::to_string(fraction) + ": ";
    const auto count = copy_to_host(b.count.data(), 1);
    if (count[0] != int32_t(routed.size())) {
        throw BenchError(where + "compaction counted " + std::to_string(count[0]) +
                         " routed tokens, expected " + std::to_string(routed.size()));
    }
    if (copy_to_host(b.positions.data(), routed.size()) != routed) {
        throw BenchError(where + "compaction wrote wrong routed positions");
    }

    std::mt19937_64 random(seed);
    const std::vector<int> heads = checked_heads(s.q_heads, random);
    CheckResult result;
    for (const int32_t t : sample(routed, kCheckedRows, random)) {
        for (const int h : heads) {
            take_row(where, "global", t, h,
                     row_error(s, in, kv, b.out_global, b.lse_global, t, h, 0), result.global_error,
                     result.global_lse_error);
        }
    }
    // Unrouted rows of the global output must keep the poison (nothing else writes them).
    std::vector<int64_t> unrouted;
    for (int64_t t = 0; t < s.tokens; ++t) {
        if (decisions[size_t(t)] == 0) unrouted.push_back(t);
    }
    for (const int64_t t : sample(unrouted, kCheckedRows, random)) {
        const auto bits = copy_to_host(
            reinterpret_cast<const uint16_t*>(b.out_global.data()) + s.offset(t, 0, s.q_heads),
            size_t(s.q_heads) * s.head_dim);
        if (std::any_of(bits.begin(), bits.end(), [](uint16_t x) { return x != kPoison16; })) {
            throw BenchError(where + "global attention wrote the row of unrouted token " +
                             std::to_string(t));
        }
    }

    std::vector<int64_t> all_tokens(size_t(s.tokens));
    for (int64_t t = 0; t < s.tokens; ++t) all_tokens[size_t(t)] = t;
    std::vector<int64_t> local_rows = sample(all_tokens, kCheckedRows, random);
    local_rows.push_back(0);
    for (const int64_t t : local_rows) {
        for (const int h : heads) {
            const int64_t first = std::max<int64_t>(0, t - s.window + 1);
            take_row(where, "local", t, h,
                     row_error(s, in, kv, b.out_local, b.lse_local, t, h, first),
                     result.local_error, result.local_lse_error);
        }
    }
    return result;
}

// ---- timing ---------------------------------------------------------------------------------

double median(std::vector<double> times) {
    std::sort(times.begin(), times.end());
    const size_t middle = times.size() / 2;
    return times.size() % 2 == 1 ? times[middle] : 0.5 * (times[middle - 1] + times[middle]);
}

// Median times in ms of a run of two parts: the first part, the second, and the whole run.
struct SplitTimes {
    double first_ms, second_ms, whole_ms;
};

// Runs `first(set)` then `second(set)` warm-up + repeats times back to back, rotating through
// the input sets, with an event before, between and after the two parts, and returns the medians
// of the timed runs. Everything is enqueued before the one synchronization, so the GPU never
// waits for the host and launch latency is not timed.
template <typename First, typename Second>
SplitTimes median_split_ms(const Buffers& b, int warmup, int repeats, const EventPool& events,
                           cudaStream_t stream, First&& first, Second&& second) {
    const int runs = warmup + repeats;
    for (int i = 0; i < runs; ++i) {
        const InputSet& set = b.sets[size_t(i) % b.sets.size()];
        BENCH_CUDA_CHECK(cudaEventRecord(events[size_t(3 * i)], stream));
        first(set);
        BENCH_CUDA_CHECK(cudaEventRecord(events[size_t(3 * i + 1)], stream));
        second(set);
        BENCH_CUDA_CHECK(cudaEventRecord(events[size_t(3 * i + 2)], stream));
    }
    BENCH_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<double> firsts, seconds, wholes;
    const auto elapsed = [&](size_t from, size_t to) {
        float ms = 0.0f;
        BENCH_CUDA_CHECK(cudaEventElapsedTime(&ms, events[from], events[to]));
        return double(ms);
    };
    for (int i = warmup; i < runs; ++i) {
        const size_t e = size_t(3 * i);
        firsts.push_back(elapsed(e, e + 1));
        seconds.push_back(elapsed(e + 1, e + 2));
        wholes.push_back(elapsed(e, e + 2));
    }
    return {median(std::move(firsts)), median(std::move(seconds)), median(std::move(wholes))};
}

// The median time in ms of `launch(set)` alone, run as median_split_ms runs its parts.
template <typename Launch>
double median_ms(const Buffers& b, int warmup, int repeats, const EventPool& events,
                 cudaStream_t stream, Launch&& launch) {
    return median_split_ms(b, warmup, repeats, events, stream, launch, [](const InputSet&) {})
        .whole_ms;
}

// ---- main -----------------------------------------------------------------------------------

struct Row {
    int64_t tokens;
    double fraction;
    size_t count;
    double global_ms, global_tflops, global_causal;
    double local_ms, local_tflops, local_causal;
    double whole_ms, whole_tflops, whole_causal;
    double whole_global_ms, whole_local_ms;
    CheckResult check;
};

void print_row(const Row& r) {
    std::printf(
        "%8lld %6.2f %8zu %10.3f %8.1f %8.1f %10.3f %8.1f %8.1f %10.3f %8.1f %8.1f %8.3f %8.3f"
        " %8.1e %8.1e %8.1e %8.1e\n",
        static_cast<long long>(r.tokens), r.fraction, r.count, r.global_ms, r.global_tflops,
        r.global_causal, r.local_ms, r.local_tflops, r.local_causal, r.whole_ms, r.whole_tflops,
        r.whole_causal, r.whole_global_ms, r.whole_local_ms, r.check.global_error,
        r.check.local_error, r.check.global_lse_error, r.check.local_lse_error);
    std::fflush(stdout);
}

void write_csv_row(std::ofstream& csv, const Row& r) {
    char line[512];
    std::snprintf(line, sizeof(line),
                  "%lld,%g,%zu,%.4f,%.2f,%.2f,%.4f,%.2f,%.2f,%.4f,%.2f,%.2f,%.4f,%.4f,%.3e,%.3e,"
                  "%.3e,%.3e\n",
                  static_cast<long long>(r.tokens), r.fraction, r.count, r.global_ms,
                  r.global_tflops, r.global_causal, r.local_ms, r.local_tflops, r.local_causal,
                  r.whole_ms, r.whole_tflops, r.whole_causal, r.whole_global_ms, r.whole_local_ms,
                  r.check.global_error, r.check.local_error, r.check.global_lse_error,
                  r.check.local_lse_error);
    csv << line << std::flush;
    if (!csv) throw BenchError("--csv: writing failed");
}

double tflops(double flops, double ms) { return ms > 0.0 ? flops / ms / 1e9 : 0.0; }

int run(const Options& options) {
    int device = 0;
    BENCH_CUDA_CHECK(cudaGetDevice(&device));
    cudaDeviceProp props{};
    BENCH_CUDA_CHECK(cudaGetDeviceProperties(&props, device));
    if (props.major < 8) {
        throw BenchError(std::string(props.name) + ": compute capability " +
                         std::to_string(props.major) + "." + std::to_string(props.minor) +
                         " is below the 8.0 the kernels need");
    }
    int runtime_version = 0;
    BENCH_CUDA_CHECK(cudaRuntimeGetVersion(&runtime_version));
    const size_t l2_bytes = size_t(props.l2CacheSize);

    std::ofstream csv;
    if (!options.csv_path.empty()) {
        csv.open(options.csv_path);
        if (!csv) throw BenchError("--csv: cannot open '" + options.csv_path + "' for writing");
        csv << "tokens,routed_fraction,routed_count,global_ms,global_tflops,"
               "global_causal_equivalent_tflops,local_ms,local_tflops,"
               "local_causal_equivalent_tflops,whole_ms,whole_tflops,"
               "whole_causal_equivalent_tflops,whole_global_ms,whole_local_ms,"
               "global_max_rel_err,local_max_rel_err,"
               "global_max_lse_err,local_max_lse_err\n";
    }

    std::printf("%s (sm_%d%d, %d SMs, L2 %.0f MB), CUDA runtime %d.%d\n", props.name, props.major,
                props.minor, props.multiProcessorCount, double(l2_bytes) / 1e6,
                runtime_version / 1000, (runtime_version % 1000) / 10);
    std::printf(
        "bf16, %d/%d heads, head_dim %d, window %lld, warm-up %d, median of %d, "
        "seed %llu, q scale %g\n",
        options.q_heads, options.kv_heads, options.head_dim, static_cast<long long>(options.window),
        options.warmup, options.repeats, static_cast<unsigned long long>(options.seed),
        options.q_scale);
    // The dispatcher's choice is not visible through the API: report what was asked for
    // (automatic = wgmma on a 9.x device with sm_90a code, else mma.sync).
    const char* path = std::getenv("L2A_ATTENTION_PATH");
    std::printf("L2A_ATTENTION_PATH=%s\n",
                path != nullptr && path[0] != '\0' ? path : "(automatic)");
    std::printf("%8s %6s %8s %10s %8s %8s %10s %8s %8s %10s %8s %8s %8s %8s %8s %8s %8s %8s\n",
                "tokens", "routed", "count", "global_ms", "g_tflops", "g_causal", "local_ms",
                "l_tflops", "l_causal", "whole_ms", "w_tflops", "w_causal", "wg_ms", "wl_ms",
                "g_err", "l_err", "g_lse", "l_lse");

    Stream stream;
    const EventPool events(size_t(3 * (options.warmup + options.repeats)));
    for (const int64_t tokens : options.tokens) {
        const Shape shape{tokens, options.q_heads, options.kv_heads, options.head_dim,
                          options.window};
        const size_t set_bytes = (shape.q_elements() + 2 * shape.kv_elements()) * 2;
        const int set_count =
            options.input_sets > 0 ? options.input_sets : (set_bytes < 4 * l2_bytes ? 3 : 1);

        Buffers b{shape,
                  {},
                  DeviceArray<__nv_bfloat16>(shape.q_elements()),
                  DeviceArray<__nv_bfloat16>(shape.q_elements()),
                  DeviceArray<float>(size_t(tokens) * size_t(options.q_heads)),
                  DeviceArray<float>(size_t(tokens) * size_t(options.q_heads)),
                  DeviceArray<uint8_t>(size_t(tokens)),
                  DeviceArray<int32_t>(size_t(tokens)),
                  DeviceArray<int32_t>(1),
                  DeviceArray<unsigned char>(kernels::routed_compaction_workspace_bytes(tokens))};
        for (int i = 0; i < set_count; ++i) {
            InputSet set{DeviceArray<__nv_bfloat16>(shape.q_elements()),
                         DeviceArray<__nv_bfloat16>(shape.kv_elements()),
                         DeviceArray<__nv_bfloat16>(shape.kv_elements())};
            const uint64_t base = options.seed ^ mix64(uint64_t(tokens) * 16 + uint64_t(i) * 4);
            fill_random(set.q, base + 1, stream.get(), options.q_scale);
            fill_random(set.k, base + 2, stream.get());
            fill_random(set.v, base + 3, stream.get());
            b.sets.push_back(std::move(set));
        }
        BENCH_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
        const InputSet& checked = b.sets[0];
        const HostKeysValues kv{
            copy_to_host(reinterpret_cast<const uint16_t*>(checked.k.data()), checked.k.count()),
            copy_to_host(reinterpret_cast<const uint16_t*>(checked.v.data()), checked.v.count())};
        if (set_count > 1) {
            std::printf("# tokens %lld: one input set is %.0f MB, rotating %d sets\n",
                        static_cast<long long>(tokens), double(set_bytes) / 1e6, set_count);
        }

        const double local = local_flops(shape);
        const double causal = causal_flops(shape);
        for (size_t f = 0; f < options.fractions.size(); ++f) {
            const double fraction = options.fractions[f];
            const uint64_t routing_seed = options.seed ^ mix64(uint64_t(tokens) * 64 + f + 1);
            std::mt19937_64 random(routing_seed);
            std::bernoulli_distribution routed_draw(fraction);
            std::vector<uint8_t> decisions(static_cast<size_t>(tokens));
            std::vector<int32_t> routed;
            for (int64_t t = 0; t < tokens; ++t) {
                decisions[size_t(t)] = routed_draw(random) ? 1 : 0;
                if (decisions[size_t(t)] != 0) routed.push_back(int32_t(t));
            }
            BENCH_CUDA_CHECK(cudaMemcpy(b.decisions.data(), decisions.data(), decisions.size(),
                                        cudaMemcpyHostToDevice));

            Row row{};
            row.tokens = tokens;
            row.fraction = fraction;
            row.count = routed.size();
            row.check =
                check_once(b, kv, routed, decisions, fraction, mix64(routing_seed), stream.get());

            const double global = global_flops(shape, routed);
            cudaStream_t s = stream.get();
            row.global_ms = median_ms(b, options.warmup, options.repeats, events, s,
                                      [&](const InputSet& in) { run_global(b, in, s); });
            row.local_ms = median_ms(b, options.warmup, options.repeats, events, s,
                                     [&](const InputSet& in) { run_local(b, in, s); });
            const SplitTimes whole = median_split_ms(
                b, options.warmup, options.repeats, events, s,
                [&](const InputSet& in) { run_global(b, in, s); },
                [&](const InputSet& in) { run_local(b, in, s); });
            row.whole_ms = whole.whole_ms;
            row.whole_global_ms = whole.first_ms;
            row.whole_local_ms = whole.second_ms;
            row.global_tflops = tflops(global, row.global_ms);
            row.global_causal = tflops(causal, row.global_ms);
            row.local_tflops = tflops(local, row.local_ms);
            row.local_causal = tflops(causal, row.local_ms);
            row.whole_tflops = tflops(global + local, row.whole_ms);
            row.whole_causal = tflops(causal, row.whole_ms);
            print_row(row);
            if (csv.is_open()) write_csv_row(csv, row);
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        Options options;
        if (!parse_options(argc, argv, options)) {
            std::fputs(kUsage, stdout);
            return 0;
        }
        return run(options);
    } catch (const std::exception& error) {
        std::fflush(stdout);
        std::fprintf(stderr, "bench_attention_kernels: %s\n", error.what());
        return 1;
    }
}
