#!/usr/bin/env bash
# CPU figures of `rir bench` for small configs: writes benchmarks/results/cpu-DATE/*.json and the table
# benchmarks/cpu-DATE.md (notes on targets are added by hand below the table). Takes ~5-10 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
date=$(date -u +%Y-%m-%d)
dir=benchmarks/results/cpu-$date
mkdir -p "$dir"
bench() {  # NAME ARGS...: one record
    local name=$1; shift
    rir bench --device cpu --json "$@" > "$dir/$name.json"
}
bench rir_18-w8-b64-fp32 --model rir_18 --override width=8 --batch-size 64 --steps 10 --warmup 2
bench rir_18-w8-b64-bf16-cl --model rir_18 --override width=8 --batch-size 64 --steps 10 --warmup 2 \
    --precision bf16 --channels-last
bench resnet_18-w8-b64-fp32 --model resnet_18 --override width=8 --batch-size 64 --steps 10 --warmup 2
bench rir_18-b16-fp32 --model rir_18 --batch-size 16 --steps 4 --warmup 1
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
python benchmarks/table.py "rir bench on CPU: $cpu, $(nproc) cores" "$dir"/*.json > "benchmarks/cpu-$date.md"
echo "wrote benchmarks/cpu-$date.md"
