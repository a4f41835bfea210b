#!/usr/bin/env bash
# The checks that need a CUDA device, as one script for a lent GPU machine (see tests/test_cuda.py):
# install from carried wheels (.whl: constriction, av, and Kodak pictures), then the CUDA tests,
# then search speed on the device (bench speed --device cuda) with decoding on the CPU, and a
# transcode of the bundled clip. Writes logs and summaries under $OUT (default: ./cuda-out).
set -uo pipefail
OUT=${OUT:-cuda-out}; mkdir -p "$OUT"
REPO=$(pwd)
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target /tmp/site . \
  || exit 1
export PYTHONPATH=/tmp/site
lotto-media() { python3 -c "import sys; from lotto_media.pipelines.cli import main; sys.exit(main())" "$@"; }
nvidia-smi -L | tee "$OUT/machine.txt"
python3 -c 'import torch, lotto_media; print(torch.__version__, torch.cuda.get_device_name(0), lotto_media.__file__)' | tee -a "$OUT/machine.txt"
[ -n "${SKIP_TESTS:-}" ] || (cd tests && timeout 240 python3 -m pytest -q -p no:cacheprovider test_cuda.py 2>&1) | tee "$OUT/pytest.txt"
cd /tmp
lotto-media bench speed --device cuda --image "$REPO/.whl/kodim01.png" --downscale 2 \
  --presets fast,medium,slow --max-steps 5000 --out "$OUT/speed-384" -q 2>&1 | tail -3
cat "$OUT/speed-384/speed.md" | tail -5
lotto-media bench speed --device cuda --image "$REPO/.whl/kodim05.png" \
  --presets medium --max-steps 5000 --out "$OUT/speed-768" -q 2>&1 | tail -3
cat "$OUT/speed-768/speed.md" | tail -3
lotto-media transcode "$REPO/samples/cisco_96x64_5f.y4m" -o "$OUT/cisco.lotto" --preset fast \
  --device cuda --decoded "$OUT/cisco.mkv" --progress none 2>&1 | tee "$OUT/transcode.txt"
