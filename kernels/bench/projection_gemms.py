"""The attention projections of a prefill as cuBLAS GEMMs (bf16, y = x W^T, x [tokens, hidden]):
separate Q, K and V products against one fused product, and whole against row-chunked calls.
Decides whether fusing the projections is worth building; timed like sdpa_baseline.py (CUDA
events, warm-up, median of 20), one shape after another with no pause, so that the GPU stays
at its power cap as in a prefill.

    python3 kernels/bench/projection_gemms.py [--tokens 131072] [--hidden 4096]
        [--q-out 4096] [--kv-out 1024] [--chunk 16384] [--rounds 2]
"""
import argparse
import statistics


def time_ms(torch, fn, warmup=3, repeat=20):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeat):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=131072)
    parser.add_argument("--hidden", type=int, default=4096, help="input width (qwen3-8b: 4096)")
    parser.add_argument("--q-out", type=int, default=4096, help="query heads x head dim")
    parser.add_argument("--kv-out", type=int, default=1024, help="kv heads x head dim")
    parser.add_argument("--chunk", type=int, default=16384, help="rows per call, chunked rows")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import torch  # after the arguments: --help works without it

    if not torch.cuda.is_available():
        raise SystemExit("projection_gemms.py: needs a CUDA GPU")
    x = torch.randn(args.tokens, args.hidden, device="cuda", dtype=torch.bfloat16)

    def bench(label, out, chunk=None):
        w = torch.randn(out, args.hidden, device="cuda", dtype=torch.bfloat16)
        rows = chunk or args.tokens

        def run():
            for r0 in range(0, args.tokens, rows):
                torch.matmul(x[r0:r0 + rows], w.t())

        ms = time_ms(torch, run)
        tflops = 2.0 * args.tokens * args.hidden * out / (ms * 1e-3) / 1e12
        print(f"{label:36s} N={out:6d} rows/call={rows:7d} {ms:8.3f} ms {tflops:6.1f} TF/s",
              flush=True)
        return ms

    name = torch.cuda.get_device_name()
    print(f"{name}, bf16, x [{args.tokens} x {args.hidden}], median of 20 after 3 warm-ups")
    for r in range(args.rounds):
        print(f"-- round {r + 1}")
        q = bench("Q alone", args.q_out)
        k = bench("K (or V) alone", args.kv_out)
        qkv = bench("Q, K, V fused", args.q_out + 2 * args.kv_out)
        kv = bench("K, V fused", 2 * args.kv_out)
        print(f"   Q + K + V: {q + 2 * k:.3f} ms separate, {qkv:.3f} ms fused; "
              f"K + V: {2 * k:.3f} ms separate, {kv:.3f} ms fused")
        bench("Q in chunks", args.q_out, args.chunk)
        bench("Q, K, V fused in chunks", args.q_out + 2 * args.kv_out, args.chunk)


if __name__ == "__main__":
    main()
