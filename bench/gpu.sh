#!/usr/bin/env bash
# Every GPU figure of docs/benchmarks.md in one command, on a machine with a CUDA GPU and the project
# installed (pip install -e ".[test]"):
#
#   bash bench/gpu.sh [out_dir]        # default: outputs/gpu_bench; about 10 minutes on an H200
#
# The default run's wall time and accuracy; the Lightning/plain step-time ratio of each model, eager and
# compiled; ops and host reads per step; the CUDA tests; cnn_best's epoch time. Each figure also goes
# to <out_dir>/<name>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-outputs/gpu_bench}
mkdir -p "$out"

step() {  # step <name> <command...>: run it, keep its output, show its last lines and its wall time
    local name=$1 start
    shift
    echo "== $name: $*"
    start=$(date +%s%N)
    "$@" > "$out/$name.txt" 2>&1 || echo "(exit $?: see $out/$name.txt)"
    grep -v '^\s*$' "$out/$name.txt" | tail -n 8
    echo "($name: $(( ($(date +%s%N) - start) / 1000000 )) ms wall)"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
step default python train.py trainer=gpu callbacks.progress_bar.refresh_rate=0 "hydra.run.dir=$out/default"
step throughput python bench/throughput.py --device cuda --repeats 3
step throughput_compiled python bench/throughput.py --device cuda --repeats 3 --compile
step ops python bench/ops.py trainer=gpu
step host_reads python bench/host_reads.py trainer=gpu experiment=cnn_best
step cuda_tests python -m pytest -q tests/test_host_syncs.py
step cnn_best python train.py experiment=cnn_best trainer=gpu trainer.max_epochs=3 callbacks.progress_bar.refresh_rate=0 \
    "hydra.run.dir=$out/cnn_best"
python - "$out/cnn_best/result.json" <<'EOF'
import json, sys
result = json.load(open(sys.argv[1]))
epochs = result["epochs"]
print(f"cnn_best: {result['wall_s'] / epochs:.1f} s an epoch, start-up and test included ({epochs} epochs)")
EOF
