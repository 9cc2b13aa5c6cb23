"""Every GPU of a box busy without flags: the real Snakemake on a simulated 8-GPU box (issue 12, section 4).

A slice of the smoke profile (its 9 smallest training runs, cut to one epoch of 128 images so each run is
mostly its start-up) runs through `snakemake --cores 16` on a simulated box of 8 GPUs (tests/gpubox.py: an
nvidia-smi that lists 8) and no other flag. The smoke recipe's `threads: 1` is kept: 16 cores would then
admit 16 jobs, so only the default `gpu` resource keeps the 9th from starting, and then waiting for a slot,
while 8 hold one. The simulation's observers record every lease (slot, pid, monotonic time) in a log, and
hold each run once it has its slot until a gate file exists: the test opens the gate only when 8 runs hold
slots at the same moment, so
"8 in flight at the peak" is an event the test saw, not a race it hoped to win. The runs themselves train on
the CPU (torch has no CUDA here, and the smoke profile's data is synthetic).

Asserted from the log: all 8 GPUs were used, no slot was ever held by two runs at once, 8 runs were in flight
at the peak, and no run ever waited for a slot (Snakemake started no GPU job without a free slot, so no job
sat on cores waiting); from Snakemake's own output: the `gpu` resource it ran with was the slot count. A dry
run of the same box without the recipe's `threads` shows the GPU jobs' threads the box gives them (2).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml
from gpubox import LEASE_GATE, LEASE_LOG, gpu_box_env
from pipeline import SHOW_JOBS, env, fresh_copy

from rir import gpu
from rir.config import expand_runs
from rir.models import model_summary

N_GPUS = 8
N_RUNS = 9
CORES = 16
HANG_GUARD_S = 600  # only a hung pipeline reaches it; it measures nothing


def _tiny_smoke(repo) -> list[str]:
    """Cut the copy's smoke profile to one epoch of 128 images; its N_RUNS smallest runs (FLOPs per image)."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    smoke = params["profiles"]["smoke"]
    smoke["synthetic"] = {**smoke.get("synthetic", {}), "n_train": 128, "n_test": 64}
    smoke.setdefault("recipe", {}).update(epochs=1, batch_size=64, milestones=[1], threads=1)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    runs = expand_runs(params, "smoke")
    assert len(runs) > N_RUNS > N_GPUS, list(runs)

    def flops(run_id):
        options = runs[run_id].train_options()
        return model_summary(options["model"], 10, **options["model_overrides"])["flops_per_image"]

    return sorted(runs, key=flops)[:N_RUNS]


def _dry_run_threads(repo, run_env, run_id) -> int:
    """The train job's threads in a dry run with the recipe's `threads` removed (Snakemake omits 1)."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["profiles"]["smoke"]["recipe"].pop("threads")
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--dry-run", "--forceall", "--cores",
                           str(CORES), *SHOW_JOBS, "--config", "profile=smoke", "--",
                           f"results/smoke/runs/{run_id}/metrics.json"],
                          cwd=repo, env=run_env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    block = proc.stdout[proc.stdout.index("rule train:"):].split("\n\n")[0]
    said = [line.split("threads: ")[1] for line in block.splitlines() if "threads: " in line]
    return int(said[0]) if said else 1


def _read_log(path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


@pytest.mark.slow
def test_snakemake_keeps_every_simulated_gpu_busy_one_run_per_slot(tmp_path):
    repo = fresh_copy(tmp_path / "repo")
    runs = _tiny_smoke(repo)
    log, gate = tmp_path / "lease.log", tmp_path / "gate"
    run_env = gpu_box_env(N_GPUS, {k: v for k, v in env().items() if k != gpu.RUNS_PER_GPU})
    run_env.update({gpu.LOCK_DIR: str(tmp_path / "locks"), LEASE_LOG: str(log), LEASE_GATE: str(gate)})
    targets = [f"results/smoke/runs/{run}/metrics.json" for run in runs]
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", str(CORES), "--config",
                             "profile=smoke", "--", *targets], cwd=repo, env=run_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        # The event: N_GPUS runs hold a slot at once (each waits at the gate once it has one).
        deadline = time.monotonic() + HANG_GUARD_S
        while len([e for e in _read_log(log) if e["event"] == "acquired"]) < N_GPUS:
            assert proc.poll() is None, f"snakemake ended early:\n{proc.stdout.read()[-3000:]}"
            assert time.monotonic() < deadline, "fewer than 8 runs ever held a slot at once"
            time.sleep(0.2)
        held = [e for e in _read_log(log) if e["event"] == "acquired"]
        assert not any(e["event"] == "released" for e in _read_log(log))
        assert len(held) == N_GPUS and {e["device"] for e in held} == {str(i) for i in range(N_GPUS)}
        gate.touch()
        out, _ = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out[-3000:]
    assert all((repo / t).is_file() for t in targets)

    events = _read_log(log)
    acquired = {e["pid"]: e for e in events if e["event"] == "acquired"}
    released = {e["pid"]: e for e in events if e["event"] == "released"}
    assert len(acquired) == N_RUNS and released.keys() == acquired.keys()
    assert {e["holder"] for e in acquired.values()} == set(runs)  # one lease per run, named after it
    intervals = [(e["t"], released[pid]["t"], (e["device"], e["slot"])) for pid, e in acquired.items()]
    assert {slot for _, _, slot in intervals} >= {(str(i), 0) for i in range(N_GPUS)}  # all 8 GPUs used
    for slot in {s for _, _, s in intervals}:  # at most one run holds a slot at any moment
        spans = sorted((a, b) for a, b, s in intervals if s == slot)
        assert all(prev[1] <= nxt[0] for prev, nxt in zip(spans, spans[1:], strict=False)), (slot, spans)
    sweep = sorted([(a, 1) for a, _, _ in intervals] + [(b, -1) for _, b, _ in intervals])
    in_flight = peak = 0
    for _, step in sweep:
        in_flight += step
        peak = max(peak, in_flight)
    assert peak == N_GPUS
    assert not any(e["waited"] for e in acquired.values()), "a GPU job started without a free slot"
    # Each GPU job takes cores // slots threads: Snakemake's core budget is what keeps one job per slot.
    assert _dry_run_threads(repo, run_env, runs[0]) == CORES // N_GPUS
