#!/usr/bin/python3
"""Writes the PyTorch AdamW fixtures of tests/cpu/adamw_test.cpp (and tests/gpu/adamw_test.cpp).

Run with Debian's PyTorch (python3-torch):  /usr/bin/python3 scripts/make_torch_adamw_fixtures.py

PyTorch runs with ATEN_CPU_CAPABILITY=default (set below, before torch is imported): its DEFAULT
CPU kernels round every operation to float32, while its AVX2/AVX512 ones fuse add_(alpha) and
addcmul_ into FMAs (kernels/adamw.h). AdamW is torch.optim.AdamW(foreach=False), i.e.
_single_tensor_adamw, PyTorch 1.13's default.

Two kinds of case, each a directory tests/data/torch_adamw/<case>/:

Training cases (mean_plain, mean_weight_decay, mean_amsgrad, sum_plain, mean_betas_eps): PyTorch
trains the MLP Linear(5, 7) -> ReLU -> Linear(7, 3) with L1 loss and AdamW the plain way (each
step one full batch of all 12 samples) from its own default initialisation:
  config.txt            reduction, lr, beta1, beta2, eps, weight_decay, amsgrad, steps
  x.npy, y.npy          inputs [steps, 12, 5] and targets [steps, 12, 3] (float32)
  init/<name>.npy       initial parameters (fc1.weight, fc1.bias, fc2.weight, fc2.bias)
  final/<name>.npy      parameters after `steps` AdamW steps
gradaccum must reach `final` from `init` for any split of each step's batch into micro-batches,
to float32 rounding (the gradients are summed in other orders).

Update cases (update_*): AdamW on one float32 tensor of N elements with given gradients, so that
gradaccum's update must give PyTorch's bits exactly:
  config.txt            lr, beta1, beta2, eps, weight_decay, amsgrad, steps, n
  param0.npy            the initial parameter [n]
  grads.npy             the gradient of each step [steps, n] (never zero, magnitudes 1e-4..10)
  param.npy, exp_avg.npy, exp_avg_sq.npy (and max_exp_avg_sq.npy with amsgrad)
                        PyTorch's tensors after each step [steps, n]
  orders.txt            for each other plausible order of the arithmetic, how many of the last
                        step's parameter elements it gets wrong (the script checks that every
                        one of them gets some wrong, so the bit-exact test tells them apart)
"""
import os
import sys

os.environ["ATEN_CPU_CAPABILITY"] = "default"

import numpy as np  # noqa: E402
import torch  # noqa: E402

# The MLP and its parameter files are those of the SGD fixtures (this script's directory is on
# sys.path when it runs).
from make_torch_fixtures import (BATCH, IN, OUT, model_for, save_params,  # noqa: E402
                                 train_plainly)

STEPS = 5
F32 = np.float32

TRAINING = {
    # name: (reduction, lr, (beta1, beta2), eps, weight_decay, amsgrad)
    "mean_plain": ("mean", 0.01, (0.9, 0.999), 1e-8, 1e-2, False),
    "mean_weight_decay": ("mean", 0.01, (0.9, 0.999), 1e-8, 0.5, False),
    # beta2 = 0.6: the second moment falls between steps, so its running max matters.
    "mean_amsgrad": ("mean", 0.01, (0.9, 0.6), 1e-8, 1e-2, True),
    "sum_plain": ("sum", 0.003, (0.9, 0.999), 1e-8, 1e-2, False),
    "mean_betas_eps": ("mean", 0.02, (0.8, 0.95), 1e-3, 1e-2, False),
}

UPDATE_N, UPDATE_STEPS = 1031, 5
UPDATES = {
    # name: (lr, (beta1, beta2), eps, weight_decay, amsgrad)
    "update_defaults": (1e-3, (0.9, 0.999), 1e-8, 1e-2, False),
    "update_amsgrad_wd": (3e-3, (0.9, 0.6), 1e-8, 0.1, True),
    "update_betas_eps": (0.03, (0.6, 0.8), 1e-3, 0.0, False),
}


def train(case, i, root):
    reduction, lr, betas, eps, wd, amsgrad = TRAINING[case]
    out = os.path.join(root, case)
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(3000 + i)
    x = torch.randn(STEPS, BATCH, IN, generator=gen, dtype=torch.float32)
    y = torch.randn(STEPS, BATCH, OUT, generator=gen, dtype=torch.float32)

    def run(with_amsgrad):
        model = model_for(1100 + i)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=wd,
                                amsgrad=with_amsgrad, foreach=False)
        return model, train_plainly(model, opt, x, y, reduction)

    model, loss = run(amsgrad)
    np.save(os.path.join(out, "x.npy"), x.numpy())
    np.save(os.path.join(out, "y.npy"), y.numpy())
    save_params(model_for(1100 + i), os.path.join(out, "init"))
    save_params(model, os.path.join(out, "final"))
    if amsgrad:
        # The fixture must tell amsgrad from plain Adam by far more than the test's tolerance.
        plain, _ = run(False)
        diff = max(float((a - b).abs().max())
                   for a, b in zip(model.parameters(), plain.parameters()))
        assert diff > 1e-4, f"{case}: amsgrad changes the parameters by only {diff}"
        print(f"{case}: amsgrad moves the parameters by up to {diff:.3g}", file=sys.stderr)
    with open(os.path.join(out, "config.txt"), "w") as f:
        f.write(f"reduction {reduction}\nlr {lr!r}\nbeta1 {betas[0]!r}\nbeta2 {betas[1]!r}\n"
                f"eps {eps!r}\nweight_decay {wd!r}\namsgrad {int(amsgrad)}\nsteps {STEPS}\n"
                f"torch {torch.__version__}\n")
    print(f"{case}: final loss {loss.item():.6f}", file=sys.stderr)


def emulate(p, grads, lr, betas, eps, wd, amsgrad, variant):
    """AdamW in numpy float32, one rounding per operation (the rule of kernels/adamw.h), or one
    other plausible order (`variant`); returns the parameter after every step."""
    beta1, beta2 = betas
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    vmax = np.zeros_like(p)
    L = np.longdouble

    def fma(a, b, c):  # a * b + c, rounded once (80-bit intermediate: exact enough here)
        return (L(a) * L(b) + L(c)).astype(F32)

    for step in range(1, len(grads) + 1):
        g = grads[step - 1]
        if variant == "f32 scalars":  # the scalars computed in float32, not double
            decay = F32(1) - F32(lr) * F32(wd)
            bc1 = F32(1) - F32(beta1) ** F32(step)
            neg_step = -(F32(lr) / bc1)
            bc2_sqrt = np.sqrt(F32(1) - F32(beta2) ** F32(step))
        else:
            decay = F32(1 - lr * wd)
            neg_step = F32(-(lr / (1 - beta1 ** step)))
            bc2_sqrt = F32(np.sqrt(1 - beta2 ** step))
        omb1, omb2 = F32(1 - beta1), F32(1 - beta2)
        p = p * decay
        if variant == "FMA (AVX2 kernels)":
            m = fma(g, omb1, m * F32(beta1))
            v = fma(omb2 * g, g, v * F32(beta2))
        elif variant == "addcmul value*(g*g)":
            m = m * F32(beta1) + omb1 * g
            v = v * F32(beta2) + omb2 * (g * g)
        else:
            m = m * F32(beta1) + omb1 * g
            v = v * F32(beta2) + (omb2 * g) * g
        s = v
        if amsgrad:
            vmax = np.maximum(vmax, v)
            s = vmax
        if variant == "divide by multiplying by 1/bc2_sqrt":
            d = np.sqrt(s) * F32(1 / np.float64(bc2_sqrt)) + F32(eps)
        else:
            d = np.sqrt(s) / bc2_sqrt + F32(eps)
        if variant == "addcdiv value*(m/d)":
            p = p + neg_step * (m / d)
        else:
            p = p + (neg_step * m) / d
        yield p


VARIANTS = ["f32 scalars", "FMA (AVX2 kernels)", "addcmul value*(g*g)",
            "divide by multiplying by 1/bc2_sqrt", "addcdiv value*(m/d)"]


def update_case(case, i, root):
    lr, betas, eps, wd, amsgrad = UPDATES[case]
    out = os.path.join(root, case)
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(4000 + i)
    p0 = rng.uniform(-1, 1, UPDATE_N).astype(F32)
    p0[p0 == 0] = F32(0.5)
    sign = np.where(rng.uniform(size=(UPDATE_STEPS, UPDATE_N)) < 0.5, -1.0, 1.0)
    grads = (sign * 10.0 ** rng.uniform(-4, 1, (UPDATE_STEPS, UPDATE_N))).astype(F32)
    param = torch.from_numpy(p0.copy())
    opt = torch.optim.AdamW([param], lr=lr, betas=betas, eps=eps, weight_decay=wd,
                            amsgrad=amsgrad, foreach=False)
    names = ["param", "exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
    history = {k: [] for k in names}
    with torch.no_grad():
        for s in range(UPDATE_STEPS):
            param.grad = torch.from_numpy(grads[s].copy())
            opt.step()
            state = opt.state[param]
            history["param"].append(param.numpy().copy())
            for k in names[1:]:
                history[k].append(state[k].numpy().copy())
    np.save(os.path.join(out, "param0.npy"), p0)
    np.save(os.path.join(out, "grads.npy"), grads)
    for k in names:
        np.save(os.path.join(out, k + ".npy"), np.stack(history[k]).astype(F32))
    want = history["param"]
    rule = list(emulate(p0, grads, lr, betas, eps, wd, amsgrad, "rule"))
    for s in range(UPDATE_STEPS):
        assert np.array_equal(rule[s].view(np.uint32), want[s].view(np.uint32)), \
            f"{case}: the documented rule does not give PyTorch's bits at step {s + 1}"
    lines = []
    for variant in VARIANTS:
        last = list(emulate(p0, grads, lr, betas, eps, wd, amsgrad, variant))[-1]
        wrong = int(np.count_nonzero(last.view(np.uint32) != want[-1].view(np.uint32)))
        assert wrong > 0, f"{case}: the order '{variant}' is not told apart from PyTorch's"
        lines.append(f"{variant}: {wrong} of {UPDATE_N} elements differ after step "
                     f"{UPDATE_STEPS}\n")
    with open(os.path.join(out, "orders.txt"), "w") as f:
        f.writelines(lines)
    with open(os.path.join(out, "config.txt"), "w") as f:
        f.write(f"lr {lr!r}\nbeta1 {betas[0]!r}\nbeta2 {betas[1]!r}\neps {eps!r}\n"
                f"weight_decay {wd!r}\namsgrad {int(amsgrad)}\nsteps {UPDATE_STEPS}\n"
                f"n {UPDATE_N}\ntorch {torch.__version__}\n"
                f"capability {os.environ['ATEN_CPU_CAPABILITY']}\n")
    print(f"{case}: PyTorch's bits = the rule's; other orders: "
          + "; ".join(line.strip() for line in lines), file=sys.stderr)


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                        "torch_adamw")
    torch.set_num_threads(1)
    for i, case in enumerate(TRAINING):
        train(case, i, root)
    for i, case in enumerate(UPDATES):
        update_case(case, i, root)


if __name__ == "__main__":
    main()
