"""The fault matrix of issue 6: kills, preemption, a second pipeline, a full disk, corrupt or hostile input.

Every case runs the real commands (`snakemake`, `rir`, `mount`) in subprocesses, on a copy of the finished
smoke pipeline (the `snakemade` fixture, also the uninterrupted reference) or on tiny synthetic data. The
faults SLURM delivers (preemption, time limits) are tests/test_slurm.py's, against the real cluster. What
must hold: no finished run is retrained, an interrupted run resumes from its last checkpoint and ends with
the same numbers, a refusal is one line naming the fault with a non-zero exit, the previous good files stay
intact, no temporary file is left, and nothing from a file runs as code.
README's "Reliability" section records the matrix and what these tests observed; the cases covered by other
modules (tarball refusals in test_data.py, checkpoint fallback in test_checkpoint.py and test_train.py, report
escaping in test_report_html.py) are named there rather than repeated here.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from faults import FAULT_ENV, RIR, fault_env
from payloads import RunsCode
from pipeline import SHOW_JOBS, env, sh

from rir.config import expand_runs, load_params, resolve_profile
from rir.train import EXIT_PREEMPTED

ROOT = Path(__file__).resolve().parents[1]
# README's command, with this machine's two cores, and Snakemake's job blocks shown: the tests read them
SMOKE = ("--cores", "2", *SHOW_JOBS, "--config", "profile=smoke")
RESULTS = Path("results/smoke")
# The tiny run of the disk and checkpoint cases: 512 images in batches of 64, so 8 steps per epoch.
TINY = ("--model", "resnet_18", "--override", "width=8", "--batch-size", "64", "--lr", "0.05", "--device",
        "cpu", "--threads", "1", "--deterministic", "--epochs", "2")
STEPS_PER_EPOCH = 8
# Table fields that describe the machine or its speed, not the model: they differ between any two runs.
MACHINE = re.compile(r"seconds|hours|images_per_s|peak_memory|wall|device")
EVIL_MARKUP = '<script>alert("rir")</script><img src=x onerror=alert(1)>'
# Only a hung tool reaches these limits; they measure nothing.
WAIT_S = 600


# --- Helpers ----------------------------------------------------------------------------------------------


def rir(*args, cwd: Path | None = None, fault: str | None = None) -> subprocess.CompletedProcess:
    """The real `rir` command in a subprocess (a kill must hit a real process), with the tests' faults."""
    environ = fault_env(fault, base=env()) if fault else {k: v for k, v in env().items() if k != FAULT_ENV}
    return subprocess.run([*RIR, *map(str, args)], cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=WAIT_S)


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` (hidden ones included) with its content hash."""
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def copy_repo(snakemade: Path, dest: Path) -> Path:
    shutil.copytree(snakemade, dest, symlinks=True)
    return dest


def forget(repo: Path, runs: list[str]) -> None:
    """Remove runs' artifacts, checkpoints and logs, and the tables and report made from them, as if those
    runs had never been trained (with the report in place, Snakemake would not look back for them)."""
    shutil.rmtree(repo / RESULTS / "tables")
    shutil.rmtree(repo / "reports/smoke")
    for run in runs:
        shutil.rmtree(repo / RESULTS / "runs" / run)
        shutil.rmtree(repo / RESULTS / "state" / run, ignore_errors=True)
        (repo / "logs/smoke/train" / f"{run}.log").unlink(missing_ok=True)


def start_snakemake(repo: Path, log: Path, *args: str, extra_env: dict | None = None) -> subprocess.Popen:
    """Snakemake in its own session, so the whole tree (Snakemake, shells, `rir`) can be signalled;
    `extra_env` reaches every job (a fault injection names its one run with RIR_FAULT_RUN)."""
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=repo,
                                env={**env(repo), **(extra_env or {})}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def pause_at(run: str, step: int, flag: Path) -> dict:
    """The environment that pauses `run` (and no other job) after its `step`-th step until `flag` is removed
    (tests/faults.py's WAIT); the paused process writes its pid into `flag`."""
    return fault_env(f"WAIT@{step}", flag, run, base=env())


def steps_per_epoch(repo: Path, run: str) -> int:
    """Training steps per epoch of a smoke run, from params.yaml (the loader drops the last partial batch)."""
    params = load_params(repo / "params.yaml")
    batch = expand_runs(params, "smoke")[run].recipe["batch_size"]
    return resolve_profile(params, "smoke")["synthetic"]["n_train"] // batch


def wait_for(condition, what: str, log: Path, pipeline: subprocess.Popen | None = None,
             timeout: float = WAIT_S):
    """Poll `condition` until it returns something true; fail early if `pipeline` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if pipeline is not None and pipeline.poll() is not None:
            pytest.fail(f"the pipeline ended (exit {pipeline.returncode}) before {what}\n"
                        f"{log.read_text()[-4000:]}")
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {timeout} s\n{log.read_text()[-4000:]}")


def processes() -> dict[int, tuple[list[str], int]]:
    """Live processes: pid -> (argv, session id)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                argv = (entry / "cmdline").read_bytes().decode().split("\0")
                found[int(entry.name)] = (argv, int(fields[3]))
    return found


def train_process(run: str, cwd: Path) -> int | None:
    """The pid of `rir train --run RUN` working in `cwd` once its SIGTERM handler is installed, else None."""
    for pid, (argv, _) in processes().items():
        if "train" in argv and "--run" in argv and argv[argv.index("--run") + 1] == run:
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M).group(1), 16)
                if os.readlink(f"/proc/{pid}/cwd") == str(cwd) and caught & (1 << (signal.SIGTERM - 1)):
                    return pid
    return None


def jobs(log: str) -> dict[str, list[str]]:
    """The jobs a Snakemake log started, as {rule: [run, ...]} (the run wildcard, or "" without one)."""
    started: dict[str, list[str]] = {}
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", log, flags=re.M):
        run = re.search(r"wildcards: .*?run=([\w-]+)", body)
        started.setdefault(rule, []).append(run.group(1) if run else "")
    return started


def finished_trains(log: str) -> set[str]:
    """Runs whose train job Snakemake recorded as finished."""
    ids = {}
    for body in re.findall(r"^(?:local)?rule train:\n((?:    .*\n)*)", log, flags=re.M):
        ids[re.search(r"jobid: (\d+)", body).group(1)] = re.search(r"run=([\w-]+)", body).group(1)
    return {ids[j] for j in re.findall(r"^Finished jobid: (\d+) \(Rule: train\)", log, flags=re.M)}


def accuracy(repo: Path, run: str) -> float:
    return json.loads((repo / RESULTS / "runs" / run / "metrics.json").read_text())["test_accuracy"]


def tables(folder: Path) -> dict[str, object]:
    """Every table CSV and JSON in `folder`, without the columns that measure the machine."""
    out: dict[str, object] = {}
    for path in sorted(folder.glob("*.csv")):
        with open(path) as f:
            rows = list(csv.DictReader(f))
        out[path.name] = [{k: v for k, v in row.items() if not MACHINE.search(k)} for row in rows]
    for path in sorted(folder.glob("*.json")):
        out[path.name] = _drop_machine(json.loads(path.read_text()))
    return out


def _drop_machine(value):
    if isinstance(value, dict):
        return {k: _drop_machine(v) for k, v in value.items() if not MACHINE.search(k)}
    if isinstance(value, list):
        return [_drop_machine(v) for v in value]
    return value


def temp_files(folder: Path) -> list[str]:
    """Leftovers of rir.io's atomic writes (`.NAME.XXXX.tmp`)."""
    return [p.name for p in folder.rglob(".*.tmp")]


def fill(folder: Path) -> Path:
    """Fill the file system holding `folder` to the last byte; returns the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while f.write(b"\0" * size):
                    pass
    with pytest.raises(OSError) as full:
        (folder / "probe").write_bytes(b"x")
    assert full.value.errno == errno.ENOSPC
    (folder / "probe").unlink(missing_ok=True)
    return filler


@pytest.fixture
def tmpfs():
    """mount(folder, size): a fresh tmpfs of `size` at `folder`, unmounted after the test."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("a full disk is simulated with a small tmpfs, and mounting one needs root")
        folder.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"mount -t tmpfs is not permitted here: {proc.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture(scope="module")
def tiny_data(synthetic_data) -> Path:
    return synthetic_data("cifar10", 512, 256, 0)


@pytest.fixture(scope="module")
def interrupted(tiny_data, tmp_path_factory) -> Path:
    """The state dir of a tiny run SIGKILLed in epoch 2: one good checkpoint, ckpt-e0001. Copy it to use."""
    folder = tmp_path_factory.mktemp("interrupted")
    proc = rir("train", *TINY, "--data-root", tiny_data, "--out", folder / "run", "--state-dir",
               folder / "state", fault=f"KILL@{STEPS_PER_EPOCH + 1}")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert sorted(p.name for p in (folder / "state").iterdir()) == [
        "ckpt-e0001-s000000.pt", "ckpt-e0001-s000000.pt.sha256"]
    return folder / "state"


# --- Kills, preemption, concurrency ----------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_of_the_whole_pipeline_then_unlock_and_rerun_loses_nothing(snakemade, tmp_path):
    """Runs to train again: two small ones, and a wide one that pauses in epoch 2 (after its first checkpoint)
    until the pipeline is killed, so the kill finds it checkpointed and unfinished by construction, not by
    timing. The small runs train meanwhile on the other core; the kill waits for Snakemake to record one."""
    repo = copy_repo(snakemade, tmp_path / "repo")
    small, wide = ["cnn_18__cifar10__s0", "all_cnn_c__cifar10__s0"], "resnet_18_wide__cifar10__s0"
    forget(repo, [*small, wide])
    state = repo / RESULTS / "state"
    log, flag = tmp_path / "killed.log", tmp_path / "paused"
    paused_step = steps_per_epoch(repo, wide) + 1  # the first step of epoch 2
    pipeline = start_snakemake(repo, log, *SMOKE, extra_env=pause_at(wide, paused_step, flag))
    try:
        wait_for(flag.exists, f"{wide} paused after step {paused_step}", log, pipeline)
        # A second pipeline in the same folder while the first one trains: refused by Snakemake's lock
        # before it starts any job, so it writes nothing.
        second = sh(repo, sys.executable, "-m", "snakemake", *SMOKE, check=False)
        said = second.stdout + second.stderr
        assert second.returncode != 0 and "Directory cannot be locked" in said, said
        assert jobs(said) == {}
        # A train job Snakemake saw finish (metrics.json alone is not enough: the process may still be
        # exiting, and Snakemake then reruns the job).
        wait_for(lambda: finished_trains(log.read_text()) & set(small), "a finished small run", log, pipeline)
        assert flag.exists() and processes().get(int(flag.read_text())), "the wide run must still be paused"
        os.killpg(pipeline.pid, signal.SIGKILL)
        pipeline.wait()
        wait_for(lambda: not [p for p, (_, sid) in processes().items() if sid == pipeline.pid],
                 "the end of every process of the killed pipeline", log, timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pipeline.pid, signal.SIGKILL)
        flag.unlink(missing_ok=True)
    killed_log = log.read_text()
    finished = finished_trains(killed_log)
    assert wide not in finished and not (repo / RESULTS / "runs" / wide / "metrics.json").exists()
    assert sorted(p.name for p in (state / wide).glob("ckpt-*.pt")) == ["ckpt-e0001-s000000.pt"]
    interrupted = [r for r in (*small, wide) if r not in finished and list((state / r).glob("ckpt-*.pt"))]
    assert finished and wide in interrupted, killed_log[-4000:]
    runs = expand_runs(load_params(repo / "params.yaml"), "smoke")
    kept = [r for r in runs if r not in (*small, wide) or r in finished]
    before = {(r, name): (sha256(p), p.stat().st_mtime_ns)
              for r in kept for name in ("metrics.json", "model.pt")
              for p in [repo / RESULTS / "runs" / r / name]}

    # What README tells users after a kill: the lock is left behind, and the same command says so and names
    # --unlock; unlock, then the same command (the default workflow profile sets --rerun-incomplete for
    # the killed jobs' outputs). No fault injection reaches these commands.
    again = sh(repo, sys.executable, "-m", "snakemake", *SMOKE, check=False)
    assert again.returncode != 0 and "--unlock" in again.stdout + again.stderr
    sh(repo, sys.executable, "-m", "snakemake", "--unlock", *SMOKE)
    rerun = sh(repo, sys.executable, "-m", "snakemake", *SMOKE)

    retrained = set(jobs(rerun.stdout + rerun.stderr).get("train", []))
    assert retrained == {r for r in (*small, wide) if r not in finished}  # no finished run is trained again
    after = {key: (sha256(p), p.stat().st_mtime_ns)
             for key in before for p in [repo / RESULTS / "runs" / key[0] / key[1]]}
    assert after == before
    for run in interrupted:
        assert "resuming from" in (repo / "logs/smoke/train" / f"{run}.log").read_text()
    assert "at epoch 2, step 0" in (repo / "logs/smoke/train" / f"{wide}.log").read_text()
    for run in runs:  # deterministic smoke profile: every number equals the uninterrupted pipeline's
        assert accuracy(repo, run) == accuracy(snakemade, run), run
    assert tables(repo / RESULTS / "tables") == tables(snakemade / RESULTS / "tables")
    assert (repo / "reports/smoke/index.html").is_file()


@pytest.mark.slow
def test_sigterm_to_a_train_job_checkpoints_exits_75_and_the_rerun_resumes(snakemade, tmp_path):
    """The run pauses after its first step (WAIT@1), the SIGTERM is sent to the pid it wrote into the flag,
    then the flag is removed: the signal lands in mid-epoch 1 every time, never in the run's last step."""
    repo = copy_repo(snakemade, tmp_path / "repo")
    run = "resnet_18__cifar10__s0"
    forget(repo, [run])
    assert steps_per_epoch(repo, run) >= 2, "the pause must be in mid-epoch"
    target = str(RESULTS / "runs" / run / "metrics.json")
    log, flag = tmp_path / "preempted.log", tmp_path / "paused"
    # targets first: --config takes all that follows
    pipeline = start_snakemake(repo, log, target, *SMOKE, extra_env=pause_at(run, 1, flag))
    try:
        wait_for(flag.exists, "the train job paused after step 1", log, pipeline)
        os.kill(int(flag.read_text()), signal.SIGTERM)
        flag.unlink()
        assert pipeline.wait(timeout=WAIT_S) != 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pipeline.pid, signal.SIGKILL)
        flag.unlink(missing_ok=True)
    train_log = (repo / "logs/smoke/train" / f"{run}.log").read_text()
    assert "preempted by SIGTERM at epoch 1, step 1" in train_log and "checkpoint written" in train_log
    assert f"exit status {EXIT_PREEMPTED}" in log.read_text()
    # The state outlives Snakemake's cleanup, holding exactly the step the signal landed on.
    assert sorted(p.name for p in (repo / RESULTS / "state" / run).glob("ckpt-*.pt")) == [
        "ckpt-e0000-s000001.pt"]
    assert not (repo / target).exists()

    rerun = sh(repo, sys.executable, "-m", "snakemake", target, *SMOKE)
    assert jobs(rerun.stdout + rerun.stderr).get("train") == [run]
    assert "resuming from" in (repo / "logs/smoke/train" / f"{run}.log").read_text()
    assert accuracy(repo, run) == accuracy(snakemade, run)


# --- A full disk -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tiny_data, interrupted, tmp_path, tmpfs):
    state = tmpfs(tmp_path / "state", "4m")
    shutil.copytree(interrupted, state, dirs_exist_ok=True)
    good = snapshot(state)
    filler = fill(state)
    train = ("train", *TINY, "--data-root", tiny_data, "--out", tmp_path / "run", "--state-dir", state)
    proc = rir(*train)
    assert proc.returncode == 1, proc.stderr
    line = one_line(proc)
    assert "No space left on device" in line and str(state / "ckpt-e0002-s000000.pt") in line, line
    assert {k: v for k, v in snapshot(state).items() if k != "filler"} == good  # the previous one, intact
    assert temp_files(state) == [] and not (tmp_path / "run").exists()

    filler.unlink()  # space again: the same command resumes from the kept checkpoint
    proc = rir(*train)
    assert proc.returncode == 0 and "resuming from" in proc.stdout, proc.stderr
    assert "warning" not in proc.stderr


@pytest.mark.slow
def test_full_disk_while_writing_tables_keeps_the_previous_tables(snakemade, tmp_path, tmpfs):
    results = tmp_path / "results"
    results.mkdir()
    for name in ("runs", "ablation"):
        (results / name).symlink_to(snakemade / RESULTS / name)
    tables_dir = tmpfs(results / "tables", "1m")
    shutil.copytree(snakemade / RESULTS / "tables", tables_dir, dirs_exist_ok=True)
    previous = snapshot(tables_dir)
    filler = fill(tables_dir)
    report = ("report", "tables", "--params", snakemade / "params.yaml", "--profile", "smoke",
              "--results", results)
    proc = rir(*report, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    line = one_line(proc)
    assert "No space left on device" in line and str(tables_dir) in line, line
    assert {k: v for k, v in snapshot(tables_dir).items() if k != "filler"} == previous
    assert temp_files(tables_dir) == []

    filler.unlink()
    assert rir(*report, cwd=tmp_path).returncode == 0
    assert tables(tables_dir) == tables(snakemade / RESULTS / "tables")


# --- Corrupt and hostile input ---------------------------------------------------------------------------


def _unknown_key(text: str) -> str:
    params = yaml.safe_load(text)
    params["recipe"]["epochz"] = 3
    return yaml.safe_dump(params, sort_keys=False)


def _wrong_type(text: str) -> str:
    params = yaml.safe_load(text)
    params["recipe"]["batch_size"] = "large"
    return yaml.safe_dump(params, sort_keys=False)


def _negative_epochs(text: str) -> str:
    params = yaml.safe_load(text)
    params["profiles"]["smoke"]["recipe"]["epochs"] = -2
    return yaml.safe_dump(params, sort_keys=False)


def _python_tag(text: str) -> str:
    return text + '\npwned: !!python/object/apply:os.system ["touch PWNED"]\n'


BAD_PARAMS = {  # case: (edit of params.yaml, words both tools' one-line refusal must contain)
    "unknown key": (_unknown_key, ["recipe", "epochz"]),
    "wrong type": (_wrong_type, ["recipe.batch_size", "batch_size='large': expected int"]),
    "negative epoch count": (_negative_epochs, ["profiles.smoke.recipe.epochs", "-2"]),
    "python object tag": (_python_tag, ["params.yaml", "python/object/apply"]),
}


@pytest.fixture(scope="module")
def repo_copy(snakemade, tmp_path_factory) -> Path:
    return copy_repo(snakemade, tmp_path_factory.mktemp("bad-params") / "repo")


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_PARAMS))
def test_bad_params_are_refused_by_snakemake_and_rir_train_in_one_line(repo_copy, tmp_path, case):
    edit, words = BAD_PARAMS[case]
    params = repo_copy / "params.yaml"
    good = params.read_text()
    before = {name: snapshot(repo_copy / name) for name in ("data", "results", "reports", "logs")}
    params.write_text(edit(good))
    try:
        dry = sh(repo_copy, sys.executable, "-m", "snakemake", "-n", *SMOKE, check=False)
        run = rir("train", "--params", params, "--profile", "smoke", "--run", "cnn_18__cifar10__s0",
                  "--data-root", repo_copy / "data/smoke", "--out", tmp_path / "run", "--state-dir",
                  tmp_path / "state", cwd=repo_copy)
    finally:
        params.write_text(good)
    if case == "python object tag":
        # Snakemake reads the file first, with yte's FullLoader, which refuses the tag in its own words.
        assert dry.returncode == 1 and "not valid JSON or YAML" in dry.stdout + dry.stderr, dry.stdout
    else:
        # Snakemake's own notice of the workflow profile it uses aside, one line.
        dry.stderr = "".join(line for line in dry.stderr.splitlines(keepends=True)
                             if not line.startswith("Using workflow specific profile"))
        assert dry.returncode == 2 and all(w in one_line(dry) for w in words), dry.stderr
    assert run.returncode == 2 and all(w in one_line(run) for w in words), run.stderr
    assert not (repo_copy / "PWNED").exists()  # nothing executed, nothing written
    assert not (tmp_path / "run").exists() and not (tmp_path / "state").exists()
    assert {name: snapshot(repo_copy / name) for name in before} == before


@pytest.mark.slow
def test_damaged_prepared_arrays_are_refused_and_the_checkpoint_is_kept(tiny_data, interrupted, tmp_path):
    data, state = tmp_path / "data", tmp_path / "state"
    shutil.copytree(tiny_data, data)
    shutil.copytree(interrupted, state)
    prepared = data / "cifar10" / "prepared.npz"
    damaged = bytearray(prepared.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    prepared.write_bytes(bytes(damaged))
    good = snapshot(state)
    proc = rir("train", *TINY, "--data-root", data, "--out", tmp_path / "run", "--state-dir", state)
    assert proc.returncode == 2
    line = one_line(proc)
    assert f"prepared data {prepared} is damaged" in line and "rir fetch" in line, line
    assert snapshot(state) == good and not (tmp_path / "run").exists()


def _plant(path: Path, payload: object) -> None:
    """A checkpoint holding `payload`, with a correct sha256 sidecar: only weights_only stands in the way."""
    torch.save(payload, path)
    path.with_name(path.name + ".sha256").write_text(f"{sha256(path)}  {path.name}\n")


@pytest.mark.slow
def test_a_code_running_checkpoint_is_refused_and_training_falls_back_with_one_warning(
    tiny_data, interrupted, tmp_path
):
    state = tmp_path / "state"
    shutil.copytree(interrupted, state)
    marker = tmp_path / "PWNED"
    _plant(state / "ckpt-e0002-s000000.pt", {"model": RunsCode(marker)})
    proc = rir("train", *TINY, "--data-root", tiny_data, "--out", tmp_path / "run", "--state-dir", state)
    assert proc.returncode == 0, proc.stderr
    line = one_line(proc)
    assert "warning" in line and "ckpt-e0002-s000000.pt" in line and "ckpt-e0001-s000000.pt" in line, line
    assert "resuming from" in proc.stdout and not marker.exists()


@pytest.mark.slow
def test_a_code_running_model_is_refused_by_rir_evaluate(tiny_data, tmp_path):
    marker = tmp_path / "PWNED"
    torch.save({"state_dict": RunsCode(marker)}, tmp_path / "model.pt")
    proc = rir("evaluate", tmp_path, "--data-root", tiny_data)
    assert proc.returncode == 2 and "model.pt" in one_line(proc)
    assert not marker.exists() and not (tmp_path / "eval.json").exists()


def test_a_reference_file_with_a_python_tag_is_refused(tmp_path):
    reference = tmp_path / "paper.yaml"
    reference.write_text((ROOT / "rir/reference/paper.yaml").read_text()
                         + '\npwned: !!python/object/apply:os.system ["touch PWNED"]\n')
    proc = rir("report", "tables", "--params", ROOT / "params.yaml", "--profile", "smoke", "--results",
               tmp_path / "results", "--reference", reference, cwd=tmp_path)
    assert proc.returncode == 2 and str(reference) in one_line(proc)
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "results").exists()


@pytest.mark.slow
def test_markup_from_result_and_reference_files_renders_inert_in_rir_report_html(snakemade, tmp_path):
    """Values of metrics.json, env.json and paper.yaml, as hostile as a shared results folder makes them."""
    results = tmp_path / "results"
    shutil.copytree(snakemade / RESULTS / "runs", results / "runs")
    (results / "ablation").symlink_to(snakemade / RESULTS / "ablation")
    run = results / "runs" / "rir_18_wide__cifar10__s0"
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "device_name": EVIL_MARKUP}))
    environment = json.loads((run / "env.json").read_text())
    (run / "env.json").write_text(json.dumps({**environment, "torch": EVIL_MARKUP}))
    reference = yaml.safe_load((ROOT / "rir/reference/paper.yaml").read_text())
    reference["paper"]["title"] = EVIL_MARKUP
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(reference, sort_keys=False))
    proc = rir("report", "html", "--params", snakemade / "params.yaml", "--profile", "smoke", "--results",
               results, "--out", tmp_path / "report", "--reference", tmp_path / "paper.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "report" / "index.html").read_text()
    assert "<script" not in html.lower() and "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(") >= 3  # the device, the torch version and the title, shown inert
