"""Full causal attention through PyTorch SDPA (cuDNN and FlashAttention backends): the baselines
that bench_attention_kernels is compared with, timed the same way (CUDA events, warm-up, median).

    python3 kernels/bench/sdpa_baseline.py [--tokens 8192,32768,131072] [--heads 28/4] [--csv FILE]
"""
import argparse
import statistics

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F


def time_ms(fn, warmup=3, repeat=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", default="8192,32768,131072")
    parser.add_argument("--heads", default="28/4")
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--csv")
    args = parser.parse_args()
    hq, hkv = (int(x) for x in args.heads.split("/"))
    d = args.head_dim
    rows = []
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {hq}/{hkv}/{d} bf16 causal")
    print(f"{'tokens':>8} {'backend':>10} {'ms':>10} {'TFLOP/s':>9}")
    for n in (int(x) for x in args.tokens.split(",")):
        g = torch.Generator(device="cuda").manual_seed(n)
        q = torch.randn(1, hq, n, d, device="cuda", dtype=torch.bfloat16, generator=g)
        k = torch.randn(1, hkv, n, d, device="cuda", dtype=torch.bfloat16, generator=g)
        v = torch.randn(1, hkv, n, d, device="cuda", dtype=torch.bfloat16, generator=g)
        flops = 4.0 * d * hq * n * (n + 1) / 2
        for name, backend in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)):
            try:
                with sdpa_kernel(backend):
                    ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
            except RuntimeError as e:  # a backend that refuses the shape
                print(f"{n:>8} {name:>10} unavailable: {str(e).splitlines()[0]}")
                continue
            rows.append((n, name, ms, flops / ms / 1e9))
            print(f"{n:>8} {name:>10} {ms:>10.2f} {flops / ms / 1e9:>9.1f}")
        del q, k, v
        torch.cuda.empty_cache()
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("tokens,backend,ms,tflops\n")
            for r in rows:
                f.write(f"{r[0]},{r[1]},{r[2]:.4f},{r[3]:.2f}\n")


if __name__ == "__main__":
    main()
