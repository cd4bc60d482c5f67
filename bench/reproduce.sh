#!/usr/bin/env bash
# Reproduce the report's numbers and ours, as recorded in BENCHMARKS.md. Long: run it in the
# background on a quiet machine. Each step writes into $RUNS (default runs/bench).
#   bash bench/reproduce.sh [step ...]    steps: ae clf ft gan ae_sweep ae_sweep_wide clf_sweep gan_sweep
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-runs/bench}
GAN_EPOCHS=${GAN_EPOCHS:-10}
mkdir -p "$RUNS"
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(ae clf ft gan ae_sweep ae_sweep_wide clf_sweep gan_sweep)
for step in "${steps[@]}"; do
  echo "=== $step $(date -u +%FT%TZ)"
  case $step in
    ae)  $PY -m trainables.autoencoder --preset report --out "$RUNS/ae_report" ;;
    clf) $PY -m trainables.classifier --preset report --encoder-checkpoint "$RUNS/ae_report" --out "$RUNS/clf_report" ;;
    ft)  $PY -m trainables.classifier --preset finetune --encoder-checkpoint "$RUNS/ae_report" --out "$RUNS/clf_finetune" ;;
    gan) $PY -m trainables.gan --preset report --epochs "$GAN_EPOCHS" --out "$RUNS/gan_report"
         $PY -m trainables.gan --epochs "$GAN_EPOCHS" --out "$RUNS/gan_default" ;;
    ae_sweep)      $PY sweeps/ae_sweep.py --num-samples 40 --max-epochs 20 --max-concurrent 2 --storage-path "$RUNS" --name ae_sweep ;;
    ae_sweep_wide) $PY sweeps/ae_sweep.py --space wide --num-samples 40 --max-epochs 20 --max-concurrent 2 --storage-path "$RUNS" --name ae_sweep_wide ;;
    clf_sweep)     $PY sweeps/classifier_sweep.py --encoder-checkpoint "$RUNS/ae_report" --num-samples 30 --max-epochs 30 --max-concurrent 2 --storage-path "$RUNS" --name classifier_sweep ;;
    gan_sweep)     $PY sweeps/gan_sweep.py --num-samples 12 --max-epochs "$GAN_EPOCHS" --grace-period 2 --max-concurrent 2 --storage-path "$RUNS" --name gan_sweep ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
