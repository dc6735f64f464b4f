#!/usr/bin/env python3
"""Reference for Megatron's GPT dataset index maps, in numpy, independent of mds.

A port of megatron/data/gpt_dataset.py (_num_tokens, _num_epochs, _build_doc_idx,
_build_shuffle_idx, the separate_last_epoch rule of _build_index_mappings), of
helpers.cpp build_sample_idx, and of dataset_utils.get_train_valid_test_split_,
using numpy's own np.random.RandomState(seed).

usage:
  megatron_gpt_indices.py maps  < {"sizes": [...], "begin": b, "end": e,
                                   "num_samples": n, "seq_length": s, "seed": k}
      prints {"num_epochs", "separate_last_epoch", "doc_idx", "sample_idx" (flat),
              "shuffle_idx"}
  megatron_gpt_indices.py split < {"split": "969,30,1", "size": n}  prints [4 boundaries]
  megatron_gpt_indices.py shuffle < {"seed": k, "n": n}  prints RandomState(k).permutation(n)
A JSON list of requests on stdin gets a JSON list of answers (one python start for many).
"""
import json
import sys

import numpy as np


def num_epochs_for(tokens_per_epoch, seq_length, num_samples):
    num_epochs, total_tokens = 0, 0
    while True:
        num_epochs += 1
        total_tokens += tokens_per_epoch
        if ((total_tokens - 1) // seq_length) >= num_samples:
            return num_epochs


def build_doc_idx(documents, num_epochs, np_rng, separate_last_epoch):
    if not separate_last_epoch or num_epochs == 1:
        doc_idx = np.mgrid[0:num_epochs, 0:len(documents)][1]
        doc_idx[:] = documents
        doc_idx = doc_idx.reshape(-1).astype(np.int32)
        np_rng.shuffle(doc_idx)
        return doc_idx
    first = build_doc_idx(documents, num_epochs - 1, np_rng, False)
    last = build_doc_idx(documents, 1, np_rng, False)
    return np.concatenate((first, last))


def build_sample_idx(sizes, doc_idx, seq_length, num_epochs, tokens_per_epoch):
    num_samples = (num_epochs * tokens_per_epoch - 1) // seq_length
    sample_idx = np.zeros([num_samples + 1, 2], dtype=np.int64)
    sample_index, doc_idx_index, doc_offset = 0, 0, 0
    sample_idx[sample_index] = (doc_idx_index, doc_offset)
    sample_index += 1
    while sample_index <= num_samples:
        remaining = seq_length + 1
        while remaining != 0:
            doc_length = int(sizes[doc_idx[doc_idx_index]]) - doc_offset
            remaining -= doc_length
            if remaining <= 0:
                doc_offset += remaining + doc_length - 1
                remaining = 0
            else:
                doc_idx_index += 1
                doc_offset = 0
        sample_idx[sample_index] = (doc_idx_index, doc_offset)
        sample_index += 1
    return sample_idx


def build_shuffle_idx(num_samples, total_size, np_rng):
    dtype_ = np.uint32
    if total_size >= (np.iinfo(np.uint32).max - 1):
        dtype_ = np.int64
    first = np.arange(start=0, stop=num_samples, step=1, dtype=dtype_)
    np_rng.shuffle(first)
    if num_samples == total_size:
        return first
    last = np.arange(start=num_samples, stop=total_size, step=1, dtype=dtype_)
    np_rng.shuffle(last)
    return np.concatenate((first, last))


def build_index_mappings(sizes, begin, end, num_samples, seq_length, seed):
    sizes = np.array(sizes, dtype=np.int32)
    documents = np.arange(start=begin, stop=end, step=1, dtype=np.int32)
    tokens_per_epoch = int(np.sum(sizes[documents]))
    num_epochs = num_epochs_for(tokens_per_epoch, seq_length, num_samples)
    np_rng = np.random.RandomState(seed=seed)
    if num_epochs == 1:
        separate_last_epoch = False
    else:
        from_epochs_minus_one = ((num_epochs - 1) * tokens_per_epoch - 1) // seq_length
        last_epoch_num_samples = num_samples - from_epochs_minus_one
        assert last_epoch_num_samples >= 0
        per_epoch = (tokens_per_epoch - 1) // seq_length
        assert last_epoch_num_samples <= per_epoch + 1
        separate_last_epoch = last_epoch_num_samples < int(0.80 * per_epoch)
    doc_idx = build_doc_idx(documents, num_epochs, np_rng, separate_last_epoch)
    sample_idx = build_sample_idx(sizes, doc_idx, seq_length, num_epochs, tokens_per_epoch)
    if separate_last_epoch:
        num_samples_ = from_epochs_minus_one
    else:
        num_samples_ = sample_idx.shape[0] - 1
    shuffle_idx = build_shuffle_idx(num_samples_, sample_idx.shape[0] - 1, np_rng)
    return num_epochs, separate_last_epoch, doc_idx, sample_idx, shuffle_idx


def get_train_valid_test_split_(splits_string, size):
    if splits_string.find(",") != -1:
        splits = [float(s) for s in splits_string.split(",")]
    elif splits_string.find("/") != -1:
        splits = [float(s) for s in splits_string.split("/")]
    else:
        splits = [float(splits_string)]
    while len(splits) < 3:
        splits.append(0.0)
    splits = splits[:3]
    splits_sum = sum(splits)
    assert splits_sum > 0.0
    splits = [split / splits_sum for split in splits]
    splits_index = [0]
    for index, split in enumerate(splits):
        splits_index.append(splits_index[index] + int(round(split * float(size))))
    diff = splits_index[-1] - size
    for index in range(1, len(splits_index)):
        splits_index[index] -= diff
    return splits_index


def answer(mode, req):
    if mode == "maps":
        e, sep, d, s, sh = build_index_mappings(req["sizes"], req["begin"], req["end"],
                                                req["num_samples"], req["seq_length"], req["seed"])
        out = {"num_epochs": e, "separate_last_epoch": bool(sep), "doc_idx": d.tolist(),
               "sample_idx": s.reshape(-1).tolist(), "shuffle_idx": sh.tolist()}
    elif mode == "split":
        out = get_train_valid_test_split_(req["split"], req["size"])
    elif mode == "shuffle":
        out = np.random.RandomState(req["seed"]).permutation(req["n"]).tolist()
    else:
        raise SystemExit("unknown mode " + mode)
    return out


def main():
    mode = sys.argv[1]
    req = json.load(sys.stdin)
    if isinstance(req, list):
        json.dump([answer(mode, r) for r in req], sys.stdout)
    else:
        json.dump(answer(mode, req), sys.stdout)


if __name__ == "__main__":
    main()
