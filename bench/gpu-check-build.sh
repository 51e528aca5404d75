#!/usr/bin/env bash
# Builds what bench/gpu-check.sh carries to a GPU machine: research-agent in the release profile
# with Burn's CUDA backend (`--features ra-cli/cuda`: the driver and NVRTC are loaded at run
# time, so no CUDA toolkit is needed here), stripped, in bench/gpu-check/ (git-ignored).
# Prints the file's size; the GPU machine takes at most 64 MiB along.
#
# RA_GPU_CHECK_FEATURES (default "cuda") picks the features; empty builds the flex-only binary
# that `bench/gpu-check.sh --dry-run` runs on the CPU. The cuda feature's build downloads CubeCL's
# LLVM (tracel-llvm-bundler, from GitHub releases) once into ~/.local/share/tracel/: it fails on
# a machine that cannot reach GitHub unless that folder is copied in (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/research-agent/target}"
features="${RA_GPU_CHECK_FEATURES-cuda}"
cargo build --release --locked -p ra-cli ${features:+--features "$features"} --bin research-agent
mkdir -p bench/gpu-check
cp "$CARGO_TARGET_DIR/release/research-agent" bench/gpu-check/research-agent
strip bench/gpu-check/research-agent
ls -l bench/gpu-check/research-agent
bytes=$(stat -c %s bench/gpu-check/research-agent)
if [ "$bytes" -gt $((56 * 1024 * 1024)) ]; then
  echo "bench/gpu-check/research-agent is $((bytes / 1024 / 1024)) MiB: too large to carry" >&2
  exit 1
fi
