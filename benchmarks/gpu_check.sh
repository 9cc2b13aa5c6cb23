#!/usr/bin/env bash
# GPU check of the speed targets, one prepared script: `rir bench` at batch 500 for rir_18_wide and rir_18 in bf16 +
# channels_last, bf16 and tf32 (the recipe's math mode); then 1, 2 and 4 concurrent rir_18 runs sharing the GPU (images/s per run and
# in total: how many runs a card should take, `runs_per_gpu`); then torch.compile of the wide net; then exact fp32
# (TF32 off) + channels_last of both nets if time is left, the other side of the tf32 decision (rir/recipe.py). The most important measurements come first.
#
#   bash benchmarks/gpu_check.sh        # RIR_CHECK_SECONDS=300: no bench starts that would end after it
#   PYTHON=/path/to/python3 bash benchmarks/gpu_check.sh
#
# Every JSON record and log goes to a work folder; the markdown table gpu-check.md (card name and date in its
# header) and the log are written beside them. With $OUT set (the lent device machines, which send back at
# most 8 files from $OUT), $OUT receives only gpu-check.md, gpu_check.log, nvidia-smi.txt and
# gpu_check_records.tar.gz (all records and logs), refreshed after every bench so that a kill still leaves
# what was measured. Without $OUT the work folder is benchmarks/results/gpu-DATE/. Copy the table to
# benchmarks/ as gpu-CARD-DATE.md. A bench that fails or would overrun is logged as skipped; the rest count.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # works from a bare checkout, installed or not
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}  # the device image's PyTorch is its plain python3
if [[ -n "${OUT:-}" ]]; then work=$(mktemp -d); else work=benchmarks/results/gpu-$(date -u +%Y-%m-%dT%H%M); fi
mkdir -p "$work"
budget=${RIR_CHECK_SECONDS:-300}
start=$SECONDS
log() { echo "[gpu_check $((SECONDS - start))s] $*" | tee -a "$work/gpu_check.log"; }
left() { echo $((budget - (SECONDS - start))); }

table() {  # gpu-check.md from every record so far
    local card records
    card=$("$PY" -c "import torch; print(torch.cuda.get_device_name())" 2>/dev/null || echo "unknown GPU")
    shopt -s nullglob
    records=("$work"/rir_18*.json "$work"/concurrent*.json)
    shopt -u nullglob
    if (( ${#records[@]} )); then
        "$PY" benchmarks/table.py "rir bench GPU check: $card" "${records[@]}" > "$work/gpu-check.md"
    fi
}

pack() {  # what comes back from a device machine: at most 8 files, so 4
    [[ -n "${OUT:-}" ]] || return 0
    table
    tar czf "$OUT/gpu_check_records.tar.gz.tmp" -C "$work" . 2>/dev/null \
        && mv "$OUT/gpu_check_records.tar.gz.tmp" "$OUT/gpu_check_records.tar.gz"
    for f in gpu-check.md gpu_check.log nvidia-smi.txt; do [[ -f "$work/$f" ]] && cp "$work/$f" "$OUT/"; done
    return 0
}

nvidia-smi > "$work/nvidia-smi.txt" 2>&1 || log "nvidia-smi failed"
if ! "$PY" - 2>&1 <<'PY' | tee -a "$work/gpu_check.log"; then
import sys
import torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
sys.exit(0 if torch.cuda.is_available() else 1)
PY
    log "no CUDA device visible to $PY: nothing to measure"; pack; exit 1
fi

bench() {  # NAME NEEDED_SECONDS ARGS...: one record, skipped when less than NEEDED_SECONDS are left
    local name=$1 need=$2; shift 2
    if (( $(left) < need )); then log "skip $name: $(left)s left, needs ~${need}s"; return; fi
    log "bench $name"
    if ! timeout "$(left)" "$PY" -m rir bench --device cuda --batch-size 500 --json "$@" \
            > "$work/$name.json" 2> "$work/$name.log"; then
        log "FAILED $name (see $name.log)"; rm -f "$work/$name.json"
    fi
    pack
}

# Single runs: the paper's wide net first (benchmarks/README.md's 35 % target is for it in bf16), then the
# base width.
for model in rir_18_wide rir_18; do
    bench "$model-bf16-cl" 25 --model "$model" --precision bf16 --channels-last --steps 30 --warmup 5
    bench "$model-bf16" 25 --model "$model" --precision bf16 --steps 30 --warmup 5
    bench "$model-tf32" 25 --model "$model" --precision tf32 --steps 30 --warmup 5
done

# Several runs on one GPU (the slot lease's runs_per_gpu): timed regions long enough to overlap.
for n in 1 2 4; do
    if (( $(left) < 30 + 10 * n )); then log "skip $n concurrent runs: $(left)s left"; continue; fi
    log "$n concurrent rir_18 bf16 + channels_last runs"
    pids=()
    for i in $(seq 1 "$n"); do
        timeout "$(left)" "$PY" -m rir bench --device cuda --batch-size 500 --json --model rir_18 \
            --precision bf16 --channels-last --no-bare --steps 600 --warmup 20 \
            > "$work/concurrent$n-run$i.json" 2> "$work/concurrent$n-run$i.log" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || log "a concurrent run failed"; done
    for i in $(seq 1 "$n"); do  # tag each record with its group size for the table
        f="$work/concurrent$n-run$i.json"
        "$PY" -c "import json,sys; p=sys.argv[1]; r=json.load(open(p)); r['concurrent']=int(sys.argv[2]);
json.dump(r, open(p, 'w'), indent=2)" "$f" "$n" 2>/dev/null || { log "no record $f"; rm -f "$f"; }
    done
    pack
done

# torch.compile: the first compilation takes a minute or more (later runs hit the shared cache).
bench rir_18_wide-bf16-cl-compile 120 --model rir_18_wide --precision bf16 --channels-last --compile \
    --no-bare --steps 30 --warmup 5
for model in rir_18_wide rir_18; do
    bench "$model-fp32-cl" 25 --model "$model" --precision fp32 --channels-last --steps 30 --warmup 5
done

table
[[ -f "$work/gpu-check.md" ]] && cat "$work/gpu-check.md"
log "done in $((SECONDS - start))s, results in ${OUT:-$work}"
pack
