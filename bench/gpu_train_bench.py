#!/usr/bin/env python3
"""Training throughput on one GPU: mds beside PyTorch + Hugging Face LlamaForCausalLM, one run.

    python3 bench/gpu_train_bench.py --config all [--mds build-gpu/mds] [--out bench.json]
    python3 bench/gpu_train_bench.py --config 1b --micro 8 --modes bf16,compile
    /usr/bin/python3 bench/gpu_train_bench.py --smoke      # CPU, tiny, no GPU or transformers needed

Configurations (flags override any field; defaults fit an 80 GB H100 with room to spare):
  125m  12 layers, hidden 768, 12 heads (12 kv), ffn 2048, seq 1024, micro-batch 8   (~162M
        parameters with the untied 50304-row embedding and head; ~85M without)
  1b    16 layers, hidden 2048, 16 heads (8 kv), ffn 5440, seq 2048, micro-batch 4 (~0.94B)
  ffn defaults to Megatron's SwiGLU size int(8h/3/64)*64; vocabulary: GPT-2's 50257 padded to
  50304 (a multiple of 128, as Megatron and mds pad it); RoPE theta 10000, RMSNorm eps 1e-5.

PyTorch modes, each timed after warm-up with CUDA events, AdamW (lr 3e-4, betas 0.9/0.95,
weight decay 0.1 on matrices only, torch.optim.AdamW(fused=True)), gradient clipping at 1.0:
  fp32      plain fp32, TF32 off: the like-for-like peer of mds's fp32 GPU path (MDS_DEVICE=cuda
            without --bf16), which the mds row runs while mds's bf16 path is not wired in.
  autocast  fp32 weights, torch.autocast(bf16) over forward and loss: the usual PyTorch recipe
            (the fp32 weights are the master copy; every GEMM casts them to bf16 again).
  bf16      Megatron's recipe (Float16OptimizerWithFloat16Params + fp32 main_grad): the model
            in bf16 (RoPE's inv_freq kept fp32), each parameter's bf16 gradient added into an
            fp32 main_grad as soon as it is accumulated (post-accumulate-grad hook) and freed,
            clipping and fused AdamW on fp32 master weights, the masters copied back to bf16.
            This is what mds --bf16 implements (DESIGN.md, Precision), so it is the faithful peer.
  compile   the fastest of the above with torch.compile(forward + loss) (default options).
Attention is Hugging Face's attn_implementation="sdpa" (no mask: PyTorch's causal flash /
cuDNN kernel; --sdpa-backend forces one). The loss is computed here on the logits, not by
passing labels: each sample is seq+1 tokens, inputs the first seq, targets the next seq, so a
step trains micro*accum*seq tokens exactly as in Megatron and mds (HF's labels= path would
shift inside the sequence and train seq-1). The softmax runs over the 50257 real tokens in fp32
(padded rows excluded, as mds does).

Reported per row: tokens/s, TFLOP/s per GPU with Megatron's formula (the one of
bench/train_bench.py and mds's log line: 12*B*s*L*h^2*(1 + 1.5*ffn/h + kv/heads + s/h +
Vpad/(2*L*h)), no causal halving), MFU against the dense bf16 peak looked up from the device
name (H100 SXM 989, H100 PCIe 756, H200 989, A100 312 TFLOP/s, ...; --peak-tflops overrides;
unknown names print "peak unknown"), peak memory (torch.cuda.max_memory_allocated), the final
loss. The best measured 8192^3 bf16 GEMM rate is printed too, as the achievable ceiling.

mds: with --mds PATH, `mds train --help` is read for --bf16 and a one-iteration --bf16 probe
is run; the mds row is `mds train --bf16` (on the GPU when one is visible), and on a GPU a
second row times mds's fp32 path (MDS_DEVICE=cuda, no --bf16) beside PyTorch's fp32 mode.
Data: data/brown_text_document (scripts/quickstart.sh makes it) when present, else uniform
random tokens (--data random forces them); mds gets the same kind (a random-token .bin/.idx is
written for it). Results: a markdown table on stdout, and a JSON file (--out) with the same
table beside it (.md), both rewritten after every row so that a run cut short keeps its rows.

--profile-iters N: after every row, mds runs N iterations of each config with --timing-log-level 2
(each kernel timed with CUDA events and synchronised) and its kernel table, where mds's time goes,
is kept in the JSON ("profiles"), the .md and stdout.

--smoke: a 2-layer model, 3 steps, fp32 on the CPU, the peer being tests/reference/torch_llama.py
when transformers is missing: exercises everything but the GPU (Debian's torch 1.13 has neither
torch.compile nor SDPA, which are then reported as skipped).
"""
import argparse
import contextlib
import gc
import inspect
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))

VOCAB = 50257  # GPT-2

CONFIGS = {
    "125m": dict(layers=12, hidden=768, heads=12, kv_heads=12, seq=1024, micro=8),
    "1b": dict(layers=16, hidden=2048, heads=16, kv_heads=8, seq=2048, micro=4),
    "smoke": dict(layers=2, hidden=64, heads=4, kv_heads=2, seq=32, micro=2),
}
OVERRIDES = ("layers", "hidden", "ffn", "heads", "kv_heads", "seq", "micro", "accum")

# Dense bf16 tensor-core peaks (no 2:4 sparsity), first match on the lower-cased device name
# wins, so specific names come first. The same table as mds's launch::gpu_peak_flops.
PEAKS = [("gh200", 989), ("h200", 989), ("h100 pcie", 756), ("h100 nvl", 835), ("h100", 989),
         ("h800", 989), ("b200", 2250), ("b100", 1750), ("a100", 312), ("a800", 312),
         ("l40s", 362), ("l40", 181), ("a40", 150), ("a30", 165), ("a10", 125), ("l4", 121)]


def peak_tflops(name):
    low = name.lower()
    return next((p for key, p in PEAKS if key in low), None)


def megatron_flops(c):
    """Megatron-DeepSpeed's TFLOPs numerator for one step (megatron/utils.py, NVIDIA's formula)."""
    B, s, L, h = c["micro"] * c["accum"], c["seq"], c["layers"], c["hidden"]
    return 12 * B * s * L * h * h * (1 + c["ffn"] / h * 1.5 + c["kv_heads"] / c["heads"] + s / h
                                     + c["vpad"] / (2 * L * h))


def param_count(c):
    h, L, hd = c["hidden"], c["layers"], c["hidden"] // c["heads"]
    attn = 2 * h * h + 2 * h * c["kv_heads"] * hd
    return L * (attn + 3 * h * c["ffn"] + 2 * h) + h + 2 * c["vpad"] * h


# ---------------------------------------------------------------- models (the peers)

def build_hf(c, device):
    """LlamaForCausalLM with SDPA attention, for transformers 4.4x-4.5x and 5.x."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    kw = dict(vocab_size=c["vpad"], hidden_size=c["hidden"], intermediate_size=c["ffn"],
              num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
              num_key_value_heads=c["kv_heads"], max_position_embeddings=c["seq"],
              rms_norm_eps=1e-5, tie_word_embeddings=False, use_cache=False, hidden_act="silu",
              attention_bias=False, initializer_range=0.02)
    # transformers 5 folded rope_theta into rope_parameters (and dropped the attribute).
    if "rope_parameters" in inspect.signature(LlamaConfig).parameters:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0}
    else:
        kw["rope_theta"] = 10000.0
    config = LlamaConfig(**kw)
    with torch.device(device):
        try:
            model = LlamaForCausalLM._from_config(config, attn_implementation="sdpa")
        except (AttributeError, TypeError, ValueError):  # no _from_config, or no such kwarg
            config._attn_implementation = "sdpa"
            model = LlamaForCausalLM(config)
    attn = getattr(model.config, "_attn_implementation", None)
    if attn != "sdpa":
        raise RuntimeError(f"LlamaForCausalLM chose attention {attn!r}, not 'sdpa'")

    def loss_fn(x, y):
        logits = model(input_ids=x, use_cache=False).logits
        return torch.nn.functional.cross_entropy(
            logits[..., :VOCAB].float().reshape(-1, VOCAB), y.reshape(-1))
    return model, loss_fn, "HF LlamaForCausalLM (sdpa)"


def build_reference(c, device):
    """tests/reference/torch_llama.py: the same equations in plain PyTorch (CPU fallback)."""
    import torch
    from torch_llama import Llama
    model = Llama(c["layers"], c["hidden"], c["ffn"], c["heads"], c["kv_heads"], VOCAB, c["vpad"],
                  c["seq"]).to(device)
    sdpa = hasattr(torch.nn.functional, "scaled_dot_product_attention")
    return model, (lambda x, y: model(x, y, sdpa=sdpa)), \
        "torch_llama.py (" + ("sdpa" if sdpa else "eager attention") + ")"


def have_transformers():
    try:
        import transformers  # noqa: F401
        return True
    except ImportError:
        return False


# ---------------------------------------------------------------- data

class Batches:
    """A pool of [accum, micro, seq+1] token blocks on the device, made before timing."""

    def __init__(self, c, device, data, pool=8):
        import numpy as np
        import torch
        shape = (c["accum"], c["micro"], c["seq"] + 1)
        g = torch.Generator().manual_seed(1234)
        if data == "random":
            self.blocks = [torch.randint(0, VOCAB, shape, generator=g) for _ in range(pool)]
        else:
            tokens = np.memmap(data + ".bin", dtype=np.uint16, mode="r")
            rng = np.random.default_rng(1234)
            self.blocks = []
            for _ in range(pool):
                starts = rng.integers(0, len(tokens) - c["seq"] - 1, shape[0] * shape[1])
                b = np.stack([tokens[s:s + c["seq"] + 1] for s in starts]).astype(np.int64)
                self.blocks.append(torch.from_numpy(b).view(*shape))
        self.blocks = [b.to(device) for b in self.blocks]

    def __getitem__(self, i):
        return self.blocks[i % len(self.blocks)]


# ---------------------------------------------------------------- training steps

def make_adamw(params, fused):
    import torch
    decay = [p for p in params if p.ndim > 1]
    other = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}]
    sig = inspect.signature(torch.optim.AdamW).parameters
    kw = {"fused": True} if fused and "fused" in sig else ({"foreach": True} if "foreach" in sig else {})
    return torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95), eps=1e-8, **kw), \
        ("fused" if "fused" in kw else "foreach" if kw else "for-loop")


def clip(params, max_norm):
    import torch
    if "foreach" in inspect.signature(torch.nn.utils.clip_grad_norm_).parameters:
        return torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
    return torch.nn.utils.clip_grad_norm_(params, max_norm)


class AutocastTrainer:
    """fp32 weights, bf16 autocast over forward and loss (disabled when low is fp32)."""

    def __init__(self, model, loss_fn, device, low, fused):
        import torch
        self.model, self.loss_fn, self.device, self.low = model, loss_fn, device, low
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt, self.opt_kind = make_adamw(self.params, fused)
        self.autocast = low != torch.float32

    def step(self, block):
        import torch
        self.opt.zero_grad(set_to_none=True)
        total = 0.0
        for x in block:
            with (torch.autocast(self.device.type, dtype=self.low) if self.autocast
                  else contextlib.nullcontext()):
                loss = self.loss_fn(x[:, :-1], x[:, 1:]) / len(block)
            loss.backward()
            total = total + loss.detach()
        clip(self.params, 1.0)
        self.opt.step()
        return total


class MasterTrainer:
    """Megatron's bf16: low-precision model, fp32 main_grad and master weights, fp32 AdamW."""

    def __init__(self, model, loss_fn, device, low, fused):
        import torch
        keep = {n: b.clone() for n, b in model.named_buffers()}  # RoPE tables stay fp32
        model.to(low)
        for name, b in keep.items():
            mod, _, leaf = name.rpartition(".")
            (model.get_submodule(mod) if mod else model)._buffers[leaf] = b
        self.model, self.loss_fn = model, loss_fn
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.masters = [p.detach().clone().float() for p in self.params]
        for p, m in zip(self.params, self.masters):
            m.grad = torch.zeros_like(m)
            p.main_grad = m.grad
        self.main_grads = [m.grad for m in self.masters]
        self.hooked = hasattr(torch.Tensor, "register_post_accumulate_grad_hook")
        if self.hooked:  # Megatron's DDP hook: add into main_grad as soon as it exists, free it
            def into_main(p):
                p.main_grad.add_(p.grad)
                p.grad = None
            for p in self.params:
                p.register_post_accumulate_grad_hook(into_main)
        self.opt, self.opt_kind = make_adamw(self.masters, fused)

    def step(self, block):
        import torch
        total = 0.0
        for x in block:
            loss = self.loss_fn(x[:, :-1], x[:, 1:]) / len(block)
            loss.backward()
            if not self.hooked:
                for p in self.params:
                    p.main_grad.add_(p.grad)
                    p.grad = None
            total = total + loss.detach()
        clip(self.masters, 1.0)
        self.opt.step()
        with torch.no_grad():
            try:  # fp32 -> bf16 in one multi-tensor launch where torch has it
                torch._foreach_copy_(self.params, self.masters)
            except (AttributeError, RuntimeError, TypeError):
                for p, m in zip(self.params, self.masters):
                    p.copy_(m)
            for g in self.main_grads:
                g.zero_()
        return total


class Fp32Trainer(AutocastTrainer):
    """Plain fp32 (TF32 off, as mds's CUBLAS_COMPUTE_32F): the like-for-like peer of mds's fp32
    GPU path, the one mds runs until its bf16 path is wired in."""

    def __init__(self, model, loss_fn, device, low, fused):
        import torch
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
        super().__init__(model, loss_fn, device, torch.float32, fused)


MODES = {"fp32": Fp32Trainer, "autocast": AutocastTrainer, "bf16": MasterTrainer}


def sdpa_context(backend):
    if backend == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel({"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                        "efficient": SDPBackend.EFFICIENT_ATTENTION}[backend])


def timed(trainer, batches, a, device):
    """Mean and median step seconds over a.iters steps after a.warmup, and the last loss."""
    import torch
    cuda = device.type == "cuda"
    for i in range(a.warmup):
        trainer.step(batches[i])
    if cuda:
        torch.cuda.synchronize()
    ev, wall, losses = [], [], []
    for i in range(a.iters):
        if cuda:
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
        t0 = time.perf_counter()
        losses.append(trainer.step(batches[a.warmup + i]))
        if cuda:
            e1.record()
            ev.append((e0, e1))
        else:
            wall.append(time.perf_counter() - t0)
    if cuda:
        torch.cuda.synchronize()
        wall = [e0.elapsed_time(e1) / 1e3 for e0, e1 in ev]
    wall.sort()
    return sum(wall) / len(wall), wall[len(wall) // 2], float(losses[-1])


def run_peer(c, mode, a, device, low, compiled=False):
    import torch
    row = {"config": c["name"], "implementation": "PyTorch " + torch.__version__,
           "mode": (f"compile+{mode}" if compiled else mode)
           + (" (fp32)" if low == torch.float32 else "")}
    trainer = model = None
    try:
        torch.manual_seed(1234)
        gc.collect()  # the previous run's model, closures and compiled graphs go first
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        use_hf = a.peer == "hf" or (a.peer == "auto" and have_transformers())
        model, loss_fn, peer = (build_hf if use_hf else build_reference)(c, device)
        model.train()
        if compiled:
            loss_fn = torch.compile(loss_fn)
        trainer = MODES[mode](model, loss_fn, device, low, fused=device.type == "cuda")
        batches = Batches(c, device, a.data)
        with sdpa_context(a.sdpa_backend):
            mean, median, loss = timed(trainer, batches, a, device)
        tokens = c["micro"] * c["accum"] * c["seq"]
        flops = megatron_flops(c)
        row.update(peer=peer, optimizer=f"AdamW ({trainer.opt_kind})", step_s=mean,
                   median_step_s=median, tokens_per_s=tokens / mean, tflops=flops / mean / 1e12,
                   final_loss=loss, wall_s=time.perf_counter() - t0)
        if device.type == "cuda":
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
            row["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
        if not math.isfinite(loss):
            row["error"] = f"loss is {loss}"
    except Exception as e:  # one failing mode (OOM, a compile error) must not stop the others
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
    finally:
        del trainer, model
        gc.collect()
        if compiled and hasattr(torch, "_dynamo"):
            torch._dynamo.reset()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


# ---------------------------------------------------------------- mds

def mds_data(a, tmp):
    """(data prefix, tokenizer flags) for mds: Brown with GPT-2 BPE, else random tokens."""
    if a.data != "random":
        d = os.path.dirname(a.data)  # scripts/prepare_data.sh puts the GPT-2 files beside it
        return a.data, ["--tokenizer-type", "GPT2BPETokenizer",
                        "--vocab-file", os.path.join(d, "gpt2-vocab.json"),
                        "--merge-file", os.path.join(d, "gpt2-merges.txt")]
    import numpy as np
    rng = np.random.default_rng(1234)
    ids = os.path.join(tmp, "ids.jsonl")
    with open(ids, "w") as f:  # 64 documents of 8192 ids: enough samples for 1b's steps
        for _ in range(64):
            f.write(json.dumps(rng.integers(0, VOCAB - 1, 8192).tolist()) + "\n")
    prefix = os.path.join(tmp, "random_text_document")
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "reference",
                                                 "megatron_indexed_writer.py"),
                    ids, prefix, "--vocab-size", str(VOCAB), "--eod", str(VOCAB - 1)], check=True)
    # NullTokenizer: ids < N and eod = N, so N = 50256 gives GPT-2's 50257 (padded to 50304).
    return prefix, ["--tokenizer-type", "NullTokenizer", "--vocab-size", str(VOCAB - 1)]


def mds_command(a, c, prefix, tok, iters, log, gpu_flags):
    return [a.mds, "train", "--num-layers", str(c["layers"]), "--hidden-size", str(c["hidden"]),
            "--ffn-hidden-size", str(c["ffn"]), "--num-attention-heads", str(c["heads"]),
            "--num-key-value-heads", str(c["kv_heads"]), "--seq-length", str(c["seq"]),
            "--micro-batch-size", str(c["micro"]),
            "--global-batch-size", str(c["micro"] * c["accum"]), "--train-iters", str(iters),
            "--lr", "3e-4", "--adam-beta1", "0.9", "--adam-beta2", "0.95",
            "--weight-decay", "0.1", "--clip-grad", "1.0", "--data-path", prefix, *tok,
            "--log-interval", "1", "--eval-iters", "0", "--log-json", log, *gpu_flags]


_FP32_ON_GPU = {}  # mds path -> the probe's answer (one probe per run, not one per row)


def mds_fp32_on_gpu(a, prefix, tok, tmp):
    """Whether `MDS_DEVICE=cuda mds train` trains in fp32 on the GPU (mds's first GPU path)."""
    if a.mds not in _FP32_ON_GPU:
        _FP32_ON_GPU[a.mds] = probe_fp32_on_gpu(a, prefix, tok, tmp)
    return _FP32_ON_GPU[a.mds]


def probe_fp32_on_gpu(a, prefix, tok, tmp):
    tiny = dict(layers=2, hidden=64, ffn=192, heads=4, kv_heads=2, seq=32, micro=1, accum=1)
    probe = subprocess.run(mds_command(a, tiny, prefix, tok, 1, os.path.join(tmp, "probe32.jsonl"),
                                       []), capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, MDS_DEVICE="cuda"))
    return probe.returncode == 0 and "fp32 on CPU" not in probe.stdout


def mds_gpu_flags(a, prefix, tok, tmp):
    """The flags that make `mds train` run on the GPU in bf16, or (None, why not)."""
    try:
        help_text = subprocess.run([a.mds, "train", "--help"], capture_output=True, text=True,
                                   timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"`{a.mds} train --help` failed: {e}"
    flags = (["--device", "cuda"] if "--device" in help_text else []) + \
        (["--bf16"] if "--bf16" in help_text else [])
    if not flags:
        return None, "mds train has no --device or --bf16 flag: no GPU training path yet"
    tiny = dict(layers=2, hidden=64, ffn=192, heads=4, kv_heads=2, seq=32, micro=1, accum=1)
    probe = subprocess.run(mds_command(a, tiny, prefix, tok, 1, os.path.join(tmp, "probe.jsonl"),
                                       flags), capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["exit code %d" % probe.returncode])[-1]
        return None, f"mds has no GPU training path yet (`mds train {' '.join(flags)}`: {why})"
    return flags, None


def run_mds(c, a, notes, device, fp32=False):
    """mds's row: its bf16 GPU path (--bf16), or with fp32=True its fp32 GPU path (the peer of
    the PyTorch fp32 row)."""
    row = {"config": c["name"], "implementation": "mds"}
    if not (a.mds and os.access(a.mds, os.X_OK)):
        notes.append(f"mds: no executable at {a.mds!r}: no mds row")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            prefix, tok = mds_data(a, tmp)
            flags, why = (None, "fp32 asked") if fp32 else mds_gpu_flags(a, prefix, tok, tmp)
            env = dict(os.environ)
            if fp32 and mds_fp32_on_gpu(a, prefix, tok, tmp):
                flags, row["mode"], env["MDS_DEVICE"] = [], "fp32 (GPU)", "cuda"
            elif fp32:
                notes.append("mds fp32 on the GPU: `MDS_DEVICE=cuda mds train` does not train on "
                             "the GPU: no mds fp32 row")
                return None
            elif flags is None and device.type == "cuda" and mds_fp32_on_gpu(a, prefix, tok, tmp):
                notes.append(why + "; mds timed in fp32 on the GPU (compare with the fp32 row)")
                flags, row["mode"], env["MDS_DEVICE"] = [], "fp32 (GPU)", "cuda"
            elif flags is None:
                if device.type == "cuda":
                    notes.append(why)
                    print(why, flush=True)
                    return None
                notes.append(why + "; smoke: mds timed on the CPU in fp32 instead")
                flags, row["mode"] = [], "fp32 (CPU)"
            else:
                row["mode"] = " ".join(flags)
            log = os.path.join(tmp, "log.jsonl")
            t0 = time.perf_counter()
            r = subprocess.run(mds_command(a, c, prefix, tok, a.warmup + a.iters, log, flags),
                               capture_output=True, text=True, timeout=a.mds_timeout, env=env)
            if r.returncode != 0:
                row["error"] = "mds train failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
                return row
            lines = [json.loads(line) for line in open(log) if line.strip()]
            rows = [j for j in lines if "iteration" in j][a.warmup:]
            for j in lines:  # mds's peak of its device buffers (caching allocator on the GPU)
                if "peak_memory_bytes" in j:
                    row["peak_memory_gib"] = j["peak_memory_bytes"] / 2**30
            times = sorted(j["elapsed_time_per_iteration_ms"] / 1e3 for j in rows)
            mean = sum(times) / len(times)
            tokens = c["micro"] * c["accum"] * c["seq"]
            row.update(step_s=mean, median_step_s=times[len(times) // 2],
                       tokens_per_s=tokens / mean, tflops=megatron_flops(c) / mean / 1e12,
                       final_loss=rows[-1]["lm_loss"], wall_s=time.perf_counter() - t0)
        except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError) as e:
            row["error"] = f"{type(e).__name__}: {e}"[:300]
    return row


def profile_mds(c, a, device):
    """mds's kernel table for config c (`--timing-log-level 2`: every kernel timed with CUDA
    events, each call synchronised, so the step is slower than the timed rows): the text from
    `> kernel time` to `>   total`, or None with a note of what failed."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            prefix, tok = mds_data(a, tmp)
            flags, why = mds_gpu_flags(a, prefix, tok, tmp)
            if flags is None:
                return None, why
            cmd = mds_command(a, c, prefix, tok, a.profile_iters, os.path.join(tmp, "p.jsonl"),
                              flags + ["--timing-log-level", "2"])
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.mds_timeout)
        except (OSError, subprocess.SubprocessError) as e:
            return None, f"{type(e).__name__}: {e}"[:300]
    lines = r.stdout.splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("> kernel time")), None)
    if r.returncode != 0 or start is None:
        return None, "no kernel table: " + (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
    end = next((i for i in range(start, len(lines)) if lines[i].startswith(">   total")), len(lines) - 1)
    return "\n".join(lines[start:end + 1]), None


# ---------------------------------------------------------------- report

def gemm_tflops(device, dtype):
    import torch
    n = 8192 if device.type == "cuda" else 512
    x, y = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.mm(x, y)
    best = 0.0
    for _ in range(10):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.mm(x, y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0))
    return best / 1e12


def tf(v):
    return f"{v:.1f}" if v >= 10 else f"{v:.3g}"


def fmt(v, spec, missing="-"):
    return missing if v is None else format(v, spec)


def table(rows, peak):
    out = ["| config | implementation | mode | tokens/s | TFLOP/s | MFU | peak mem GiB | "
           "step ms | final loss |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['config']} | {r['implementation']} | {r.get('mode', '')} | "
                       f"failed: {r['error']} | | | | | |")
            continue
        mfu = f"{r['tflops'] / peak:.1%}" if peak else "peak unknown"
        out.append(f"| {r['config']} | {r['implementation']} | {r['mode']} | "
                   f"{r['tokens_per_s']:,.0f} | {tf(r['tflops'])} | {mfu} | "
                   f"{fmt(r.get('peak_memory_gib'), '.1f', 'n/a')} | {r['step_s'] * 1e3:.1f} | "
                   f"{r['final_loss']:.4f} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="all", choices=["125m", "1b", "all", "smoke"])
    for f in OVERRIDES:
        ap.add_argument("--" + f.replace("_", "-"), type=int, default=None,
                        help="override the configuration's value" + (" (default 1)" if f == "accum" else ""))
    ap.add_argument("--modes", default=None,
                    help="comma list of autocast,bf16,compile (default: all three; smoke: autocast,bf16)")
    ap.add_argument("--iters", type=int, default=None, help="timed steps (default 10; smoke 2)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; smoke 1)")
    ap.add_argument("--peer", default="auto", choices=["auto", "hf", "reference"],
                    help="auto: Hugging Face when transformers imports, else tests/reference/torch_llama.py")
    ap.add_argument("--sdpa-backend", default="auto", choices=["auto", "flash", "cudnn", "efficient"])
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "brown_text_document"),
                    help="Megatron .bin/.idx prefix, or 'random' (also used when the prefix is missing)")
    ap.add_argument("--mds", default=None, help="the mds binary (default: no mds row)")
    ap.add_argument("--mds-timeout", type=int, default=600)
    ap.add_argument("--profile-iters", type=int, default=0,
                    help="after the rows, run mds this many iterations per config with "
                         "--timing-log-level 2 and keep its kernel table (where the time goes)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of one device")
    ap.add_argument("--time-budget", type=float, default=0,
                    help="seconds: skip the runs that would start after this (0: no limit)")
    ap.add_argument("--out", default="gpu_train_bench.json")
    ap.add_argument("--smoke", action="store_true", help="tiny model, 3 steps, fp32 on the CPU")
    a = ap.parse_args()

    import torch
    start = time.perf_counter()
    if a.smoke:
        a.config = "smoke"
        device = torch.device("cpu")
        torch.set_num_threads(os.cpu_count())
    else:
        if a.config == "smoke":
            sys.exit("--config smoke is --smoke")
        if not torch.cuda.is_available():
            sys.exit("no CUDA GPU visible to PyTorch: run with --smoke on a CPU machine")
        device = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = True  # only the few fp32 GEMMs; bf16 is bf16
    low = torch.float32 if a.smoke else torch.bfloat16
    a.iters = a.iters or (2 if a.smoke else 10)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.smoke else 3)
    modes = (a.modes or ("autocast,bf16" if a.smoke else "fp32,autocast,bf16,compile")).split(",")
    if a.data != "random" and not os.path.exists(a.data + ".bin"):
        a.data = "random"

    names = ["125m", "1b"] if a.config == "all" else [a.config]
    configs = []
    for n in names:
        c = dict(CONFIGS[n], name=n, ffn=0, accum=1)
        for f in OVERRIDES:
            if getattr(a, f) is not None:
                c[f] = getattr(a, f)
        c["ffn"] = c["ffn"] or int(8 * c["hidden"] / 3 / 64) * 64
        c["vpad"] = (VOCAB + 127) // 128 * 128
        configs.append(c)

    dev_name = torch.cuda.get_device_name(0) if device.type == "cuda" else (
        next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
             platform.machine()) if os.path.exists("/proc/cpuinfo") else platform.machine())
    peak = a.peak_tflops or (peak_tflops(dev_name) if device.type == "cuda" else None)
    gemm = gemm_tflops(device, low)
    try:
        import transformers
        tf_version = transformers.__version__
    except ImportError:
        tf_version = None
    notes = []
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "device": dev_name,
              "peak_tflops": peak, "gemm_tflops": gemm, "torch": torch.__version__,
              "cuda": torch.version.cuda, "transformers": tf_version, "python": platform.python_version(),
              "data": "random tokens" if a.data == "random" else a.data,
              "warmup": a.warmup, "iters": a.iters, "sdpa_backend": a.sdpa_backend,
              "configs": [dict(c, params=param_count(c), tokens_per_step=c["micro"] * c["accum"] * c["seq"],
                               flops_per_step=megatron_flops(c)) for c in configs],
              "rows": [], "notes": notes}

    md = os.path.splitext(a.out)[0] + ".md"

    def save():
        with open(a.out, "w") as f:
            json.dump(report, f, indent=1)
        with open(md, "w") as f:
            f.write(table(report["rows"], peak) + "\n" + "".join(f"- {n}\n" for n in notes))
            for name, text in report.get("profiles", {}).items():
                f.write(f"\nmds {name}, {a.profile_iters} iterations, --timing-log-level 2:\n\n"
                        f"```\n{text}\n```\n")

    print(f"device: {dev_name}; peak {fmt(peak, '.0f', 'unknown')} TFLOP/s dense bf16; measured "
          f"{'bf16' if low == torch.bfloat16 else 'fp32'} GEMM {gemm:.1f} TFLOP/s; torch {torch.__version__}"
          f" (CUDA {torch.version.cuda}); transformers {tf_version or 'not installed'}; "
          f"data: {report['data']}", flush=True)
    if tf_version is None and a.peer != "reference":
        notes.append("transformers not installed: the peer is tests/reference/torch_llama.py")
    for c in configs:
        print(f"config {c['name']}: {c['layers']} layers, hidden {c['hidden']}, ffn {c['ffn']}, "
              f"heads {c['heads']} (kv {c['kv_heads']}), seq {c['seq']}, batch {c['micro']}x{c['accum']}, "
              f"vocab {VOCAB} padded {c['vpad']}, {param_count(c) / 1e6:.1f}M parameters, "
              f"{megatron_flops(c) / 1e12:.2f} TFLOP per step", flush=True)

    def budget_left(what):
        if a.time_budget and time.perf_counter() - start > a.time_budget:
            notes.append(f"skipped {what}: past the --time-budget of {a.time_budget:.0f} s")
            print(notes[-1], flush=True)
            return False
        return True

    def add(row):
        if row is None:
            return
        report["rows"].append(row)
        save()
        print(f"  {row['config']} {row['implementation']} {row.get('mode', '')}: " +
              (f"failed: {row['error']}" if "error" in row else
               f"{row['tokens_per_s']:,.0f} tokens/s, {tf(row['tflops'])} TFLOP/s, step "
               f"{row['step_s'] * 1e3:.1f} ms, loss {row['final_loss']:.4f}"), flush=True)

    # Eager modes of every configuration first, torch.compile (minutes of compiling) last, so
    # that a --time-budget or a timeout cuts the compiled rows, not the baseline ones.
    for m in modes:
        if m not in MODES and m != "compile":
            sys.exit(f"unknown mode {m!r}: use fp32, autocast, bf16, compile")
    eager = {}
    for c in configs:
        if a.mds and budget_left(f"mds {c['name']}"):
            add(run_mds(c, a, notes, device))
        if a.mds and device.type == "cuda" and "fp32" in modes and budget_left(f"mds {c['name']} fp32"):
            add(run_mds(c, a, notes, device, fp32=True))
        for mode in (m for m in modes if m in MODES):
            if budget_left(f"{c['name']} {mode}"):
                eager[c["name"], mode] = run_peer(c, mode, a, device, low)
                add(eager[c["name"], mode])
    if "compile" in modes and not hasattr(torch, "compile"):
        notes.append(f"compile: torch {torch.__version__} has no torch.compile: skipped")
        print(notes[-1], flush=True)
    elif "compile" in modes:
        for c in configs:
            ok = {m: r for (n, m), r in eager.items() if n == c["name"] and "error" not in r}
            if not ok:
                notes.append(f"compile ({c['name']}): no eager mode ran to choose from: skipped")
                continue
            best = max(ok, key=lambda m: ok[m]["tokens_per_s"])
            if budget_left(f"{c['name']} compile+{best}"):
                add(run_peer(c, best, a, device, low, compiled=True))

    if a.mds and a.profile_iters > 0:  # last: the timed rows come first
        report["profiles"] = {}
        for c in configs:
            if budget_left(f"mds {c['name']} profile"):
                text, why = profile_mds(c, a, device)
                if text is None:
                    notes.append(f"mds {c['name']} profile: {why}")
                    print(notes[-1], flush=True)
                    continue
                report["profiles"][c["name"]] = text
                save()
                print(f"mds {c['name']}, {a.profile_iters} iterations, --timing-log-level 2:\n{text}",
                      flush=True)

    if a.smoke:  # in fp32 the two precision recipes are the same arithmetic: the same loss
        losses = [r["final_loss"] for r in report["rows"]
                  if r["implementation"] != "mds" and "error" not in r]
        same = len(losses) < 2 or max(losses) - min(losses) <= 1e-5 * abs(losses[0])
        notes.append(f"smoke check: fp32 autocast and fp32 master-weight losses "
                     f"{'agree' if same else 'DIFFER'}: {losses}")
        if not same:
            report["error"] = notes[-1]
    save()
    print()
    print(table(report["rows"], peak))
    for n in notes:
        print(f"- {n}")
    print(f"\nwritten: {a.out} and {md} ({time.perf_counter() - start:.0f} s)")
    if not report["rows"] or all("error" in r for r in report["rows"]) or "error" in report:
        sys.exit(1)


if __name__ == "__main__":
    main()
