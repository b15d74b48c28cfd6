#!/usr/bin/env bash
# The GPU checks, prepared so that a lent GPU machine's few minutes go to measuring (docs/cluster.md,
# "Cost of a paper-scale run"): the training step of each paper architecture at the paper's width on CUDA
# (mixed precision, pinned memory, DataLoader workers, peak memory), and what one paper.yaml epoch costs.
#
#   bash bench/gpu_check.sh fetch   # here, once: the wheels the GPU machine's image lacks, into .whl/
#   bash bench/gpu_check.sh         # there, with .whl carried: one report per system under $OUT
#
# The GPU image has Python 3.12 with torch, numpy, pandas, pyarrow, scipy, numba and scikit-learn, but not
# librosa and the audio readers trackrank imports; they travel as wheels (no network there). DEVICE, WIDTH,
# STEPS, THREADS, WORKERS and PYTHON override the defaults (DEVICE=cpu WIDTH=0.0625 STEPS=3
# PYTHON=.venv/bin/python runs it here).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=(librosa==0.11.0 soundfile==0.14.0 soxr==1.1.0 audioread==3.1.0 pooch==1.9.0 decorator platformdirs cffi pycparser)

if [ "${1:-}" = fetch ]; then
    grep -qsx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${WHEELS[@]}"
    ls .whl
    exit 0
fi

OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if [ -d .whl ]; then
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:src
else
    export PYTHONPATH=src
fi
export PYTHONUNBUFFERED=1
(nvidia-smi || true) > "$OUT/device.txt" 2>&1
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" >> "$OUT/device.txt"
for system in tl_distance tl_autopool_distance at_baseline; do
    "$PYTHON" bench/train_throughput.py --system "$system" --width "${WIDTH:-1}" --device "${DEVICE:-cuda}" \
        --steps "${STEPS:-100}" --threads "${THREADS:-8}" --workers "${WORKERS:-4}" 2>&1 | tee "$OUT/throughput_$system.txt"
done
