#!/usr/bin/python3
"""Writes the PyTorch BatchNorm fixtures of tests/cpu/batch_norm_torch_test.cpp.

Run with Debian's PyTorch (python3-torch):  /usr/bin/python3 scripts/make_torch_bn_fixtures.py

Every case trains Linear(5, 6) -> BatchNorm1d(6) -> ReLU -> Linear(6, 3) with L1 loss and SGD
from PyTorch's own initialisation, `steps` steps of 12 samples each:
  window cases: the plain way, each step one batch of all 12 samples (what gradaccum's window
                mode must reproduce for any split);
  ghost cases:  each step a loop over the micro-batches of `split`, every micro-batch its own
                batch to BatchNorm (statistics, running-statistics update), the losses summed
                and divided once by the step's count, then one optimizer step.
tests/data/torch_bn/<case>/ receives:
  config.txt          mode, reduction, lr, momentum, bn_eps, bn_momentum, steps, split
  x.npy, y.npy        inputs [steps, 12, 5] and targets [steps, 12, 3] (float32)
  x_eval.npy          [7, 5]: evaluation-mode inputs, out_eval.npy [7, 3] the trained model's output
  init/<name>.npy     initial parameters and running statistics
  final/<name>.npy    the same after the steps
"""
import os

import numpy as np
import torch

IN, HIDDEN, OUT, BATCH, STEPS = 5, 6, 3, 12, 3

CASES = {
    # name: (mode, reduction, lr, momentum, bn_eps, bn_momentum, split)
    "window_mean_momentum": ("window", "mean", 0.1, 0.9, 1e-5, 0.1, [12]),
    "window_sum_plain": ("window", "sum", 0.01, 0.0, 1e-5, 0.1, [12]),
    "window_mean_bn_options": ("window", "mean", 0.2, 0.5, 1e-3, 0.3, [12]),
    "ghost_mean_momentum": ("ghost", "mean", 0.1, 0.9, 1e-5, 0.1, [5, 4, 3]),
    "ghost_sum_plain": ("ghost", "sum", 0.01, 0.0, 1e-5, 0.1, [4, 4, 4]),
}

NAMES = {"0.weight": "fc1.weight", "0.bias": "fc1.bias", "1.weight": "bn.weight",
         "1.bias": "bn.bias", "1.running_mean": "bn.running_mean",
         "1.running_var": "bn.running_var", "3.weight": "fc2.weight", "3.bias": "fc2.bias"}


def model_for(seed, eps, momentum):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(IN, HIDDEN), torch.nn.BatchNorm1d(HIDDEN, eps=eps, momentum=momentum),
        torch.nn.ReLU(), torch.nn.Linear(HIDDEN, OUT))


def save_state(model, directory):
    os.makedirs(directory, exist_ok=True)
    for name, t in model.state_dict().items():
        if name in NAMES:
            np.save(os.path.join(directory, NAMES[name] + ".npy"),
                    t.detach().numpy().astype(np.float32))


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                        "torch_bn")
    torch.set_num_threads(1)
    for i, (case, (mode, reduction, lr, momentum, eps, bn_momentum, split)) in enumerate(
            CASES.items()):
        out = os.path.join(root, case)
        os.makedirs(out, exist_ok=True)
        model = model_for(3000 + i, eps, bn_momentum)
        gen = torch.Generator().manual_seed(4000 + i)
        # An offset mean, so that the statistics matter.
        x = torch.randn(STEPS, BATCH, IN, generator=gen) * 2.0 + 0.5
        y = torch.randn(STEPS, BATCH, OUT, generator=gen)
        x_eval = torch.randn(7, IN, generator=gen)
        np.save(os.path.join(out, "x.npy"), x.numpy())
        np.save(os.path.join(out, "y.npy"), y.numpy())
        np.save(os.path.join(out, "x_eval.npy"), x_eval.numpy())
        save_state(model, os.path.join(out, "init"))
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        model.train()
        for s in range(STEPS):
            opt.zero_grad()
            if mode == "window":
                loss = torch.nn.functional.l1_loss(model(x[s]), y[s], reduction=reduction)
                loss.backward()
            else:
                count = BATCH * OUT if reduction == "mean" else 1
                begin = 0
                for n in split:
                    pred = model(x[s, begin:begin + n])
                    loss = torch.nn.functional.l1_loss(pred, y[s, begin:begin + n],
                                                       reduction="sum") / count
                    loss.backward()
                    begin += n
            opt.step()
        save_state(model, os.path.join(out, "final"))
        model.eval()
        with torch.no_grad():
            np.save(os.path.join(out, "out_eval.npy"), model(x_eval).numpy())
        with open(os.path.join(out, "config.txt"), "w") as f:
            f.write(f"mode {mode}\nreduction {reduction}\nlr {lr}\nmomentum {momentum}\n"
                    f"bn_eps {eps}\nbn_momentum {bn_momentum}\nsteps {STEPS}\n"
                    f"split {' '.join(str(n) for n in split)}\n")
        print(case, "written")


if __name__ == "__main__":
    main()
