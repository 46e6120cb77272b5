#!/bin/bash
# The detection study (issue "both sides of the table", item 1): how often each detector of
# `uebench detect` flags each protected set, and the clean twins (false positives), over subset
# sizes and seeds, and the sample-level AUROC on half-poisoned sets (docs/detect.md, "Error
# rates"). All nine generators on the same 2,000 training images (seed 0) of each dataset:
# EM, OPS, LSP, TAP and the random-noise controls are the validation study's own poisons
# (experiments/study/*.yaml, content-addressed in the store); AR, REM, HYPO and DC are made here
# with benchmarks/attacks.py's CPU settings (LeNet-5 surrogates, scaled down: benchmarks/README.md
# §3). Needs the study grids' store (uebench bench experiments/study/fmnist.yaml --store
# runs/study-store ...). Usage: bash experiments/detect_study.sh [fashion-mnist|cifar10]
set -euo pipefail
dataset=${1:-fashion-mnist}
store=runs/study-store/poisons
out=runs/detect/$dataset
bin=${UEBENCH:-.venv/bin/uebench}
gen() {  # name attack preset params...: generate (or reuse) one poison for the study's images
  local name=$1 attack=$2 preset=$3; shift 3
  $bin poison generate --dataset "$dataset" --train-size 2000 --seed 0 --quiet \
      --attack "$attack" --preset "$preset" --out "$out/$name" "$@"
}
gen ar ar original
gen rem rem original surrogate=lenet5 train_steps=30 steps=5 samp_num=2 adv_steps=5
gen hypo hypo apbench surrogate=lenet5 surrogate_epochs=10 steps=20
gen dc dc cpu
if [ "$dataset" = fashion-mnist ]; then
  study="em=$store/e6973a67f561e985 ops=$store/ecc5736d60f44d86 lsp=$store/e1b67880b219dcd2
         tap=$store/f3b1fc57cc45b771 random=$store/940b82c130b2fa6f
         random-b=$store/ed323b6b65b809fc random-l2=$store/0660573a418c5a68
         random-l0=$store/5efdabdf8d4c57be"
else
  study="em=$store/d2679df2c8aaea33 ops=$store/2d74ece335474700 lsp=$store/d40c1d2e5d9fb73c
         tap=$store/1fb627a386e26036 random=$store/cf67fd4f261432db
         random-b=$store/1b0299752738bf2f random-l2=$store/b80ecbeff9185aae
         random-l0=$store/1fd199bc8ee9c068"
fi
# shellcheck disable=SC2086  # the list is word-split on purpose
$bin detect-study $study ar=$out/ar rem=$out/rem hypo=$out/hypo dc=$out/dc \
    --sizes 500,1000,2000 --seeds 0,1,2 --ratio 0.5 --save "detect/$dataset"
