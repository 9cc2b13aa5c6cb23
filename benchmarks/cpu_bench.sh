#!/usr/bin/env bash
# CPU figures of `rir bench` for small configs: writes benchmarks/results/cpu-DATE/*.json and the table
# benchmarks/cpu-DATE.md (notes on targets are added by hand below the table). Takes ~5-10 min on 2 cores.
# One thread: on a CPU shared with other jobs, a 2-thread OpenMP region stalls whenever either core is taken,
# which made 2-thread step times swing by 2-10x here; one thread gives comparable steps.
set -euo pipefail
cd "$(dirname "$0")/.."
date=$(date -u +%Y-%m-%d)
dir=benchmarks/results/cpu-$date
mkdir -p "$dir"
bench() {  # NAME ARGS...: one record
    local name=$1; shift
    rir bench --device cpu --threads 1 --json "$@" > "$dir/$name.json"
}
bench rir_18-w8-b32-fp32 --model rir_18 --override width=8 --batch-size 32 --steps 60 --warmup 3
bench resnet_18-w8-b32-fp32 --model resnet_18 --override width=8 --batch-size 32 --steps 60 --warmup 3
bench rir_18-w8-b32-bf16-cl --model rir_18 --override width=8 --batch-size 32 --steps 30 --warmup 3 \
    --precision bf16 --channels-last
bench rir_18-b16-fp32 --model rir_18 --batch-size 16 --steps 12 --warmup 2
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
python benchmarks/table.py "rir bench on CPU: $cpu, $(nproc) cores" "$dir"/*.json > "benchmarks/cpu-$date.md"
echo "wrote benchmarks/cpu-$date.md"
