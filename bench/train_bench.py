#!/usr/bin/env python3
"""Training throughput of `mds train` beside a PyTorch peer, same model, batch and machine.

    /usr/bin/python3 bench/train_bench.py [--layers 4 --hidden 256 ...] [--threads N]

Both sides train the same Llama (RMSNorm, RoPE, GQA, SwiGLU, untied head over the padded
GPT-2 vocabulary) in fp32 with AdamW and gradient clipping on the Brown corpus
(data/brown_text_document, made by scripts/quickstart.sh or scripts/test.sh), with the same
micro-batch, gradient accumulation and thread count. The peer is tests/reference/torch_llama.py
(Hugging Face's Llama equations, PyTorch eager; Debian's torch 1.13 has no fused SDPA on CPU).
Reported per implementation: tokens/s, TFLOP/s with Megatron's formula, and MFU against the
peak FLOP/s of this machine measured as the best large fp32 GEMM rate (torch.mm) in this run.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))


def megatron_flops(a, vpad):
    B, s, L, h = a.micro * a.accum, a.seq, a.layers, a.hidden
    return 12 * B * s * L * h * h * (1 + a.ffn / h * 1.5 + a.kv_heads / a.heads + s / h
                                     + vpad / (2 * L * h))


def run_mds(a, prefix):
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.jsonl")
        cmd = [a.mds, "train", "--num-layers", str(a.layers),
               "--hidden-size", str(a.hidden), "--ffn-hidden-size", str(a.ffn),
               "--num-attention-heads", str(a.heads), "--num-key-value-heads", str(a.kv_heads),
               "--seq-length", str(a.seq), "--micro-batch-size", str(a.micro),
               "--global-batch-size", str(a.micro * a.accum), "--train-iters", str(a.iters),
               "--lr", "1e-3", "--weight-decay", "0.1", "--clip-grad", "1.0",
               "--data-path", prefix, "--tokenizer-type", "GPT2BPETokenizer",
               "--vocab-file", os.path.join(ROOT, "data", "gpt2-vocab.json"),
               "--merge-file", os.path.join(ROOT, "data", "gpt2-merges.txt"),
               "--log-interval", "1", "--eval-iters", "0", "--log-json", log]
        env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        rows = [r for r in map(json.loads, open(log)) if "iteration" in r]
    times = [r["elapsed_time_per_iteration_ms"] / 1e3 for r in rows[a.warmup:]]
    return sum(times) / len(times), rows[-1]["lm_loss"]


def run_torch(a, prefix, vpad):
    import numpy as np
    import torch
    from torch_llama import Llama
    torch.manual_seed(1234)
    torch.set_num_threads(a.threads)
    m = Llama(a.layers, a.hidden, a.ffn, a.heads, a.kv_heads, 50257, vpad, a.seq)
    decay = [p for n, p in m.named_parameters() if p.ndim > 1]
    other = [p for n, p in m.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}], lr=1e-3, foreach=True)
    tokens = np.memmap(prefix + ".bin", dtype=np.uint16, mode="r")
    rng = np.random.default_rng(0)
    times, loss = [], 0.0
    for it in range(a.iters):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for _ in range(a.accum):
            starts = rng.integers(0, len(tokens) - a.seq - 1, a.micro)
            batch = torch.from_numpy(np.stack([tokens[s:s + a.seq + 1] for s in starts]).astype(np.int64))
            l = m(batch[:, :-1], batch[:, 1:]) / a.accum
            l.backward()
            loss += l.item()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    times = times[a.warmup:]
    return sum(times) / len(times)


def gemm_peak(threads):
    import torch
    torch.set_num_threads(threads)
    n, best = 2048, 0.0
    x, y = torch.randn(n, n), torch.randn(n, n)
    for _ in range(5):
        t0 = time.perf_counter()
        torch.mm(x, y)
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0))
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--ffn", type=int, default=0, help="0: int(8h/3/64)*64")
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--accum", type=int, default=2)
    ap.add_argument("--iters", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2, help="iterations left out of the timing")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--mds", default=os.path.join(ROOT, "build", "mds"), help="the mds binary")
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "brown_text_document"))
    a = ap.parse_args()
    a.ffn = a.ffn or int(8 * a.hidden / 3 / 64) * 64
    vpad = (50257 + 127) // 128 * 128
    if not os.path.exists(a.data + ".idx"):
        sys.exit(f"no {a.data}.idx: run scripts/quickstart.sh (or scripts/test.sh) first")
    tokens = a.micro * a.accum * a.seq
    flops = megatron_flops(a, vpad)
    peak = gemm_peak(a.threads)
    results = [("mds", run_mds(a, a.data)[0]), ("PyTorch " + __import__("torch").__version__,
                                                 run_torch(a, a.data, vpad))]
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"machine: {cpu}, {a.threads} threads; model: {a.layers} layers, hidden {a.hidden}, "
          f"ffn {a.ffn}, heads {a.heads} (kv {a.kv_heads}), seq {a.seq}, batch {a.micro}x{a.accum}; "
          f"measured fp32 GEMM peak {peak / 1e9:.1f} GFLOP/s")
    print(f"{'implementation':<16} {'s/iter':>8} {'tokens/s':>10} {'TFLOP/s':>8} {'MFU':>7}")
    for name, t in results:
        print(f"{name:<16} {t:8.3f} {tokens / t:10.1f} {flops / t / 1e12:8.4f} {flops / t / peak:7.1%}")
    print(f"speed-up of mds over PyTorch: {results[1][1] / results[0][1]:.2f}x")


if __name__ == "__main__":
    main()
