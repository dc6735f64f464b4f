"""An independent Llama in PyTorch, written from the Hugging Face LlamaForCausalLM equations.

Used two ways:
  * as the reference of tests/model_test.cpp: `python3 torch_llama.py DIR` reads DIR/spec.json
    (shapes + the parameter table), DIR/params.bin (float32, the table's flat buffer),
    DIR/tokens.bin and DIR/targets.bin (int32 [b, s]); computes the mean token loss and the
    gradient of every parameter in float64; writes DIR/loss.txt and DIR/grads.bin (float32).
  * as the PyTorch peer of bench/ (the Llama class below).
Padded vocabulary rows are excluded from the softmax, as in mds.
"""
import json
import math
import sys

import torch
import torch.nn.functional as F


class Llama(torch.nn.Module):
    def __init__(self, layers, hidden, ffn, heads, kv_heads, vocab, padded_vocab, seq,
                 theta=10000.0, eps=1e-5, dtype=torch.float32):
        super().__init__()
        self.hidden, self.heads, self.kv_heads = hidden, heads, kv_heads
        self.hd = hidden // heads
        self.vocab, self.eps = vocab, eps
        p = lambda *shape: torch.nn.Parameter(torch.empty(*shape, dtype=dtype).normal_(0, 0.02))
        ones = lambda n: torch.nn.Parameter(torch.ones(n, dtype=dtype))
        self.embed = p(padded_vocab, hidden)
        self.blocks = torch.nn.ModuleList()
        for _ in range(layers):
            b = torch.nn.Module()
            b.ln1, b.ln2 = ones(hidden), ones(hidden)
            b.q, b.k, b.v = p(heads * self.hd, hidden), p(kv_heads * self.hd, hidden), p(kv_heads * self.hd, hidden)
            b.o = p(hidden, heads * self.hd)
            b.gate, b.up, b.down = p(ffn, hidden), p(ffn, hidden), p(hidden, ffn)
            self.blocks.append(b)
        self.norm = ones(hidden)
        self.head = p(padded_vocab, hidden)
        inv_freq = 1.0 / (theta ** (torch.arange(0, self.hd, 2, dtype=torch.float64) / self.hd))
        ang = torch.outer(torch.arange(seq, dtype=torch.float64), inv_freq)
        emb = torch.cat([ang, ang], dim=-1)
        self.register_buffer("cos", emb.cos().to(dtype), persistent=False)
        self.register_buffer("sin", emb.sin().to(dtype), persistent=False)

    def named_in_hf_order(self):
        """(Hugging Face name, parameter) in mds's ParamTable order."""
        out = [("model.embed_tokens.weight", self.embed)]
        for i, b in enumerate(self.blocks):
            l = f"model.layers.{i}."
            out += [(l + "input_layernorm.weight", b.ln1), (l + "self_attn.q_proj.weight", b.q),
                    (l + "self_attn.k_proj.weight", b.k), (l + "self_attn.v_proj.weight", b.v),
                    (l + "self_attn.o_proj.weight", b.o),
                    (l + "post_attention_layernorm.weight", b.ln2),
                    (l + "mlp.gate_proj.weight", b.gate), (l + "mlp.up_proj.weight", b.up),
                    (l + "mlp.down_proj.weight", b.down)]
        return out + [("model.norm.weight", self.norm), ("lm_head.weight", self.head)]

    def rmsnorm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x):  # x [b, heads, s, hd], rotate-half convention
        s = x.shape[2]
        x1, x2 = x[..., : self.hd // 2], x[..., self.hd // 2:]
        return x * self.cos[:s] + torch.cat([-x2, x1], dim=-1) * self.sin[:s]

    def attention(self, b, x, sdpa):
        B, S, _ = x.shape
        q = (x @ b.q.T).view(B, S, self.heads, self.hd).transpose(1, 2)
        k = (x @ b.k.T).view(B, S, self.kv_heads, self.hd).transpose(1, 2)
        v = (x @ b.v.T).view(B, S, self.kv_heads, self.hd).transpose(1, 2)
        q, k = self.rope(q), self.rope(k)
        rep = self.heads // self.kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if sdpa:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.hd)
            mask = torch.ones(S, S, dtype=torch.bool, device=x.device).triu(1)
            o = scores.masked_fill(mask, float("-inf")).softmax(-1) @ v
        return o.transpose(1, 2).reshape(B, S, -1) @ b.o.T

    def forward(self, tokens, targets, sdpa=False):
        x = self.embed[tokens]
        for b in self.blocks:
            x = x + self.attention(b, self.rmsnorm(x, b.ln1), sdpa)
            h = self.rmsnorm(x, b.ln2)
            x = x + (F.silu(h @ b.gate.T) * (h @ b.up.T)) @ b.down.T
        logits = (self.rmsnorm(x, self.norm) @ self.head.T)[..., : self.vocab]
        return F.cross_entropy(logits.reshape(-1, self.vocab).float(), targets.reshape(-1))


def main(d):
    spec = json.load(open(f"{d}/spec.json"))
    m = Llama(spec["layers"], spec["hidden"], spec["ffn"], spec["heads"], spec["kv_heads"],
              spec["vocab"], spec["padded_vocab"], spec["seq"], spec["theta"], spec["eps"],
              dtype=torch.float64)
    flat = torch.from_numpy(__import__("numpy").fromfile(f"{d}/params.bin", dtype="float32"))
    named = m.named_in_hf_order()
    assert [n for n, _ in named] == [p["name"] for p in spec["params"]], "table order differs"
    with torch.no_grad():
        for (name, t), p in zip(named, spec["params"]):
            t.copy_(flat[p["offset"]: p["offset"] + p["numel"]].view(*p["shape"]).double())
    import numpy as np
    tok = torch.from_numpy(np.fromfile(f"{d}/tokens.bin", dtype="int32").astype("int64"))
    tgt = torch.from_numpy(np.fromfile(f"{d}/targets.bin", dtype="int32").astype("int64"))
    b, s = spec["batch"], spec["seq"]
    loss = m(tok.view(b, s), tgt.view(b, s))
    loss.backward()
    open(f"{d}/loss.txt", "w").write(repr(loss.item()))
    grads = torch.cat([t.grad.reshape(-1) for _, t in named]).float().numpy()
    grads.tofile(f"{d}/grads.bin")


if __name__ == "__main__":
    main(sys.argv[1])
