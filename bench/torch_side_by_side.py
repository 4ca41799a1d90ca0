#!/usr/bin/env python3
"""gradaccum against PyTorch (eager), the same MLP training step side by side.

Both train Linear(in, hidden) -> ReLU -> Linear(hidden, out) with L1 loss (mean) and SGD
(momentum 0.9) on the same device, shapes, dtype and micro-batch split; each step one batch of B
rows split into k micro-batches accumulated into one step. Each micro-batch is sliced on the
host and copied to the device in both. PyTorch runs eager, and where available with each
micro-step captured in a CUDA graph (GPU, f32) and with torch.compile (PyTorch >= 2). Prints one
table: step time of each and the ratios torch / gradaccum (> 1: gradaccum is faster).

  python3 bench/torch_side_by_side.py --device cpu --gradaccum build/default
"""
import argparse
import os
import re
import subprocess
import sys
import time

import torch

# (name, in, hidden, out, B, k values)
SHAPES = {
    "cpu": [("small", 64, 256, 8, 256, [1, 4, 16, 64]),
            ("medium", 256, 1024, 8, 1024, [1, 4, 16])],
    "cuda": [("small", 64, 256, 8, 256, [1, 4, 16, 64]),
             ("medium", 256, 1024, 8, 1024, [1, 4, 16]),
             ("large", 1024, 4096, 8, 4096, [1, 4, 16]),
             ("fill", 4096, 16384, 8, 4096, [1, 4])],
}


def split_sizes(batch, k):
    return [batch // k + (1 if i < batch % k else 0) for i in range(k)]


def make_model(device, n_in, hidden, n_out):
    torch.manual_seed(0)
    dev = torch.device(device)
    return torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, n_out)).to(dev)


def timed(device, step, steps):
    """Runs step(0) as a warm-up, then steps 1 .. steps-1; returns ms per step."""
    step(0)  # warm-up, left out as gradaccum-train leaves out its first step
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for s in range(1, steps):
        step(s)
    if device == "cuda":
        torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - t0) / (steps - 1)


def torch_step_ms(mode, device, dtype, n_in, hidden, n_out, batch, k, steps, threads):
    """PyTorch's step: mode "eager", or "compile" (torch.compile of the model, PyTorch >= 2)."""
    torch.set_num_threads(threads)
    dev = torch.device(device)
    tdtype = torch.float16 if dtype == "f16" else torch.float32
    model = make_model(device, n_in, hidden, n_out)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    forward = torch.compile(model) if mode == "compile" else model
    scaler = torch.cuda.amp.GradScaler() if dtype == "f16" else None
    x = torch.rand(steps * batch, n_in) * 2 - 1
    y = torch.rand(steps * batch, n_out)
    sizes = split_sizes(batch, k)
    loss_fn = torch.nn.L1Loss(reduction="sum")

    def step(s):
        opt.zero_grad(set_to_none=False)
        row = s * batch
        for m in sizes:
            xb = x[row:row + m].to(dev)
            yb = y[row:row + m].to(dev)
            if dtype == "f16":
                with torch.autocast(device_type=device, dtype=tdtype):
                    loss = loss_fn(forward(xb), yb) / (batch * n_out)  # mean over the batch
            else:
                loss = loss_fn(forward(xb), yb) / (batch * n_out)
            (scaler.scale(loss) if scaler else loss).backward()
            row += m
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()

    if mode == "compile":
        step(0)  # compiles each micro-batch shape before the timed warm-up
    return timed(device, step, steps)


def torch_graphed_step_ms(n_in, hidden, n_out, batch, k, steps):
    """PyTorch's step with each micro-step (forward, loss, backward accumulating into .grad)
    captured once per micro-batch size in a CUDA graph and replayed (f32, CUDA only)."""
    dev = torch.device("cuda")
    model = make_model("cuda", n_in, hidden, n_out)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.rand(steps * batch, n_in) * 2 - 1
    y = torch.rand(steps * batch, n_out)
    sizes = split_sizes(batch, k)
    loss_fn = torch.nn.L1Loss(reduction="sum")
    graphs = {}
    for m in sorted(set(sizes)):
        static_x = torch.zeros(m, n_in, device=dev)
        static_y = torch.zeros(m, n_out, device=dev)
        side = torch.cuda.Stream()  # warm-up off the default stream, as capture requires
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                (loss_fn(model(static_x), static_y) / (batch * n_out)).backward()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # .grad exists: the captured backward adds in place
            (loss_fn(model(static_x), static_y) / (batch * n_out)).backward()
        graphs[m] = (graph, static_x, static_y)

    def step(s):
        opt.zero_grad(set_to_none=False)
        row = s * batch
        for m in sizes:
            graph, static_x, static_y = graphs[m]
            static_x.copy_(x[row:row + m].to(dev))
            static_y.copy_(y[row:row + m].to(dev))
            graph.replay()
            row += m
        opt.step()

    return timed("cuda", step, steps)


def gradaccum_step_ms(binary, device, dtype, n_in, hidden, n_out, batch, k, steps):
    cmd = [binary, "--device", device, "--dtype", dtype, "--in", str(n_in), "--hidden",
           str(hidden), "--out", str(n_out), "--batch", str(batch), "--accum", str(k), "--steps",
           str(steps), "--print-every", "0", "--lr", "0.05", "--momentum", "0.9"]
    if dtype == "f16":
        cmd += ["--loss-scale", "dynamic"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(re.search(r"step time ([0-9.e+-]+) ms", out).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    ap.add_argument("--gradaccum", default="build/default", help="gradaccum build directory")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--shapes", default="", help="comma-separated subset, e.g. small")
    ap.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    args = ap.parse_args()
    binary = os.path.join(args.gradaccum, "tools", "gradaccum-train")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_side_by_side: --device cuda but PyTorch sees no GPU")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))

    # PyTorch's modes on this machine: eager always; CUDA graphs (f32) on a GPU; torch.compile
    # where PyTorch has it (>= 2.0) unless --no-compile.
    modes = ["eager"]
    if args.device == "cuda" and args.dtype == "f32":
        modes.append("graphs")
    if hasattr(torch, "compile") and not args.no_compile:
        modes.append("compile")

    print(f"# gradaccum vs PyTorch {torch.__version__} ({args.device}, {args.dtype}, "
          f"{args.threads} threads), ms per optimizer step, mean of {args.steps - 1} steps after "
          f"one warm-up step; torch modes: {', '.join(modes)}; best/ga: the fastest PyTorch mode "
          f"over gradaccum (> 1: gradaccum is faster)")
    header = f"{'shape':8} {'in':>5} {'hidden':>6} {'B':>5} {'k':>4} {'gradaccum':>10}"
    for mode in modes:
        header += f" {'torch ' + mode:>14}"
    print(header + f" {'eager/ga':>9} {'best/ga':>8}")
    for name, n_in, hidden, n_out, batch, ks in SHAPES[args.device]:
        if args.shapes and name not in args.shapes.split(","):
            continue
        for k in ks:
            ga = gradaccum_step_ms(binary, args.device, args.dtype, n_in, hidden, n_out, batch, k,
                                   args.steps)
            times = {}
            for mode in modes:
                if mode == "graphs":
                    times[mode] = torch_graphed_step_ms(n_in, hidden, n_out, batch, k, args.steps)
                else:
                    times[mode] = torch_step_ms(mode, args.device, args.dtype, n_in, hidden, n_out,
                                                batch, k, args.steps, args.threads)
            row = f"{name:8} {n_in:5d} {hidden:6d} {batch:5d} {k:4d} {ga:10.3f}"
            for mode in modes:
                row += f" {times[mode]:14.3f}"
            print(row + f" {times['eager'] / ga:9.2f} {min(times.values()) / ga:8.2f}",
                  flush=True)

if __name__ == "__main__":
    main()
