"""Test-only fault injection for `rir train`: real signals and pauses at a known training step.

Nothing of this is in rir/: the tests install it, in-process through conftest.py (`install()`) and in the
`rir` of subprocesses through tests/bin/rir, a `rir` that installs it first (`fault_env()` puts that folder
first on the PATH that Snakemake and SLURM jobs inherit; `RIR` runs it directly).

RIR_FAULT_INJECT=ACTION@N acts after this process's N-th training step:
- KILL, TERM: the process sends itself that signal (TERM: `rir train` checkpoints and exits 75);
- WAIT: writes its pid to the file RIR_FAULT_FLAG names and blocks until that file is removed, so a test acts
  at a known step by waiting on an event, the flag file, instead of on time; a SIGTERM received while paused
  is handled at the step boundary once released, exactly as in a running loop;
- HOLD: writes the flag the same way and blocks until a SIGTERM arrives, whoever sends it (SLURM's
  preemption): the signal then always lands at step N, never in a last step that would let the run finish.
RIR_FAULT_RUN=<name> limits the fault to the run whose output folder has that name: under Snakemake every job
inherits the environment, and a test that pauses one run of a pipeline must leave the others running.

How: `install()` wraps `rir.train.train`; for a run with a fault, the step function `train` takes from
rir.step (`rir.step.train_step`, looked up when `train` starts) is wrapped for that run alone, and counts.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

FAULT_ENV = "RIR_FAULT_INJECT"
FAULT_FLAG_ENV = "RIR_FAULT_FLAG"
FAULT_RUN_ENV = "RIR_FAULT_RUN"
ACTIONS = ("KILL", "TERM", "WAIT", "HOLD")
BIN = Path(__file__).resolve().parent / "bin"  # tests/bin/rir: `rir` with the faults installed
RIR = [sys.executable, str(BIN / "rir")]  # that `rir`, run by this interpreter


def fault_env(spec: str, flag: Path | None = None, run: str | None = None,
              base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) with `spec` (ACTION@N) for the `rir train` of every job started with it:
    the variables, and tests/bin first on the PATH."""
    environ = {k: v for k, v in (os.environ if base is None else base).items()
               if k not in (FAULT_ENV, FAULT_FLAG_ENV, FAULT_RUN_ENV)}
    environ.update({FAULT_ENV: spec, "PATH": f"{BIN}{os.pathsep}{environ.get('PATH', '')}"})
    if flag is not None:
        environ[FAULT_FLAG_ENV] = str(flag)
    if run is not None:
        environ[FAULT_RUN_ENV] = run
    return environ


def _fault(out_dir: Path) -> tuple[str, int] | None:
    """RIR_FAULT_INJECT as (action, step), or None (also for a run RIR_FAULT_RUN does not name); a malformed
    value is a UserError naming it, raised before the run writes anything."""
    from rir.errors import UserError

    spec = os.environ.get(FAULT_ENV)
    if not spec or os.environ.get(FAULT_RUN_ENV, out_dir.name) != out_dir.name:
        return None
    action, _, step = spec.partition("@")
    if action not in ACTIONS or not step.isdigit() or int(step) < 1:
        raise UserError(f"{FAULT_ENV}={spec!r}: expected ACTION@STEP with ACTION one of "
                        f"{', '.join(ACTIONS)} and STEP a positive integer")
    if action in ("WAIT", "HOLD") and not os.environ.get(FAULT_FLAG_ENV):
        raise UserError(f"{FAULT_ENV}={spec!r} needs {FAULT_FLAG_ENV}, the flag file to wait on")
    return action, int(step)


def _act(action: str) -> None:
    if action in ("WAIT", "HOLD"):
        from rir.io import atomic_write_text

        flag = Path(os.environ[FAULT_FLAG_ENV])
        atomic_write_text(flag, f"{os.getpid()}\n")
        # `rir train`'s SIGTERM handler is its stop flag (rir.train._StopFlag): HOLD waits for it to be set.
        stop = signal.getsignal(signal.SIGTERM)
        while flag.exists() if action == "WAIT" else not getattr(stop, "set", False):
            time.sleep(0.02)
    else:
        os.kill(os.getpid(), signal.Signals[f"SIG{action}"])


def install() -> None:
    """Wrap `rir.train.train` so that a run the environment names meets its fault; idempotent. Call it before
    anything binds `train` by name (`from rir.train import train`)."""
    import rir.step
    import rir.train

    if getattr(rir.train.train, "with_faults", False):
        return
    real_train = rir.train.train

    def train(cfg, out_dir, state_dir=None):
        fault = _fault(Path(out_dir))
        if fault is None:
            return real_train(cfg, out_dir, state_dir)
        action, at = fault
        real_step, done = rir.step.train_step, 0

        def step(*args, **kwargs):
            nonlocal done
            result = real_step(*args, **kwargs)
            done += 1
            if done == at:
                _act(action)
            return result

        rir.step.train_step = step
        try:
            return real_train(cfg, out_dir, state_dir)
        finally:
            rir.step.train_step = real_step

    train.with_faults = True
    train.__doc__ = real_train.__doc__
    rir.train.train = train
