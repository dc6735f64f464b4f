#!/usr/bin/python3
"""Parity of two `mds train` runs of the same model and data: one is the baseline.

    compare_runs.py DIR BASELINE OTHER [--iteration 12] [--loss-rtol 1e-5] [--weight-rtol 1e-4]

Each run NAME left in DIR: NAME.jsonl (--log-json), NAME.log (its stdout) and NAME/ (--save).
The runs agree when they
  - log the same iterations, up to --iteration, with the same consumed_samples, and lm_loss
    within loss-rtol (relative to the baseline's) at every one;
  - print the same number of validation lines, each lm loss value within loss-rtol;
  - save the same tensors at --iteration (NAME/iter_0000012/*.safetensors, full logical
    tensors, fp32), each within weight-rtol in relative L2 norm. Per tensor, not per element:
    an element whose gradient is round-off noise (a rare token's embedding) gets Adam's
    full-size step of either sign, so single elements may differ by ~lr while the tensor
    agrees to 1e-6.
Prints one line, `OTHER vs BASELINE: max relative loss difference X, validation V, weights W`
(W: the worst tensor's relative L2 difference), and exits 0; on any mismatch, prints what
differs to stderr and exits 1.
"""
import argparse
import glob
import json
import os
import re
import struct
import sys

import numpy as np


class Mismatch(Exception):
    pass


def read_losses(d, name):
    path = os.path.join(d, f"{name}.jsonl")
    if not os.path.exists(path):
        raise Mismatch(f"{path} is missing (did `mds train --log-json` run?)")
    rows = [json.loads(line) for line in open(path) if line.strip()]
    return [r for r in rows if "lm_loss" in r]


VALID = re.compile(r"validation loss at (.*?) \| lm loss value=(\S+)")


def read_validation(d, name):
    path = os.path.join(d, f"{name}.log")
    if not os.path.exists(path):
        raise Mismatch(f"{path} is missing")
    return [(m.group(1), float(m.group(2))) for m in map(VALID.search, open(path)) if m]


def read_tensors(d, name, iteration):
    """Every tensor in the checkpoint's safetensors files (one file or HF-style shards)."""
    folder = os.path.join(d, name, f"iter_{iteration:07d}")
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise Mismatch(f"no *.safetensors in {folder}")
    out = {}
    for path in files:
        raw = open(path, "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        for k, v in json.loads(raw[8:8 + n]).items():
            if k == "__metadata__":
                continue
            if v["dtype"] != "F32":
                raise Mismatch(f"{path}: {k} is {v['dtype']}, not F32")
            if k in out:
                raise Mismatch(f"{folder}: {k} is in two files")
            b, e = v["data_offsets"]
            data = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=np.float32)
            out[k] = data.reshape(v["shape"])
    return out


def relative(a, b):
    return abs(a - b) / max(abs(a), 1e-30)


def compare(args):
    """Returns (worst loss, worst validation, worst weight) differences and the mismatches."""
    errors = []
    base, other = read_losses(args.dir, args.baseline), read_losses(args.dir, args.other)
    if not base or base[-1]["iteration"] != args.iteration:
        raise Mismatch(f"{args.baseline}.jsonl should log up to iteration {args.iteration}, "
                       f"logs {[r['iteration'] for r in base]}")
    steps = lambda rows: [(r["iteration"], r["consumed_samples"]) for r in rows]
    if steps(base) != steps(other):
        raise Mismatch(f"logged (iteration, consumed_samples) differ: {steps(base)} vs "
                       f"{steps(other)}")
    loss = 0.0
    for a, b in zip(base, other):
        rel = relative(a["lm_loss"], b["lm_loss"])
        loss = max(loss, rel)
        if not rel <= args.loss_rtol:  # also catches NaN
            errors.append(f"iteration {a['iteration']}: lm_loss {a['lm_loss']!r} vs "
                          f"{b['lm_loss']!r} (relative {rel:.2e} > {args.loss_rtol:g})")

    va, vb = read_validation(args.dir, args.baseline), read_validation(args.dir, args.other)
    if not va:
        raise Mismatch(f"{args.baseline}.log has no validation line")
    if [w for w, _ in va] != [w for w, _ in vb]:
        raise Mismatch(f"validation lines differ: {va} vs {vb}")
    valid = 0.0
    for (where, x), (_, y) in zip(va, vb):
        rel = relative(x, y)
        valid = max(valid, rel)
        if not rel <= args.loss_rtol:
            errors.append(f"validation loss at {where}: {x!r} vs {y!r} (relative {rel:.2e} > "
                          f"{args.loss_rtol:g})")

    ta = read_tensors(args.dir, args.baseline, args.iteration)
    tb = read_tensors(args.dir, args.other, args.iteration)
    if ta.keys() != tb.keys():
        raise Mismatch(f"checkpoint tensors differ: only in {args.baseline}: "
                       f"{sorted(ta.keys() - tb.keys())}, only in {args.other}: "
                       f"{sorted(tb.keys() - ta.keys())}")
    weights = 0.0
    for k in sorted(ta):
        if ta[k].shape != tb[k].shape:
            errors.append(f"{k}: shape {list(ta[k].shape)} vs {list(tb[k].shape)}")
            continue
        a, b = ta[k].astype(np.float64), tb[k].astype(np.float64)
        rel = float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))
        weights = max(weights, rel)
        if not rel <= args.weight_rtol:
            errors.append(f"{k}: relative L2 difference {rel:.2e} > {args.weight_rtol:g}")
    return loss, valid, weights, errors


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir", help="folder holding NAME.jsonl, NAME.log and NAME/ of each run")
    p.add_argument("baseline")
    p.add_argument("other")
    p.add_argument("--iteration", type=int, default=12,
                   help="the last iteration: logged by both, its checkpoint compared")
    p.add_argument("--loss-rtol", type=float, default=1e-5)
    p.add_argument("--weight-rtol", type=float, default=1e-4)
    args = p.parse_args()
    what = f"{args.other} vs {args.baseline}"
    try:
        loss, valid, weights, errors = compare(args)
    except Mismatch as e:
        sys.exit(f"compare_runs: {what}: {e}")
    if errors:
        shown = errors[:10] + ([f"... and {len(errors) - 10} more"] if len(errors) > 10 else [])
        sys.exit(f"compare_runs: {what} differ:\n  " + "\n  ".join(shown))
    print(f"{what}: max relative loss difference {loss:.2e}, validation {valid:.2e}, "
          f"weights {weights:.2e}")


if __name__ == "__main__":
    main()
