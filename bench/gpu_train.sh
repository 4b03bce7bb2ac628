#!/usr/bin/env bash
# Train candidate default models on one GPU machine in a fixed time budget, then run the CUDA checks.
#
#   1. simulate fresh recordings (seeds 1000 + 100 * job + k, never used elsewhere) on every core for SIM_S
#      seconds and build their windows; meanwhile run tests/test_cuda.py;
#   2. time the data loaders for a few seconds and size the epochs so that the cosine schedule ends inside
#      TRAIN_S (the loaders, not the GPU, set the pace: PNG decoding and augmentation on the CPU);
#   3. train the networks named in RUNS side by side for at most TRAIN_S seconds (Ctrl-C at the limit saves
#      INTERRUPTED.pt): A fine-tunes the shipped 16-filter model, B trains 32 filters from scratch, W widens the
#      shipped model to 32 filters (run.py --widen: it starts computing what the shipped model does) and trains it;
#   4. bench/speed.py (CPU and CUDA rows) on the shipped model and on B.
#
# Everything small lands in OUT (checkpoints, histories, one log). Run from the repository root:
#   OUT=gpu_out SIM_S=130 TRAIN_S=330 bash bench/gpu_train.sh
#   RUNS=A OUT=gpu_out bash bench/gpu_train.sh       # one run with all the loaders
#   RUNS="A W" OUT=gpu_out bash bench/gpu_train.sh   # the shipped width against 32 filters, from the same start
#   EXTRA="--gain-field 0.5 --wall-gain 2" RUNS=A OUT=gpu_out bash bench/gpu_train.sh   # more run.py flags, every run
set -uo pipefail
OUT=${OUT:-bench/out/gpu}
WORK=${WORK:-/tmp/gpu_train}
SIM_S=${SIM_S:-130}
TRAIN_S=${TRAIN_S:-330}
JOBS=${JOBS:-$(nproc)}
RUNS=${RUNS:-A B}
read -r -a EXTRA_FLAGS <<< "${EXTRA:-}"  # run.py flags added to every run (augmentation steps, say)
N_RUNS=$(echo $RUNS | wc -w)
LOADERS=${LOADERS:-$(( (JOBS - 2) / N_RUNS > 0 ? (JOBS - 2) / N_RUNS : 0 ))}
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
mkdir -p "$OUT" "$WORK/sims" "$WORK/data" "$WORK/all/img" "$WORK/all/mask"
LOG="$OUT/log.txt"
stamp() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
START=$(date +%s)

nvidia-smi -L 2>&1 | tee -a "$LOG"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"

simulate_until_deadline() {
  local job=$1 chunk=0 seed
  while [ $(( $(date +%s) - START )) -lt "$SIM_S" ]; do
    seed=$(( 1000 + 100 * job + chunk ))
    python3 -m preprocess simulate --out "$WORK/sims/$seed" --n 8 --seed "$seed" --duration 2.5 --artefacts 0.3 \
      --quiet && python3 -m preprocess build --images "$WORK/sims/$seed" \
      --annotations "$WORK/sims/$seed/annotations.csv" --out "$WORK/data/$seed" --quiet
    chunk=$(( chunk + 1 ))
  done
}
stamp "simulating on $JOBS cores for ${SIM_S}s"
for job in $(seq 0 $(( JOBS - 1 ))); do simulate_until_deadline "$job" & done
python3 -m pytest -q tests/test_cuda.py >>"$LOG" 2>&1
wait
for dir in "$WORK"/data/*/; do
  find "$dir/img" -name '*.png' -exec mv -t "$WORK/all/img" {} +
  find "$dir/mask" -name '*.png' -exec mv -t "$WORK/all/mask" {} +
done
WINDOWS=$(ls "$WORK/all/img" | wc -l)
# the default model's input: ROWS x COLUMNS windows, trained on CROP-column stretches
ROWS=256 COLUMNS=192 CROP=96
# training images per second through one run's loaders (augmented stretches, as run.py loads them)
IMAGES_PER_S=$(python3 - "$WORK/all" "$LOADERS" "$ROWS" "$COLUMNS" "$CROP" <<'EOF'
import sys, time
import torch
from mmode.dataset import SegmentationDataset
rows, columns, crop = map(int, sys.argv[3:6])
data = SegmentationDataset(sys.argv[1], rows, augment=True, soft_masks=True, img_width=columns, crop_width=crop)
loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True, num_workers=int(sys.argv[2]))
count, start, first, seen = 0, None, time.time(), 0
for batch, (image, _) in enumerate(loader):
    seen += len(image)
    if batch == 4:
        start = time.time()
    elif start is not None:
        count += len(image)
        if time.time() - start > 8:
            break
if count == 0:  # too few batches to leave the loaders' start-up out: time the whole pass
    count, start = seen, first
print(int(count / (time.time() - start)))
EOF
)
# 0.55 for validation passes and the loaders' start-up each epoch: on an H200 (session 8) the probe read
# 1,111 images/s and whole epochs ran at about 660 (0.59), so 0.8 planned 41 epochs where 30 fit;
# at least 4 epochs, at most 60
EPOCHS=$(( (TRAIN_S - 30) * ${IMAGES_PER_S:-300} * 55 / 100 / (WINDOWS + 1) ))
EPOCHS=$(( EPOCHS < 4 ? 4 : (EPOCHS > 60 ? 60 : EPOCHS) ))
stamp "$(ls "$WORK"/sims | wc -l) chunks, $WINDOWS windows; ${IMAGES_PER_S} images/s per run; $EPOCHS epochs"

COMMON=(-d "$WORK/all" -b 32 -p "$ROWS" --img-width "$COLUMNS" --train-crop "$CROP" --lr-schedule cosine
        --augment --soft-masks -v 10 --seed 0 --dropout 0.1 --kernel 5 --workers "$LOADERS" --quiet --overwrite
        "${EXTRA_FLAGS[@]}")
PIDS=()
if [[ " $RUNS " == *" A "* ]]; then
  timeout -s INT "$TRAIN_S" python3 run.py "${COMMON[@]}" -e "$EPOCHS" -l 0.0005 --num-filters 16 \
    -f checkpoints/heart-seg-net.pt -o "$WORK/A" >"$WORK/A.log" 2>&1 &
  PIDS+=($!)
fi
if [[ " $RUNS " == *" B "* ]]; then
  timeout -s INT "$TRAIN_S" python3 run.py "${COMMON[@]}" -e "$EPOCHS" -l 0.001 --num-filters 32 \
    -o "$WORK/B" >"$WORK/B.log" 2>&1 &
  PIDS+=($!)
fi
if [[ " $RUNS " == *" W "* ]]; then
  timeout -s INT "$TRAIN_S" python3 run.py "${COMMON[@]}" -e "$EPOCHS" -l 0.0005 --num-filters 32 \
    -f checkpoints/heart-seg-net.pt --widen -o "$WORK/W" >"$WORK/W.log" 2>&1 &
  PIDS+=($!)
fi
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 60 >>"$LOG" 2>&1 &
MONITOR=$!
wait "${PIDS[@]}"
kill "$MONITOR" 2>/dev/null
for run in $RUNS; do
  stamp "run $run:"; tail -n 5 "$WORK/$run.log" >>"$LOG"; cp "$WORK/$run/history.csv" "$OUT/$run.csv" 2>>"$LOG"
  best=$(ls -t "$WORK/$run"/CP_best_e*.pt 2>/dev/null | head -n 1)
  last=$(ls -t "$WORK/$run"/CP_last_e*.pt "$WORK/$run"/INTERRUPTED.pt 2>/dev/null | head -n 1)
  [ -n "$best" ] && cp "$best" "$OUT/${run}_best.pt" && echo "$run best: $best" >>"$LOG"
  [ -n "$last" ] && cp "$last" "$OUT/${run}_last.pt" && echo "$run last: $last" >>"$LOG"
done

stamp "speed"
timeout 60 python3 bench/speed.py --duration 10 --repeats 2 >>"$LOG" 2>&1
for run in B W; do
  [ -f "$OUT/${run}_last.pt" ] && timeout 45 python3 bench/speed.py -m "$OUT/${run}_last.pt" --duration 10 --repeats 2 \
    >>"$LOG" 2>&1
done
stamp "done"
