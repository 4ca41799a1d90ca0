#!/usr/bin/python3
"""Writes the PyTorch reference fixtures of tests/cpu/torch_reference_test.cpp.

Run with Debian's PyTorch (python3-torch):  /usr/bin/python3 scripts/make_torch_fixtures.py

For every case, PyTorch trains the MLP Linear(5, 7) -> ReLU -> Linear(7, 3) with L1 loss and SGD
the plain way (each step one full batch of all 12 samples) from its own default initialisation,
and the case directory tests/data/torch/<case>/ receives:
  config.txt            reduction, lr, momentum, dampening, weight_decay, nesterov, steps
  x.npy, y.npy          inputs [steps, 12, 5] and targets [steps, 12, 3] (float32)
  init/<name>.npy       initial parameters (fc1.weight, fc1.bias, fc2.weight, fc2.bias)
  final/<name>.npy      parameters after `steps` SGD steps
gradaccum must reach `final` from `init` for any split of each step's batch into micro-batches.
"""
import os
import sys

import numpy as np
import torch

IN, HIDDEN, OUT, BATCH, STEPS = 5, 7, 3, 12, 3

CASES = {
    # name: (reduction, lr, momentum, dampening, weight_decay, nesterov)
    "mean_plain": ("mean", 0.1, 0.0, 0.0, 0.0, False),
    "sum_plain": ("sum", 0.01, 0.0, 0.0, 0.0, False),
    "mean_momentum": ("mean", 0.1, 0.9, 0.1, 0.0, False),
    "sum_momentum": ("sum", 0.01, 0.9, 0.0, 0.0, False),
    "mean_nesterov_wd": ("mean", 0.1, 0.9, 0.0, 0.01, True),
}


def model_for(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, OUT))


NAMES = {"0.weight": "fc1.weight", "0.bias": "fc1.bias",
         "2.weight": "fc2.weight", "2.bias": "fc2.bias"}


def save_params(model, directory):
    os.makedirs(directory, exist_ok=True)
    for name, p in model.named_parameters():
        np.save(os.path.join(directory, NAMES[name] + ".npy"),
                p.detach().numpy().astype(np.float32))


def train_plainly(model, opt, x, y, reduction):
    """The plain way: step s is one full batch x[s], y[s] (L1 loss); returns the last loss."""
    loss_fn = torch.nn.L1Loss(reduction=reduction)
    for s in range(len(x)):
        opt.zero_grad()
        loss = loss_fn(model(x[s]), y[s])
        loss.backward()
        opt.step()
    return loss


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "torch")
    torch.set_num_threads(1)
    for i, (case, (reduction, lr, momentum, dampening, wd, nesterov)) in enumerate(CASES.items()):
        out = os.path.join(root, case)
        os.makedirs(out, exist_ok=True)
        model = model_for(1000 + i)
        gen = torch.Generator().manual_seed(2000 + i)
        x = torch.randn(STEPS, BATCH, IN, generator=gen, dtype=torch.float32)
        y = torch.randn(STEPS, BATCH, OUT, generator=gen, dtype=torch.float32)
        np.save(os.path.join(out, "x.npy"), x.numpy())
        np.save(os.path.join(out, "y.npy"), y.numpy())
        save_params(model, os.path.join(out, "init"))
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, dampening=dampening,
                              weight_decay=wd, nesterov=nesterov)
        loss = train_plainly(model, opt, x, y, reduction)
        save_params(model, os.path.join(out, "final"))
        with open(os.path.join(out, "config.txt"), "w") as f:
            f.write(f"reduction {reduction}\nlr {lr!r}\nmomentum {momentum!r}\n"
                    f"dampening {dampening!r}\nweight_decay {wd!r}\n"
                    f"nesterov {int(nesterov)}\nsteps {STEPS}\n"
                    f"torch {torch.__version__}\n")
        print(f"{case}: final loss {loss.item():.6f}", file=sys.stderr)


if __name__ == "__main__":
    main()
