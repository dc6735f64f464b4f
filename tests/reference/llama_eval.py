#!/usr/bin/python3
"""The reference of `mds eval`: a Hugging Face Llama folder's mean next-token loss over fixed
windows, in float64, read and computed without any mds code.

  llama_eval.py CKPT_DIR TOKENS --seq-length N [--megatron] [--batch B]

CKPT_DIR: config.json + model.safetensors (F32 or BF16), as mds train --save and transformers'
save_pretrained write them. TOKENS: a raw little-endian int32 file of token ids, or with
--megatron the PREFIX of a Megatron .bin/.idx dataset (every sequence in index order). The
stream is cut into floor(len / (N+1)) non-overlapping windows of N+1 tokens, each a sequence from
position 0 whose first N tokens predict the last N; the loss is the mean cross entropy over all
of them. Prints JSON: {"windows": W, "tokens": W*N, "loss": L, "ppl": exp(L)}.
The architecture is tests/reference/torch_llama.py's Llama, run in float64 end to end (including
the softmax, which that file's training loss takes in float32).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_llama import Llama  # noqa: E402


def read_safetensors(path):
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    data = blob[8 + n:]
    out = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        raw = data[begin:end]
        if t["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif t["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            a = a.astype(np.float64)
        else:
            raise SystemExit(f"{path}: {name} has dtype {t['dtype']}, expected F32 or BF16")
        out[name] = torch.from_numpy(a.reshape(t["shape"]))
    return out


def read_megatron(prefix):
    """The .bin tokens of every sequence in index order (MMIDIDX format)."""
    idx = open(prefix + ".idx", "rb").read()
    assert idx[:9] == b"MMIDIDX\x00\x00", f"{prefix}.idx: not a Megatron index"
    dtype = {1: "u1", 2: "i1", 3: "<i2", 4: "<i4", 5: "<i8", 6: "<f8", 7: "<f4", 8: "<u2"}[idx[17]]
    (n_seq,) = struct.unpack("<Q", idx[18:26])
    sizes = np.frombuffer(idx, dtype="<i4", count=n_seq, offset=34)
    pointers = np.frombuffer(idx, dtype="<i8", count=n_seq, offset=34 + 4 * n_seq)
    bin_ = open(prefix + ".bin", "rb").read()
    parts = [np.frombuffer(bin_, dtype=dtype, count=int(s), offset=int(p))
             for s, p in zip(sizes, pointers)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("tokens")
    ap.add_argument("--seq-length", type=int, required=True)
    ap.add_argument("--megatron", action="store_true")
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()

    cfg = json.load(open(os.path.join(a.ckpt, "config.json")))
    weights = read_safetensors(os.path.join(a.ckpt, "model.safetensors"))
    vocab = cfg["vocab_size"]
    heads = cfg["num_attention_heads"]
    m = Llama(cfg["num_hidden_layers"], cfg["hidden_size"], cfg["intermediate_size"], heads,
              cfg.get("num_key_value_heads", heads), vocab, vocab,
              cfg["max_position_embeddings"], cfg.get("rope_theta", 10000.0),
              cfg.get("rms_norm_eps", 1e-6), dtype=torch.float64)
    with torch.no_grad():
        for name, t in m.named_in_hf_order():
            if name == "lm_head.weight" and name not in weights:  # tied embeddings
                name = "model.embed_tokens.weight"
            assert tuple(weights[name].shape) == tuple(t.shape), (name, weights[name].shape)
            t.copy_(weights[name])

    ids = read_megatron(a.tokens) if a.megatron else np.fromfile(a.tokens, dtype="<i4")
    ids = torch.from_numpy(ids.astype(np.int64))
    N = a.seq_length
    W = len(ids) // (N + 1)
    assert W > 0, f"{len(ids)} tokens: fewer than one window of {N + 1}"
    windows = ids[: W * (N + 1)].view(W, N + 1)
    total = 0.0
    with torch.no_grad():
        for w0 in range(0, W, a.batch):
            batch = windows[w0: w0 + a.batch]
            x = m.embed[batch[:, :N]]
            for b in m.blocks:
                x = x + m.attention(b, m.rmsnorm(x, b.ln1), False)
                h = m.rmsnorm(x, b.ln2)
                x = x + (F.silu(h @ b.gate.T) * (h @ b.up.T)) @ b.down.T
            logits = m.rmsnorm(x, m.norm) @ m.head.T
            total += F.cross_entropy(logits.reshape(-1, vocab), batch[:, 1:].reshape(-1),
                                     reduction="sum").item()
    loss = total / (W * N)
    print(json.dumps({"windows": W, "tokens": W * N, "loss": loss, "ppl": math.exp(loss)}))


if __name__ == "__main__":
    main()
