#!/usr/bin/env python3
"""Writes one layer's worth of many small files for the multi-layer benchmark image
(hack/bench-image.sh): COUNT files of 1-10 KiB of seeded random bytes (so the layer stays
about as large compressed as uncompressed, ~8 MB for 1,500 files), in directories of 50,
with a few symlinks and hardlinks among them, as an application layer has. The same
SEED always gives the same bytes, so every run of the benchmark pulls the same image.

usage: make-layer-files.py DIR SEED [COUNT]   (default 1500)
"""
import os
import random
import sys


def main():
    out, seed = sys.argv[1], int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1500
    rng = random.Random(seed)
    for i in range(count):
        d = os.path.join(out, f"d{i // 50:03d}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"f{i:05d}")
        if i % 100 == 99:
            os.symlink(f"f{i - 1:05d}", path)
        elif i % 100 == 98:
            os.link(os.path.join(d, f"f{i - 2:05d}"), path)
        else:
            with open(path, "wb") as f:
                f.write(rng.randbytes(rng.randint(1024, 10240)))
            os.utime(path, (1700000000 + i, 1700000000 + i))
    for root, dirs, _ in os.walk(out):
        for name in dirs:
            os.utime(os.path.join(root, name), (1700000000, 1700000000))


if __name__ == "__main__":
    main()
