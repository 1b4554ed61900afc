#!/usr/bin/env bash
# The bundled models the lectures' tables still need, each one resumable command (scripts/train_demo.py
# writes a checkpoint after every epoch to its --work-dir and a re-run continues from it).
#
#   bash scripts/pending_trainings.sh                  # all of them, one at a time, on the CPU
#   DEVICE=cuda bash scripts/pending_trainings.sh      # on a lent GPU
#   ONLY=demo-adv-b bash scripts/pending_trainings.sh  # one of them
#
# Each writes build/<name>.safetensors; copy it to physical/data/ (the file name in
# physical/models/loaders.py's DEMO_MODELS) once its accuracy is in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE="${DEVICE:-cpu}"
DATA="${DATA:-../shared/data/cifar10}"
THREADS="${THREADS:-0}"

run() {
    local name="$1"; shift
    if [[ -n "${ONLY:-}" && "$ONLY" != "$name" ]]; then return; fi
    echo "== $name: python scripts/train_demo.py $*"
    python scripts/train_demo.py --data "$DATA" --device "$DEVICE" --threads "$THREADS" \
        --work-dir "build/train-$name" --out "build/$name.safetensors" "$@"
}

# Madry et al.'s source B: a naturally trained model of another architecture.
run demo-vgg --arch SmallVGG --epochs 30
# Madry et al.'s source A': demo-adv's recipe with another seed.
run demo-adv-b --adv-eps 8 --epochs 30 --seed 1
# Szegedy et al.'s hyper-parameter variants of demo, and the two disjoint halves of the training set.
run demo-wd --wd 5e-3 --epochs 30 --seed 2
run demo-w8 --width 8 --epochs 30 --seed 3
run demo-half-a --half 0 --epochs 30 --seed 4
run demo-half-b --half 1 --epochs 30 --seed 5
# Buckman et al.'s thermometer encoding (issue 31), natural; its LS-PGA-trained twin needs LS-PGA in training.
run demo-thermometer --thermometer 16 --epochs 30 --seed 6
