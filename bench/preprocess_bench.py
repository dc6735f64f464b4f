#!/usr/bin/env python3
"""Preprocessing throughput: `mds preprocess` beside the reference GPT-2 tokenizer.

Measures MB/s (wall clock) and MB/s per core (input MB over the CPU seconds the process used,
user + system: robust on a shared machine, and what scales with cores) of
  - mds preprocess (GPT-2 BPE, --append-eod, .bin/.idx written) with 1 and with N workers,
  - the reference, node + gpt-3-encoder (tests/reference/gpt2_encode.js: JSON parse and
    encode, ids printed), single-threaded as it is,
on the same inputs in the same run: the Brown corpus (data/brown.jsonl) and a synthetic JSONL of
Brown's lines repeated (shuffled per copy) to --synthetic-mb, generated into a temporary folder.
MB = 10^6 bytes of JSONL text.

  /usr/bin/python3 bench/preprocess_bench.py [--mds build/mds] [--data data] [--synthetic-mb 100]
"""
import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_timed(cmd, stdin=None):
    """Runs cmd, returns (wall seconds, CPU seconds of the child: user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def make_synthetic(brown, path, megabytes, seed=1234):
    with open(brown, "rb") as f:
        lines = [l if l.endswith(b"\n") else l + b"\n" for l in f if l.strip()]
    rng = random.Random(seed)
    target, written = megabytes * 10**6, 0
    with open(path, "wb") as out:
        while written < target:
            rng.shuffle(lines)
            for l in lines:
                out.write(l)
                written += len(l)
                if written >= target:
                    break


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mds", default=os.path.join(ROOT, "build", "mds"))
    ap.add_argument("--data", default=os.path.join(ROOT, "data"))
    ap.add_argument("--synthetic-mb", type=int, default=100)
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="N of the multi-worker run")
    ap.add_argument("--no-reference", action="store_true", help="skip node + gpt-3-encoder")
    args = ap.parse_args()

    brown = os.path.join(args.data, "brown.jsonl")
    for f in (args.mds, brown, os.path.join(args.data, "gpt2-vocab.json")):
        if not os.path.exists(f):
            sys.exit(f"preprocess_bench: {f} is missing (build mds; run scripts/prepare_data.sh)")
    node = shutil.which("node")
    reference = not args.no_reference and node is not None
    if not args.no_reference and node is None:
        print("preprocess_bench: node not found, reference skipped", file=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="mds_prep_bench_")
    try:
        synthetic = os.path.join(tmp, f"brown_x{args.synthetic_mb}MB.jsonl")
        make_synthetic(brown, synthetic, args.synthetic_mb)
        tok = ["--tokenizer-type", "GPT2BPETokenizer",
               "--vocab-file", os.path.join(args.data, "gpt2-vocab.json"),
               "--merge-file", os.path.join(args.data, "gpt2-merges.txt"), "--append-eod"]
        rows = []
        worker_counts = sorted({1, max(1, args.workers)})
        for name, path in (("Brown", brown), (f"synthetic {args.synthetic_mb} MB", synthetic)):
            mb = os.path.getsize(path) / 1e6
            for w in worker_counts:
                wall, cpu = run_timed([args.mds, "preprocess", "--input", path, "--output-prefix",
                                       os.path.join(tmp, "out"), "--workers", str(w),
                                       "--log-interval", "100000000"] + tok)
                rows.append((name, mb, f"mds preprocess, {w} worker{'s' if w > 1 else ''}", wall, cpu))
            if reference:
                with open(path, "rb") as f:
                    wall, cpu = run_timed([node, os.path.join(ROOT, "tests", "reference", "gpt2_encode.js"),
                                           args.data], stdin=f)
                rows.append((name, mb, "node gpt-3-encoder (reference)", wall, cpu))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; "
          f"{time.strftime('%Y-%m-%d')}")
    print("| input | MB | tokenizer | wall s | MB/s | CPU s | MB/s per core |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, mb, what, wall, cpu in rows:
        print(f"| {name} | {mb:.1f} | {what} | {wall:.2f} | {mb / wall:.2f} | {cpu:.2f} | {mb / cpu:.2f} |")


if __name__ == "__main__":
    main()
