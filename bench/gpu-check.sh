#!/usr/bin/env bash
# The GPU check, in one short go on a machine with an NVIDIA GPU and a Python with torch, without
# a Rust toolchain and fetching nothing. It runs bench/gpu-check/research-agent (built here by
# bench/gpu-check-build.sh: stripped, release, Burn's CUDA backend) and bench/torch_reference.py:
#
#   1. the devices the binary's trainer finds (and, for each missing one, why);
#   2. `ra-trainer bench` on CIFAR-10-shaped inputs (3×32×32): the reference CNN and the MLP,
#      batch 64, Adam, on `cuda` (and `libtorch-cuda` when this binary has it), against the same
#      models in this machine's PyTorch on the same GPU; samples/s and the ratio;
#   3. a short research session (offline, synthetic images) on `--device cuda` through the
#      process sandbox.
#
#   bench/gpu-check.sh              on the GPU (exits 1 when CUDA is not usable)
#   bench/gpu-check.sh --dry-run    the same steps on the CPU (flex; PyTorch on the CPU)
#
# RA_PYTHON names the Python with torch (default python3); everything printed is also written to
# $OUT/gpu-check.log when OUT is set. About 10 minutes at most (each step has its own timeout).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary="${RA_GPU_CHECK_BINARY:-$here/gpu-check/research-agent}"
python="${RA_PYTHON:-python3}"
device=cuda torch_device=cuda backends=cuda,tch-cuda
if [ "${1:-}" = "--dry-run" ]; then
  device=flex torch_device=cpu backends=flex
fi
log=/dev/null
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  log="$OUT/gpu-check.log"
fi
exec > >(tee -a "$log") 2>&1

say() { printf '\n== %s\n' "$*"; }
[ -x "$binary" ] || { echo "no $binary: run bench/gpu-check-build.sh on the build machine" >&2; exit 1; }

say "machine"
uname -srm
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv 2>&1 || echo "(no nvidia-smi)"
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' \
  || { echo "$python has no torch" >&2; exit 1; }

# Burn's CUDA backend opens libcuda (the driver's) and NVRTC by name; NVRTC comes with torch's
# CUDA wheels (nvidia-cuda-nvrtc), so their folders go on the library path.
nvrtc_folders=$("$python" - <<'PY'
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
found = set()
for root in roots:
    for pattern in ("nvidia/**/libnvrtc.so*", "torch/lib/libnvrtc*.so*"):
        for path in glob.glob(os.path.join(root, pattern), recursive=True):
            found.add(os.path.dirname(os.path.realpath(path)))
print(":".join(sorted(found)))
PY
)
echo "NVRTC folders: ${nvrtc_folders:-(none found)}"
export LD_LIBRARY_PATH="${nvrtc_folders}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

say "devices"
timeout 60 "$binary" trainer devices
if [ "$device" = cuda ] && ! "$binary" trainer devices | grep -q '"name":"cuda","available":true'; then
  echo "Burn's CUDA backend is not usable here (see its line above)" >&2
  status=1
fi

say "training throughput: ${backends} against PyTorch on ${torch_device} (3×32×32, batch 64, Adam)"
timeout 300 "$binary" trainer bench --input cifar10 --backends "$backends" --models cnn,mlp \
  --steps 40 --warmup 10 --repeats 3 --threads "$(nproc)" \
  --python "$python" --torch-script "$here/torch_reference.py" --torch-device "$torch_device" \
  || status=1

say "a short research session on ${device}"
state=$(mktemp -d)
(cd "$state" && timeout 240 "$binary" run --offline --max-minutes 3 --seed 4 --device "$device" \
  --goal "a CNN for shapes with at least 80% accuracy within 3 candidates")
rc=$?
# 0: goal reached, 2: budget spent without it; both are a session that ran.
if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then
  echo "the research session failed (exit $rc)" >&2
  status=1
fi
rm -rf "$state"
exit "${status:-0}"
