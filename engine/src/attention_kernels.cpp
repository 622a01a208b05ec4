// The kernels backend: the project's sliding-window and routed global attention kernels, called
// on LibTorch's tensors and current stream.
#include <c10/cuda/CUDAStream.h>

#include <string>

#include "attention.h"
#include "l2a/engine/error.h"
#include "l2a/kernels/attention.h"
#include "l2a/kernels/fused_ops.h"

namespace l2a {
namespace {

kernels::ElementType element_type(const at::Tensor& t) {
    if (t.scalar_type() == at::kBFloat16) return kernels::ElementType::bf16;
    if (t.scalar_type() == at::kHalf) return kernels::ElementType::fp16;
    fail("", std::string("--backend kernels: needs bf16 or fp16 tensors, got ") +
                 c10::toString(t.scalar_type()));
}

// A [rows, heads, D] tensor with D contiguous, as the kernels take it.
kernels::ConstTokenHeadTensor read_view(const at::Tensor& t) {
    return {t.data_ptr(), t.stride(0), t.stride(1)};
}
kernels::TokenHeadTensor write_view(at::Tensor& t) {
    return {t.data_ptr(), t.stride(0), t.stride(1)};
}

cudaStream_t stream_of(const at::Tensor& t) {
    return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}

const void* optional_data(const at::Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

// Runs a fused operator; its errors become the engine's.
template <typename Launch>
void fused(const char* what, Launch&& launch) {
    try {
        launch();
    } catch (const kernels::KernelError& e) {
        fail("", std::string("--backend kernels: ") + what + ": " + e.what());
    }
}

}  // namespace

void fused_add_rms_norm(const at::Tensor& x, const at::Tensor& residual, const at::Tensor& sum_out,
                        const at::Tensor& weight, double eps, const at::Tensor& y,
                        const at::Tensor& router_weight, const at::Tensor& router_logits) {
    kernels::AddRmsNormArgs args;
    args.element_type = element_type(x);
    args.rows = x.size(0);
    args.cols = static_cast<int>(x.size(1));
    args.eps = static_cast<float>(eps);
    args.x = x.data_ptr();
    args.x_row_stride = x.stride(0);
    args.residual = optional_data(residual);
    args.residual_row_stride = residual.defined() ? residual.stride(0) : 0;
    args.sum_out = sum_out.defined() ? sum_out.data_ptr() : nullptr;
    args.sum_row_stride = sum_out.defined() ? sum_out.stride(0) : 0;
    args.weight = weight.data_ptr();
    args.y = y.data_ptr();
    args.y_row_stride = y.stride(0);
    args.router_weight = optional_data(router_weight);
    args.router_logits = router_logits.defined() ? router_logits.data_ptr<float>() : nullptr;
    fused("add + RMSNorm", [&] { kernels::add_rms_norm_forward(args, stream_of(x)); });
}

void fused_norm_rope(const at::Tensor& x, const at::Tensor& norm_weight, double eps,
                     const RopeTables& rope, const at::Tensor& positions32) {
    kernels::RopeArgs args;
    args.element_type = element_type(x);
    args.rows = x.size(0);
    args.heads = static_cast<int>(x.size(1));
    args.head_dim = static_cast<int>(x.size(2));
    args.data = x.data_ptr();
    args.token_stride = x.stride(0);
    args.head_stride = x.stride(1);
    args.norm_weight = optional_data(norm_weight);
    args.eps = static_cast<float>(eps);
    args.cos = rope.cos.data_ptr<float>();
    args.sin = rope.sin.data_ptr<float>();
    args.table_rows = rope.cos.size(0);
    args.positions = positions32.defined() ? positions32.data_ptr<std::int32_t>() : nullptr;
    if (args.rows == 0) return;
    fused("QK-norm + RoPE", [&] { kernels::rope_forward(args, stream_of(x)); });
}

void fused_scatter_add_rows(const at::Tensor& dst, const at::Tensor& src,
                            const at::Tensor& positions32, const at::Tensor& count32) {
    kernels::ScatterAddArgs args;
    args.element_type = element_type(dst);
    args.tokens = dst.size(0);
    args.cols = static_cast<int>(dst.size(1));
    args.dst = dst.data_ptr();
    args.dst_row_stride = dst.stride(0);
    args.src = src.data_ptr();
    args.src_row_stride = src.stride(0);
    args.positions = positions32.data_ptr<std::int32_t>();
    args.count = count32.data_ptr<std::int32_t>();
    fused("gated scatter-add", [&] { kernels::scatter_add_rows(args, stream_of(dst)); });
}

void fused_silu_mul(const at::Tensor& gate, const at::Tensor& up, const at::Tensor& out) {
    kernels::SiluMulArgs args;
    args.element_type = element_type(gate);
    args.rows = gate.size(0);
    args.cols = gate.size(1);
    args.gate = gate.data_ptr();
    args.gate_row_stride = gate.stride(0);
    args.up = up.data_ptr();
    args.up_row_stride = up.stride(0);
    args.out = out.data_ptr();
    args.out_row_stride = out.stride(0);
    fused("SiLU x up", [&] { kernels::silu_mul_forward(args, stream_of(gate)); });
}

at::Tensor kernels_attention(const at::Tensor& q, const QueryRows& rows, const at::Tensor& k,
                             const at::Tensor& v, std::int64_t window, std::int64_t /*query_block*/,
                             const std::function<void()>& check) {
    const std::int64_t n = q.size(0);
    const std::int64_t hq = q.size(1);
    const std::int64_t dim = q.size(2);
    const std::int64_t tokens = k.size(0);
    at::Tensor out = at::empty({n, hq, dim}, q.options());
    if (n == 0) return out.view({0, hq * dim});
    if (check) check();

    kernels::AttentionShape shape;
    shape.tokens = tokens;
    shape.q_heads = static_cast<int>(hq);
    shape.kv_heads = static_cast<int>(k.size(1));
    shape.head_dim = static_cast<int>(dim);
    shape.element_type = element_type(q);
    const cudaStream_t stream = stream_of(q);
    const at::Tensor qc = q.contiguous();
    const at::Tensor kc = k.contiguous();
    const at::Tensor vc = v.contiguous();
    try {
        if (rows.all) {
            // Full causal attention is a window as long as the sequence.
            kernels::SlidingWindowAttentionArgs args;
            args.shape = shape;
            args.q = read_view(qc);
            args.k = read_view(kc);
            args.v = read_view(vc);
            args.out = write_view(out);
            args.window = window > 0 ? window : tokens;
            kernels::sliding_window_attention_forward(args, stream);
        } else {
            // Packed: Q and O hold the routed rows only, in routing order.
            const at::Tensor positions = rows.device_positions32.defined()
                                             ? rows.device_positions32
                                             : rows.device_positions.to(at::kInt);
            const at::Tensor count =
                at::full({1}, n, at::TensorOptions().dtype(at::kInt).device(q.device()));
            kernels::GlobalAttentionArgs args;
            args.shape = shape;
            args.q = read_view(qc);
            args.k = read_view(kc);
            args.v = read_view(vc);
            args.out = write_view(out);
            args.routed_positions = positions.data_ptr<std::int32_t>();
            args.routed_count = count.data_ptr<std::int32_t>();
            args.packed = true;
            kernels::global_attention_forward(args, stream);
        }
    } catch (const kernels::KernelError& e) {
        fail("", std::string("--backend kernels: ") + e.what());
    }
    return out.view({n, hq * dim});
}

at::Tensor kernels_distant_mass(const at::Tensor& q, const at::Tensor& k, std::int64_t window) {
    const std::int64_t tokens = q.size(0);
    const std::int64_t hq = q.size(1);
    const at::Tensor qc = q.contiguous();
    const at::Tensor kc = k.contiguous();
    const at::TensorOptions f32 = q.options().dtype(at::kFloat);
    at::Tensor out = at::empty_like(qc);  // the attention outputs: not needed, not always written
    at::Tensor lse_all = at::empty({hq, tokens}, f32);
    at::Tensor lse_window = at::empty({hq, tokens}, f32);

    kernels::SlidingWindowAttentionArgs args;
    args.shape.tokens = tokens;
    args.shape.q_heads = static_cast<int>(hq);
    args.shape.kv_heads = static_cast<int>(k.size(1));
    args.shape.head_dim = static_cast<int>(q.size(2));
    args.shape.element_type = element_type(q);
    args.q = read_view(qc);
    args.k = read_view(kc);
    args.v = read_view(kc);  // any values do: only the LSEs are used
    args.out = write_view(out);
    args.lse_only = true;
    const cudaStream_t stream = stream_of(q);
    try {
        args.lse = lse_all.data_ptr<float>();
        args.window = tokens;
        kernels::sliding_window_attention_forward(args, stream);
        args.lse = lse_window.data_ptr<float>();
        args.window = window;
        kernels::sliding_window_attention_forward(args, stream);
    } catch (const kernels::KernelError& e) {
        fail("", std::string("the routing oracle's kernels: ") + e.what());
    }
    at::Tensor mass = (1.0 - at::exp(lse_window - lse_all)).clamp_(0.0, 1.0).t().contiguous();
    if (window < tokens) {
        mass.narrow(0, 0, window).zero_();  // the window still holds every key
    } else {
        mass.zero_();
    }
    return mass;
}

}  // namespace l2a
