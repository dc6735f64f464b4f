#!/usr/bin/env python3
"""Startup time of a blended run over many small shards (the AuroraGPT Dolma list has 2,419).

Writes N synthetic Megatron .bin/.idx shards (numpy, MMIDIDX v1, uint16) in C corpora and a
DATA_FILE_LIST, then times `mds inspect-data` on the list with a run's sizes, which does what
`mds train` does before its first step: parse the list, open every shard, split it, build the
index maps (cold: an empty cache) or load them (warm: the second start), blend the corpora and
print the table. Reports wall time and peak RSS of each start.

  /usr/bin/python3 bench/data_startup.py [--mds build/mds] [--shards 2000] [--corpora 20]
"""
import argparse, os, resource, struct, subprocess, sys, tempfile, time

import numpy as np


def write_shard(prefix, rng, docs):
    sizes = rng.integers(50, 400, size=docs).astype(np.int32)
    tokens = rng.integers(0, 50257, size=int(sizes.sum())).astype(np.uint16)
    tokens.tofile(prefix + ".bin")
    pointers = np.zeros(docs, dtype=np.int64)
    pointers[1:] = np.cumsum(sizes[:-1].astype(np.int64) * 2)
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", 8))
        f.write(struct.pack("<Q", docs) + struct.pack("<Q", docs + 1))
        f.write(sizes.tobytes() + pointers.tobytes() + np.arange(docs + 1, dtype=np.int64).tobytes())
    return int(sizes.sum())


def timed(cmd):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, r1.ru_maxrss, out  # ru_maxrss: KiB, max over the children so far


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mds", default=os.path.join(root, "build", "mds"))
    ap.add_argument("--shards", type=int, default=2000)
    ap.add_argument("--corpora", type=int, default=20)
    ap.add_argument("--docs", type=int, default=40, help="documents per shard")
    ap.add_argument("--seq-length", type=int, default=2048)
    ap.add_argument("--global-batch-size", type=int, default=256)
    ap.add_argument("--train-iters", type=int, default=1000)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        tokens = 0
        lines = []
        for i in range(a.shards):
            prefix = os.path.join(tmp, f"shard_{i:05d}_text_document")
            tokens += write_shard(prefix, rng, a.docs)
            lines.append(f"{rng.uniform(0.1, 1.0):.6f} {prefix} corpus_{i % a.corpora:02d}\n")
        lst = os.path.join(tmp, "data_file_list.txt")
        open(lst, "w").writelines(lines)
        print(f"wrote {a.shards} shards ({tokens / 1e6:.1f}M tokens, {a.corpora} corpora) "
              f"in {time.perf_counter() - t:.1f} s")
        cmd = [a.mds, "inspect-data", "--data-file-list", lst, "--seq-length", str(a.seq_length),
               "--global-batch-size", str(a.global_batch_size), "--train-iters", str(a.train_iters)]
        cold, cold_cpu, _, out = timed(cmd)
        warm, warm_cpu, rss_warm, out2 = timed(cmd)
        index = [l for l in out.splitlines() if l.startswith("> index maps")][0]
        index2 = [l for l in out2.splitlines() if l.startswith("> index maps")][0]
        total = [l for l in out.splitlines() if l.startswith(">   total")][0]
        print(total)
        print(f"cold start (build index maps): {cold:6.2f} s wall, {cold_cpu:5.2f} s CPU   "
              f"{index.split('(')[0].strip()}")
        print(f"warm start (cached index):     {warm:6.2f} s wall, {warm_cpu:5.2f} s CPU   "
              f"{index2.split('(')[0].strip()}")
        print(f"peak RSS (max of both runs): {rss_warm / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
