#!/usr/bin/env python3
"""Every benchmark row against its ceiling, and against the performance targets.

Reads Google Benchmark JSON files (bench_kernels, bench_step; --benchmark_out_format=json) and
prints one markdown table per device:
  - GEMM rows: FLOP/s against the vendor library on the same product, shape and dtype (cuBLAS /
    OpenBLAS), and against the vendor's largest square GEMM of that dtype (the compute ceiling);
    targets on CUDA: hand-written fp32 >= 90% of cuBLAS, fp16 >= 60%.
  - bandwidth rows (accumulate, SGD): bytes/s against the device-to-device copy of the same run
    (the bandwidth ceiling); target >= 90%.
  - step rows: accumulate against overwrite (acc_vs_ovw), target <= 1.01.
  - launch-overhead rows: kernels per micro-step and graph against op by op.

  python3 bench/ceilings.py build/gpu-suite/bench_kernels.json build/gpu-suite/bench_step.json
"""
import json
import re
import sys

DEVICES = {"0": "CPU", "1": "CUDA"}
DTYPES = {"0": "f32", "1": "f16"}
GEMM_TARGET = {"f32": 0.90, "f16": 0.60}  # hand-written / vendor, CUDA only
BANDWIDTH_TARGET = 0.90
ACC_VS_OVW_TARGET = 1.01


def fields(name):
    """'BM_X/a:1/b:2/manual_time' -> ('BM_X', {'a': '1', 'b': '2'}, ['...positional'])."""
    parts = name.split("/")
    named, positional = {}, []
    for p in parts[1:]:
        if p == "manual_time":
            continue
        if ":" in p:
            k, v = p.split(":", 1)
            named[k] = v
        else:
            positional.append(p)
    return parts[0], named, positional


def load(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for b in data.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
                continue
            rows.append(b)
    return rows


def pct(x):
    return f"{100 * x:.0f}%"


def rate(x, unit):
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def milliseconds(b):
    per_ms = {"ns": 1e6, "us": 1e3, "ms": 1.0, "s": 1e-3}[b.get("time_unit", "ns")]
    return b["real_time"] / per_ms


def verdict(ok):
    return "" if ok is None else ("met" if ok else "NOT MET")


def report(rows):
    by_device = {}
    gemm = {}  # (dev, product, dtype, shape, backend) -> FLOP/s
    copy = {}  # dev -> bytes/s of the largest copy
    for b in rows:
        family, named, pos = fields(b["name"])
        if family == "BM_LinearGemm":
            product = pos[0]
            key = (named["dev"], product, DTYPES.get(named["dtype"], named["dtype"]),
                   (named["N"], named["in"], named["out"]), named["backend"])
            gemm[key] = b.get("FLOP/s", 0.0)
        elif family == "BM_Copy":
            dev, n = pos[0], int(pos[1])
            if dev not in copy or n > copy[dev][0]:
                copy[dev] = (n, b.get("bytes/s", 0.0))

    # The compute ceiling per (device, dtype): the vendor's largest square-ish GEMM.
    ceiling = {}
    for (dev, _, dtype, shape, backend), flops in gemm.items():
        if backend != "2":
            continue
        size = int(shape[0]) * int(shape[1]) * int(shape[2])
        if (dev, dtype) not in ceiling or size > ceiling[(dev, dtype)][0] or (
                size == ceiling[(dev, dtype)][0] and flops > ceiling[(dev, dtype)][1]):
            ceiling[(dev, dtype)] = (size, flops, shape)

    for b in rows:
        family, named, pos = fields(b["name"])
        dev = named.get("dev", pos[0] if pos else "?")
        line = None
        if family == "BM_LinearGemm":
            product, dtype = pos[0], DTYPES.get(named["dtype"], named["dtype"])
            shape = (named["N"], named["in"], named["out"])
            flops = b.get("FLOP/s", 0.0)
            backend = {"1": "hand-written", "2": "vendor"}.get(named["backend"], "auto")
            vendor = gemm.get((dev, product, dtype, shape, "2"))
            vs_vendor = flops / vendor if vendor else None
            top = ceiling.get((dev, dtype))
            target = GEMM_TARGET.get(dtype) if dev == "1" and backend == "hand-written" else None
            line = (f"{product} {dtype} {backend} {'x'.join(shape)}", rate(flops, "FLOP/s"),
                    pct(vs_vendor) + " of vendor" if vs_vendor and backend != "vendor" else "",
                    pct(flops / top[1]) + f" of vendor {'x'.join(top[2])}" if top else "",
                    f">= {pct(target)} of vendor" if target else "",
                    verdict(vs_vendor >= target if target and vs_vendor else None))
        elif family in ("BM_Accumulate", "BM_SgdUpdate", "BM_Copy"):
            dev = pos[0]
            bw = b.get("bytes/s", 0.0)
            top = copy.get(dev)
            is_copy = family == "BM_Copy"
            what = family[3:] + ("" if family != "BM_Accumulate" else
                                 " g=" + DTYPES.get(pos[1], pos[1])) + f" n={pos[-1]}"
            target = None if is_copy or dev != "1" else BANDWIDTH_TARGET
            frac = bw / top[1] if top and top[1] > 0 else None
            line = (what, rate(bw, "B/s"), "",
                    "(the ceiling)" if is_copy else pct(frac) + " of copy" if frac is not None else "",
                    f">= {pct(target)} of copy" if target else "",
                    verdict(frac >= target if target and frac is not None else None))
        elif family == "BM_Step" and "acc_vs_ovw" in b:
            target = ACC_VS_OVW_TARGET if dev == "1" else None
            r = b["acc_vs_ovw"]
            what = ("step " + DTYPES.get(named.get("dtype"), "?") +
                    f" {named.get('in')}-{named.get('hidden')}-{named.get('out')}"
                    f" B={named.get('B')} k={named.get('k')} det={named.get('det')}")
            line = (what, f"{milliseconds(b):.3g} ms", "", f"accumulate/overwrite {r:.3f}",
                    f"<= {target:.2f}" if target else "",
                    verdict(r <= target if target else None))
        elif family == "BM_LaunchOverhead":
            dev = "1"
            what = f"launch graph={named.get('graph')} k={named.get('k')}"
            extra = f"{b.get('kernels', 0):.0f} nodes" if "kernels" in b else ""
            ratio = f"graph/ops {b['graph_vs_ops']:.2f}" if "graph_vs_ops" in b else ""
            line = (what, f"{b.get('us_per_micro_step', 0):.3g} us/micro-step", extra, ratio, "", "")
        if line:
            by_device.setdefault(DEVICES.get(dev, dev), []).append(line)

    out = []
    for device, lines in by_device.items():
        out.append(f"\n### {device}\n")
        out.append("| benchmark | rate | vs vendor, same shape | vs ceiling | target | verdict |")
        out.append("|---|---|---|---|---|---|")
        out.extend("| " + " | ".join(l) + " |" for l in lines)
    missed = sum(1 for lines in by_device.values() for l in lines if l[-1] == "NOT MET")
    met = sum(1 for lines in by_device.values() for l in lines if l[-1] == "met")
    out.append(f"\ntargets: {met} met, {missed} not met")
    return "\n".join(out)


def main(argv):
    if len(argv) < 2 or any(a in ("-h", "--help") for a in argv[1:]):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    try:
        rows = load(argv[1:])
    except (OSError, ValueError) as e:
        print(f"ceilings.py: cannot read the benchmark results: {e}", file=sys.stderr)
        return 2
    if not rows:
        print("ceilings.py: no benchmark rows in " + ", ".join(argv[1:]), file=sys.stderr)
        return 2
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
