#!/usr/bin/env python3
"""Reference for Megatron-DeepSpeed's (argonne-lcf) blended sample order, in numpy.

Ports get_datasets_corpuses_weights_and_num_samples (weights normalised, per shard
ceil(N * w * 1.005)), BuildCorpusDataset (corpora sorted by name, shards concatenated in list
order with build_concat_indices, np.random.RandomState(seed).shuffle of arange) and
BlendableDataset + helpers.cpp build_blending_indices (weights = corpus samples / total).

usage: megatron_blend.py < {"weights": [...], "corpora": [...], "num_samples": N, "seed": k}
prints {"per_shard": [n_i], "order": [[shard, sample within shard], ...]} over the blend.
"""
import json
import math
import sys

import numpy as np


def blending_indices(weights, size):
    weights = np.array(weights, dtype=np.float64)
    weights /= weights.sum()
    current = [0] * len(weights)
    out = []
    for t in range(size):
        steps = max(float(t), 1.0)
        best = 0
        best_err = weights[0] * steps - current[0]
        for d in range(1, len(weights)):
            err = weights[d] * steps - current[d]
            if err > best_err:
                best, best_err = d, err
        out.append((best, current[best]))
        current[best] += 1
    return out


def main():
    r = json.load(sys.stdin)
    total_w = sum(r["weights"])
    per_shard = [int(math.ceil(r["num_samples"] * (w / total_w) * 1.005)) for w in r["weights"]]
    corpora = sorted(set(r["corpora"]))
    corpus_items = []
    for c in corpora:
        shards = [i for i, name in enumerate(r["corpora"]) if name == c]
        concat = [(s, j) for s in shards for j in range(per_shard[s])]  # build_concat_indices
        shuffle = np.arange(len(concat))
        np.random.RandomState(seed=r["seed"]).shuffle(shuffle)
        corpus_items.append([concat[k] for k in shuffle])
    sizes = [len(items) for items in corpus_items]
    order = [corpus_items[d][k] for d, k in blending_indices(sizes, sum(sizes))]
    json.dump({"per_shard": per_shard, "order": [list(map(int, x)) for x in order]}, sys.stdout)


if __name__ == "__main__":
    main()
