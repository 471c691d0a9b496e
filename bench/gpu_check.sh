#!/usr/bin/env bash
# The CUDA checks, for a machine with an NVIDIA GPU (CI has none): the renderer on CUDA against
# the CPU oracle, the nlf estimator's CUDA path against its CPU path (tiny stand-in models), and
# the speed of both. Without onnxruntime's GPU build, `--device auto` runs YOLOX and DWPose on
# the CPU and NLF on CUDA. Usage: bench/gpu_check.sh [LOG_DIR]   (python3 must have the
# backend's packages; PYTHONPATH=protocol:backend works from a checkout).
set -u
LOG=${1:-.}
mkdir -p "$LOG"
export TI_SKIP_VERSION_CHECK=ON PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, taichi; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 -m pytest -q -p no:cacheprovider -rs tests/backend/test_render_cuda.py \
    tests/backend/test_estimator_nlf.py 2>&1 | tee "$LOG/pytest_cuda.log"
python3 bench/render_speed.py --arch cuda --frames 4 --pipeline-frames 256 --repeats 3 \
    2>&1 | tee "$LOG/render_cuda.log"
python3 bench/render_speed.py --arch cuda --people 3 --frames 2 --pipeline-frames 256 \
    --repeats 3 2>&1 | tee -a "$LOG/render_cuda.log"
python3 bench/nlf_pipeline.py --device auto --frames 512 --repeats 3 2>&1 | tee "$LOG/nlf_cuda.log"
python3 bench/nlf_pipeline.py --device auto --people all --frames 512 --repeats 3 \
    2>&1 | tee -a "$LOG/nlf_cuda.log"
if python3 -c "import ray" 2>/dev/null; then
    python3 bench/gpu_batch_check.py 2>&1 | tee "$LOG/batch_cuda.log"
fi
