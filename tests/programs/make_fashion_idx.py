"""Writes a small Fashion-MNIST look-alike (random 28x28 u8 images, labels in [0, 10)) as the four
gzip-compressed IDX files of Debian's dataset-fashion-mnist, for gradaccum-train's program tests.
    make_fashion_idx.py DIR TRAIN_ROWS TEST_ROWS"""
import gzip
import random
import struct
import sys

out, train_rows, test_rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(2026)
for split, n in (("train", train_rows), ("t10k", test_rows)):
    # Smooth-ish images: a random brightness per image times a random mask, so that an
    # autoencoder has something to learn.
    pixels = bytearray()
    for _ in range(n):
        level = rng.randrange(60, 256)
        pixels += bytes(level if rng.random() < 0.5 else rng.randrange(0, 40) for _ in range(784))
    labels = bytes(rng.randrange(10) for _ in range(n))
    with gzip.open(f"{out}/{split}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, n, 28, 28) + pixels)
    with gzip.open(f"{out}/{split}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">BBBBI", 0, 0, 8, 1, n) + labels)
