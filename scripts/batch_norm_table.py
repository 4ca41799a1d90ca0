#!/usr/bin/python3
"""The README's "BatchNorm and accumulation" table: how far ghost batch norm (each micro-batch
normalised with its own statistics, what every framework does) moves the training step away from
the big batch's as the number of micro-batches k grows, and what window mode (the window's
statistics, optim::BatchNormReplay) costs.

  /usr/bin/python3 scripts/batch_norm_table.py [path/to/gradaccum-train] [--hidden N] [--costs-only]

Trains the Fashion-MNIST autoencoder 784 -> hidden -> BatchNorm1d -> ReLU -> 784 (batch 256,
SGD lr 1, momentum 0.9) from one initialisation, for one step and for one epoch (234 full
batches; the short last one left out, whose micro-batches could hold one row), with the batch
split into k = 1, 2, 4, ..., 256 micro-batches, in each mode, in deterministic mode (so that
equal steps show as equal bytes). The reference is k = 1 (one batch: the modes agree). For each
run it reports the relative distance of the parameters to the reference's,
||theta_k - theta_ref|| / ||theta_ref - theta_0|| (0: the big batch's step; 1: an error as large
as the update itself), that of the running statistics, ||r_k - r_ref|| / ||r_ref||, and the test
L1. Then the cost: the time per step of 30 steps (the first left out; the best of 3 runs, default
GEMMs) in each mode. Prints two markdown tables.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

TRAIN = "build/default/tools/gradaccum-train"
HIDDEN = 64
PARAMS = ["fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "fc2.weight", "fc2.bias"]
BUFFERS = ["bn.running_mean", "bn.running_var"]
KS = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def run(args, save):
    cmd = [TRAIN, "--dataset", "fashion-mnist", "--hidden", str(HIDDEN), "--batch", "256",
           "--momentum", "0.9", "--device", "cpu", "--print-every", "0",
           "--save-weights", save] + args
    if "--lr" not in args:
        cmd += ["--lr", "1"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None, p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "failed"
    summary = [l for l in p.stdout.splitlines() if l.startswith("summary:")][-1]
    step_ms = float(re.search(r"step time ([0-9.e+-]+) ms", summary).group(1))
    m = re.search(r"eval loss ([0-9.e+-]+)", summary)
    return {"step_ms": step_ms, "eval": float(m.group(1)) if m else float("nan")}, None


def load(d, names):
    return np.concatenate([np.load(os.path.join(d, n + ".npy")).astype(np.float64).ravel()
                           for n in names])


def distances(tmp, init):
    rows, ref = [], {}
    for length in ["--steps 1", "--epochs 1 --drop-last"]:
        for mode in ["micro-batch", "window"]:
            for k in KS:
                out = os.path.join(tmp, f"{mode}-{k}-{length.split()[0][2:]}")
                res, err = run(length.split() + ["--batch-norm", mode, "--accum", str(k),
                                                 "--load-weights", init, "--deterministic"], out)
                rows.append((length, mode, k, out, res, err))
                if k == 1 and mode == "micro-batch":
                    ref[length] = out
    theta0 = load(init, PARAMS)
    print("| after | mode | k | rows per micro-batch | parameters: distance to the big batch's "
          "| running statistics: distance | test L1 |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for length, mode, k, out, res, err in rows:
        name = "1 step" if length == "--steps 1" else "1 epoch"
        mode_name = "ghost" if mode == "micro-batch" else "window"
        if res is None:
            print(f"| {name} | {mode_name} | {k} | {256 // k} | refused: one row per channel "
                  "| | |")
            continue
        r = ref[length]
        t_ref, t_k = load(r, PARAMS), load(out, PARAMS)
        b_ref, b_k = load(r, BUFFERS), load(out, BUFFERS)
        d = np.linalg.norm(t_k - t_ref) / np.linalg.norm(t_ref - theta0)
        db = np.linalg.norm(b_k - b_ref) / np.linalg.norm(b_ref)
        fmt = (lambda v: "0 (same bytes)" if v == 0 else f"{v:.2e}")
        print(f"| {name} | {mode_name} | {k} | {256 // k} | {fmt(d)} | {fmt(db)} | "
              f"{res['eval']:.5f} |")


def costs(tmp, init):
    print()
    print("| k | rows per micro-batch | ghost: ms per step | window: ms per step | window / ghost |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for k in [1, 4, 16, 64, 128]:
        best = {}
        for mode in ["micro-batch", "window"]:
            times = []
            for _ in range(3):
                res, err = run(["--steps", "30", "--batch-norm", mode, "--accum", str(k),
                                "--load-weights", init, "--eval-every", "0"],
                               os.path.join(tmp, "cost"))
                if res:
                    times.append(res["step_ms"])
            best[mode] = min(times) if times else float("nan")
        g, w = best["micro-batch"], best["window"]
        print(f"| {k} | {256 // k} | {g:.2f} | {w:.2f} | {w / g:.2f} |")


def main():
    global TRAIN, HIDDEN
    args = sys.argv[1:]
    if "--hidden" in args:
        i = args.index("--hidden")
        HIDDEN = int(args[i + 1])
        del args[i:i + 2]
    only_costs = "--costs-only" in args
    if only_costs:
        args.remove("--costs-only")
    if args:
        TRAIN = args[0]
    tmp = tempfile.mkdtemp(prefix="ga_bn_table_")
    init = os.path.join(tmp, "init")
    # The initial weights (a step at lr 0), with fresh running statistics.
    _, err = run(["--steps", "1", "--lr", "0", "--batch-norm", "micro-batch"], init)
    if err:
        sys.exit(f"batch_norm_table: the initial run failed: {err}")
    np.save(os.path.join(init, "bn.running_mean.npy"), np.zeros(HIDDEN, dtype=np.float32))
    np.save(os.path.join(init, "bn.running_var.npy"), np.ones(HIDDEN, dtype=np.float32))
    if not only_costs:
        distances(tmp, init)
    costs(tmp, init)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
