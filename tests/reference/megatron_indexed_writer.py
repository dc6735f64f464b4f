#!/usr/bin/env python3
"""Spec writer for Megatron's MMIDIDX indexed dataset, byte for byte.

Independent of mds: reproduces what upstream Megatron-LM's tools/preprocess_data.py writes
through megatron/core/datasets/indexed_dataset.py (IndexedDatasetBuilder + _IndexWriter),
for one json key, no sentence splitting.

usage: megatron_indexed_writer.py IDS.jsonl OUTPUT_PREFIX --vocab-size N [--eod ID]

IDS.jsonl holds one JSON array of token ids per document (what the tokenizer returned, no
EOD). With --eod, EOD is appended to every non-empty document and counted in its size. An
empty document writes nothing and repeats the last document boundary (add_document([], [])).
"""
import argparse
import json
import struct

import numpy as np

DTYPE_CODES = {np.uint8: 1, np.int8: 2, np.int16: 3, np.int32: 4, np.int64: 5,
               np.float64: 6, np.float32: 7, np.uint16: 8}


def optimal_dtype(vocab_size):
    return np.uint16 if vocab_size < 65500 else np.int32


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ids")
    ap.add_argument("prefix")
    ap.add_argument("--vocab-size", type=int, required=True)
    ap.add_argument("--eod", type=int, default=None)
    args = ap.parse_args()

    dtype = optimal_dtype(args.vocab_size)
    sequence_lengths = []
    document_indices = [0]
    with open(args.ids) as fin, open(args.prefix + ".bin", "wb") as data_file:
        for line in fin:
            doc_ids = list(json.loads(line))
            sentence_lens = [len(doc_ids)] if doc_ids else []
            if doc_ids and args.eod is not None:
                doc_ids.append(args.eod)
                sentence_lens[-1] += 1
            data_file.write(np.array(doc_ids, dtype=dtype).tobytes(order="C"))
            sequence_lengths.extend(sentence_lens)
            document_indices.append(len(sequence_lengths))

    itemsize = np.int64(np.dtype(dtype).itemsize)
    pointers, cur = [], np.int64(0)
    for length in sequence_lengths:
        pointers.append(cur.item())
        cur += length * itemsize

    with open(args.prefix + ".idx", "wb") as idx:
        idx.write(b"MMIDIDX\x00\x00")
        idx.write(struct.pack("<Q", 1))
        idx.write(struct.pack("<B", DTYPE_CODES[dtype]))
        idx.write(struct.pack("<Q", len(sequence_lengths)))
        idx.write(struct.pack("<Q", len(document_indices)))
        idx.write(np.array(sequence_lengths, dtype=np.int32).tobytes(order="C"))
        idx.write(np.array(pointers, dtype=np.int64).tobytes(order="C"))
        idx.write(np.array(document_indices, dtype=np.int64).tobytes(order="C"))


if __name__ == "__main__":
    main()
