#!/usr/bin/python3
"""An independent safetensors reader/writer (json + numpy only) to cross-check mds's C++ one.

  read_safetensors.py read FILE
      Prints JSON: {"header_len": N, "metadata": {...}, "tensors": {name: {"dtype", "shape",
      "sum", "values"}}} with values converted to float (F32, F16, BF16, F64). Asserts the
      layout mds promises: header length a multiple of 8, tensors packed back to back.

  read_safetensors.py write-llama DIR --layers L --hidden H --heads N --kv-heads K --ffn F
                      --vocab V [--dtype f32|bf16|f16] [--shard-bytes B] [--tie] [--extra]
      Writes a Hugging Face Llama folder the way transformers lays it out: config.json and
      model.safetensors, or model-0000K-of-0000N.safetensors + model.safetensors.index.json when
      the weights exceed B bytes. Element i of tensor `name` is
          ((i * 31 + s * 17) % 251 - 125) / 64,   s = sum of the name's bytes % 97,
      exact in bf16 and f16. --tie omits lm_head and sets tie_word_embeddings; --extra adds the
      rotary_emb.inv_freq buffers old checkpoints carry. Tensors go in reverse name order so the
      reader cannot rely on mds's sorted order.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2), "F64": ("<f8", 8)}


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    out = {"header_len": n, "metadata": header.pop("__metadata__", {}), "tensors": {}}
    assert n % 8 == 0, "header not padded to a multiple of 8"
    ends = 0
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, end = t["data_offsets"]
        assert begin == ends, f"{name}: gap or overlap at {begin}"
        ends = end
        np_dtype, size = DTYPES[t["dtype"]]
        a = np.frombuffer(data[begin:end], dtype=np_dtype)
        assert a.size == int(np.prod(t["shape"], dtype=np.int64)), name
        if t["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        a = a.astype(np.float64)
        entry = {"dtype": t["dtype"], "shape": t["shape"], "sum": float(a.sum())}
        if a.size <= 100000:
            entry["values"] = a.tolist()
        out["tensors"][name] = entry
    assert ends == len(data), "trailing bytes after the last tensor"
    return out


def pattern(name, numel):
    s = sum(name.encode()) % 97
    i = np.arange(numel, dtype=np.int64)
    return (((i * 31 + s * 17) % 251) - 125).astype(np.float64) / 64.0


def encode(values, dtype):
    if dtype == "F32":
        return values.astype("<f4").tobytes()
    if dtype == "F16":
        return values.astype("<f2").tobytes()
    bits = values.astype(np.float32).view(np.uint32)  # exact values: truncation is exact
    return (bits >> 16).astype("<u2").tobytes()


def write_file(path, tensors):
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        chunks.append(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def write_llama(a):
    hd = a.hidden // a.heads
    shapes = {"model.embed_tokens.weight": [a.vocab, a.hidden], "model.norm.weight": [a.hidden]}
    if not a.tie:
        shapes["lm_head.weight"] = [a.vocab, a.hidden]
    for l in range(a.layers):
        p = f"model.layers.{l}."
        shapes[p + "input_layernorm.weight"] = [a.hidden]
        shapes[p + "post_attention_layernorm.weight"] = [a.hidden]
        shapes[p + "self_attn.q_proj.weight"] = [a.heads * hd, a.hidden]
        shapes[p + "self_attn.k_proj.weight"] = [a.kv_heads * hd, a.hidden]
        shapes[p + "self_attn.v_proj.weight"] = [a.kv_heads * hd, a.hidden]
        shapes[p + "self_attn.o_proj.weight"] = [a.hidden, a.heads * hd]
        shapes[p + "mlp.gate_proj.weight"] = [a.ffn, a.hidden]
        shapes[p + "mlp.up_proj.weight"] = [a.ffn, a.hidden]
        shapes[p + "mlp.down_proj.weight"] = [a.hidden, a.ffn]
    dtype = a.dtype.upper()
    tensors = []
    for name in sorted(shapes, reverse=True):
        numel = int(np.prod(shapes[name]))
        tensors.append((name, dtype, shapes[name], encode(pattern(name, numel), dtype)))
    if a.extra:
        for l in range(a.layers):
            inv = 1.0 / (10000.0 ** (np.arange(0, hd, 2) / hd))
            tensors.append((f"model.layers.{l}.self_attn.rotary_emb.inv_freq", "F32", [hd // 2],
                            inv.astype("<f4").tobytes()))
    os.makedirs(a.dir, exist_ok=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
              "hidden_size": a.hidden, "intermediate_size": a.ffn,
              "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
              "num_key_value_heads": a.kv_heads, "vocab_size": a.vocab,
              "max_position_embeddings": 4096, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
              "tie_word_embeddings": a.tie, "torch_dtype": {"F32": "float32", "F16": "float16",
                                                            "BF16": "bfloat16"}[dtype],
              "bos_token_id": 1, "eos_token_id": [2, 3]}
    with open(os.path.join(a.dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    total = sum(len(t[3]) for t in tensors)
    if total <= a.shard_bytes:
        write_file(os.path.join(a.dir, "model.safetensors"), tensors)
        return
    shards, size = [[]], 0
    for t in tensors:
        if shards[-1] and size + len(t[3]) > a.shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += len(t[3])
    weight_map = {}
    for k, shard in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        write_file(os.path.join(a.dir, fname), shard)
        weight_map.update({t[0]: fname for t in shard})
    with open(os.path.join(a.dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("read")
    r.add_argument("file")
    w = sub.add_parser("write-llama")
    w.add_argument("dir")
    for flag in ("--layers", "--hidden", "--heads", "--kv-heads", "--ffn", "--vocab"):
        w.add_argument(flag, type=int, required=True)
    w.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32")
    w.add_argument("--shard-bytes", type=int, default=5 * 10**9)
    w.add_argument("--tie", action="store_true")
    w.add_argument("--extra", action="store_true")
    a = p.parse_args()
    if a.cmd == "read":
        json.dump(read(a.file), sys.stdout)
    else:
        write_llama(a)


if __name__ == "__main__":
    main()
