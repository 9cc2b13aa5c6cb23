#!/usr/bin/env bash
# GPU check of issue 7, one prepared script, under 8 minutes on an H100: `rir bench` at batch 500 for
# rir_18_wide and rir_18 in fp32, bf16 and bf16 + channels_last (+ compile), then 1, 2 and 4 concurrent
# rir_18 runs sharing the GPU (images/s per run and in total). Writes every JSON record, its log, nvidia-smi's
# view and the markdown table gpu-check.md (card name and date in its header) to $OUT when set (the lent
# device machines), else to benchmarks/results/gpu-DATE/. Copy the table to benchmarks/ with the card's name.
#
#   bash benchmarks/gpu_check.sh            # RIR_CHECK_SECONDS=450 by default: stops starting benches after
#
# A bench that fails or would overrun is recorded as skipped in the log; the others still count.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # works from a bare checkout, installed or not
out=${OUT:-benchmarks/results/gpu-$(date -u +%Y-%m-%dT%H%M)}
mkdir -p "$out"
budget=${RIR_CHECK_SECONDS:-450}
start=$SECONDS
log() { echo "[gpu_check $((SECONDS - start))s] $*" | tee -a "$out/gpu_check.log"; }
left() { echo $((budget - (SECONDS - start))); }

nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || log "nvidia-smi failed"
python - <<'PY' 2>&1 | tee -a "$out/gpu_check.log"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
PY

bench() {  # NAME NEEDED_SECONDS ARGS...: one record, skipped when less than NEEDED_SECONDS are left
    local name=$1 need=$2; shift 2
    if (( $(left) < need )); then log "skip $name: $(left)s left, needs ~${need}s"; return; fi
    log "bench $name"
    if ! timeout "$(left)" python -m rir bench --device cuda --batch-size 500 --json "$@" \
            > "$out/$name.json" 2> "$out/$name.log"; then
        log "FAILED $name (see $name.log)"; rm -f "$out/$name.json"
    fi
}

# Single runs: the paper's wide net first (issue 7's 35 % target is for it in bf16), then the base width.
for model in rir_18_wide rir_18; do
    bench "$model-bf16-cl" 30 --model "$model" --precision bf16 --channels-last --steps 30 --warmup 5
    bench "$model-fp32" 30 --model "$model" --steps 30 --warmup 5
    bench "$model-bf16" 30 --model "$model" --precision bf16 --steps 30 --warmup 5
    bench "$model-fp32-cl" 30 --model "$model" --channels-last --steps 30 --warmup 5
done

# Several runs on one GPU (the slot lease's runs_per_gpu): long timed regions so that the runs overlap.
for n in 1 2 4; do
    if (( $(left) < 40 + 10 * n )); then log "skip $n concurrent runs: $(left)s left"; continue; fi
    log "$n concurrent rir_18 bf16 + channels_last runs"
    pids=()
    for i in $(seq 1 "$n"); do
        timeout "$(left)" python -m rir bench --device cuda --batch-size 500 --json --model rir_18 \
            --precision bf16 --channels-last --no-bare --steps 1500 --warmup 20 \
            > "$out/concurrent$n-run$i.json" 2> "$out/concurrent$n-run$i.log" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || log "a concurrent run failed"; done
    for i in $(seq 1 "$n"); do  # tag each record with its group size for the table
        f="$out/concurrent$n-run$i.json"
        python -c "import json,sys; p=sys.argv[1]; r=json.load(open(p)); r['concurrent']=int(sys.argv[2]);
json.dump(r, open(p, 'w'), indent=2)" "$f" "$n" 2>/dev/null || { log "no record $f"; rm -f "$f"; }
    done
done

# torch.compile last: the first compilation of each net takes minutes (later runs hit the shared cache).
bench rir_18_wide-bf16-cl-compile 150 --model rir_18_wide --precision bf16 --channels-last --compile \
    --no-bare --steps 30 --warmup 5
bench rir_18-bf16-cl-compile 120 --model rir_18 --precision bf16 --channels-last --compile --no-bare \
    --steps 30 --warmup 5

card=$(python -c "import torch; print(torch.cuda.get_device_name())" 2>/dev/null || echo "unknown GPU")
shopt -s nullglob
records=("$out"/rir_18*.json "$out"/concurrent*.json)
if (( ${#records[@]} )); then
    python benchmarks/table.py "rir bench GPU check: $card" "${records[@]}" > "$out/gpu-check.md"
    cat "$out/gpu-check.md"
fi
log "done in $((SECONDS - start))s, results in $out"
