#!/usr/bin/env bash
# Installs the Debian packages gradaccum's build, tests and tools need. Idempotent: packages
# already installed are not fetched again, and apt-get runs only when something is missing.
set -euo pipefail

packages=(
  cmake ninja-build g++ clang libclang-rt-14-dev   # compilers; clang's libFuzzer and sanitizers
  libgtest-dev libgmock-dev libbenchmark-dev       # GoogleTest, Google Benchmark
  libboost-context-dev                             # fibers of the emulated CUDA device
  libopenblas-dev                                  # the CPU backend's BLAS
  libopenmpi-dev openmpi-bin                       # data parallelism (dist/) and its tests
  gnuplot-nox                                      # gradaccum-stability's plots
  python3-numpy                                    # .npy fixtures and comparison scripts
  zlib1g-dev                                       # gzip-compressed datasets (data/idx.cpp)
  dataset-fashion-mnist                            # the main job's dataset (data/fashion_mnist.h)
)
if [[ "${GRADACCUM_WITH_TORCH:-0}" == 1 ]]; then
  packages+=(python3-torch)  # PyTorch side by side (benchmarks, fixture regeneration)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# nvcc is optional: without it the default build is CPU-only (the emulated device still
# needs the CUDA toolkit's headers).
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  echo "setup: nvcc found at /usr/local/cuda/bin (add it to PATH to use it directly)"
fi
