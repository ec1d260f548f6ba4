#!/usr/bin/env bash
# The CUDA and torchrun paths, stage by stage, on a CUDA machine:
#   install   the test requirements, with PyPI's CUDA build of torch where a CPU build is installed
#   data      a small set rendered from a General-MIDI SoundFont in NSynth's json/wav layout
#   train     train.train --config paper, bf16 autocast, batch 32, crops of 6 144: samples/s, peak memory
#   torchrun  the same under torchrun --nproc_per_node=1 (DistributedDataParallel over NCCL)
#   decode    the paper preset with the reference generator: samples/s
#   convert   the Magenta converter on the tests' TensorFlow checkpoint, run and checked on the GPU
#   tests     the whole test suite, whose CUDA tests run where CUDA is
# Each stage has its own time limit (and all share a budget, 8 minutes unless GPU_CHECK_BUDGET_S says
# otherwise) and logs to $OUT/<stage>.log; $OUT/summary.txt gets every stage's status and figures. A failed
# stage does not stop the next ones; the exit status is 1 if any failed.
#
#   OUT=runs/gpu-check bash scripts/gpu_check.sh            # on a CUDA machine
#   OUT=runs/gpu-check bash scripts/gpu_check.sh --dry-run  # on the CPU: no installs, every stage at tiny size
# (GPU_CHECK_DRY_RUN=1 is the same as --dry-run.)
set -uo pipefail
cd "$(dirname "$0")/.."

export DRY_RUN=${GPU_CHECK_DRY_RUN:-0}
[ "${1:-}" = --dry-run ] && DRY_RUN=1
OUT=${OUT:-runs/gpu-check}
BUDGET_S=${GPU_CHECK_BUDGET_S:-480}
export PYTHON=${PYTHON:-$(command -v python || command -v python3)}
SOUNDFONT=/usr/share/sounds/sf2/TimGM6mb.sf2  # Debian's timgm6mb-soundfont, which install_test_deps.sh installs
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
# Training runs and checkpoints stay out of $OUT: a paper-sized training state is over 1 GB.
WORK=$(mktemp -d)
export WORK
trap 'rm -rf "$WORK"' EXIT

if [ "$DRY_RUN" = 1 ]; then
  export CUDA_VISIBLE_DEVICES=""  # the CPU path, the same on every machine
  export OMP_NUM_THREADS=1  # the dry run only shows that every stage works; it shares the CPU with other work
  TRAIN=(--config paper --precision bf16 --batch-size 2 --threads 1 --set encoder_layers=2 --set decoder_layers=3
         --set encoder_channels=16 --set residual_channels=16 --set skip_channels=16)
  SINGLE_STEPS=(--max-steps 12)
  DDP_STEPS=(--max-steps 6)
  DECODE=(--batch 2 --samples 16)
else
  TRAIN=(--config paper --precision bf16 --batch-size 32)
  SINGLE_STEPS=(--max-steps 300 --minutes 1)
  DDP_STEPS=(--max-steps 300 --minutes 0.5)
  DECODE=(--batch 1 32 256 --samples 1000)
fi

failures=0

# run_stage NAME LIMIT_S COMMAND...: COMMAND within LIMIT_S or the budget left, whichever is less, logged to
# $OUT/NAME.log; its status and the log's "figure: " lines go to the summary.
run_stage() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET_S - SECONDS))
  ((limit > left)) && limit=$left
  if ((limit < 1)); then
    echo "$name: FAILED, not started: the ${BUDGET_S} s budget is spent" >>"$SUMMARY"
    failures=$((failures + 1))
    return
  fi
  local started=$SECONDS
  timeout -k 15 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local status=$?
  local took=$((SECONDS - started))
  if ((status == 0)); then
    echo "$name: passed in $took s" >>"$SUMMARY"
  elif ((status == 124 || status == 137)); then
    echo "$name: FAILED, timed out after $limit s" >>"$SUMMARY"
  else
    echo "$name: FAILED with exit status $status after $took s" >>"$SUMMARY"
  fi
  ((status == 0)) || failures=$((failures + 1))
  sed -n 's/^figure: /    /p' "$OUT/$name.log" >>"$SUMMARY"
}

install_stage() {
  local deps_status=0
  if [ "$DRY_RUN" = 1 ]; then
    echo "Dry run: nothing is installed."
  else
    # A lent machine's Python may be Debian's own, which pip otherwise refuses to change.
    export PIP_BREAK_SYSTEM_PACKAGES=1
    bash scripts/install_test_deps.sh || deps_status=$?
  fi
  local torch_pin torch_build
  torch_pin=$(grep -m 1 '^torch==' requirements.txt)
  torch_build=$("$PYTHON" -c 'import torch; print("cuda" if torch.version.cuda else "cpu")' 2>/dev/null)
  if [ "$torch_build" != cuda ]; then
    # PyPI's Linux x86_64 wheel of torch is the CUDA build; a CPU build of the same version satisfies the pin,
    # so pip keeps it unless it is removed first.
    if [ "$DRY_RUN" = 1 ]; then
      echo "Dry run: would replace this ${torch_build:-missing} build of torch by PyPI's $torch_pin."
    else
      "$PYTHON" -m pip uninstall -y -q torch
      "$PYTHON" -m pip install -q "$torch_pin" || return 1
    fi
  fi
  "$PYTHON" scripts/gpu_check.py torch-info || return 1
  if [ "$DRY_RUN" != 1 ] && ! "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "torch sees no CUDA device."
    return 1
  fi
  return "$deps_status"
}

tests_stage() {
  # A full run leaves out tests/test_gpu_check.py, the dry run of this script, whose stages it has just run in
  # full; the dry run runs only the CUDA tests (skipped on a CPU), since CI runs the whole suite.
  local selection=(--ignore tests/test_gpu_check.py)
  [ "$DRY_RUN" = 1 ] && selection=(-k cuda tests)
  "$PYTHON" -m pytest -q -rs "${selection[@]}" 2>&1 | tee "$WORK/pytest.log"
  local status=${PIPESTATUS[0]}
  echo "figure: pytest: $(tail -n 1 "$WORK/pytest.log" | sed 's/^=* *//; s/ *=*$//')"
  return "$status"
}
export -f install_stage tests_stage

if [ "$DRY_RUN" = 1 ]; then
  echo "# gpu_check.sh --dry-run (CPU, tiny sizes, no installs), $(date -u +%FT%TZ)" >"$SUMMARY"
else
  echo "# gpu_check.sh, $(date -u +%FT%TZ), budget $BUDGET_S s" >"$SUMMARY"
fi

run_stage install 210 bash -c install_stage
# The programs and split seed of tests/train/test_render.py put a keyboard in each split: nsynth-valid is not empty.
run_stage data 60 "$PYTHON" -m train.render_soundfonts "$WORK/data" "$SOUNDFONT" --programs 0 1 4 16 \
  --pitch-step 24 --velocities 100 --split-seed 3
run_stage train 110 "$PYTHON" scripts/gpu_check.py train --data "$WORK/data/nsynth-train" --out "$WORK/train" \
  "${TRAIN[@]}" "${SINGLE_STEPS[@]}"
run_stage torchrun 90 "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node=1 \
  scripts/gpu_check.py train --data "$WORK/data/nsynth-train" --out "$WORK/torchrun" "${TRAIN[@]}" "${DDP_STEPS[@]}"
for run in train torchrun; do
  cp "$WORK/$run/metrics.csv" "$OUT/$run-metrics.csv" 2>/dev/null
done
run_stage decode 60 "$PYTHON" scripts/gpu_check.py decode --preset paper "${DECODE[@]}"
run_stage convert 40 "$PYTHON" scripts/gpu_check.py convert "$WORK/magenta"
run_stage tests "$BUDGET_S" bash -c tests_stage

echo "# $failures stage(s) failed; $SECONDS s in all" >>"$SUMMARY"
cat "$SUMMARY"
((failures == 0))
