"""Resumable training state: atomic, hashed checkpoints that survive kills, truncation and corruption.

A checkpoint is `ckpt-eEEEE-sSSSSSS.pt` in the state folder (E: completed epochs, S: completed steps of the
next epoch, non-zero only after a SIGTERM in mid-epoch) with a sidecar `<name>.sha256` in sha256sum format.
The checkpoint is written first, atomically (`rir.io`), then its sidecar; a checkpoint without a matching
sidecar is therefore incomplete or damaged and is never loaded. The newest `KEEP` checkpoints are kept, so
when the newest is bad the previous good one is used, with one warning line; when none is good training
starts over, with one warning line.

Everything is stored as tensors and plain Python types, so checkpoints load with `torch.load(...,
weights_only=True)`: a checkpoint cannot run code when it is read. RNG states (torch CPU and CUDA, numpy,
Python) are converted to tensors here.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rir.io import atomic_write_bytes, atomic_write_text, sha256_file

KEEP = 2  # the newest checkpoint and the previous good one
_NAME = re.compile(r"^ckpt-e(\d{4})-s(\d{6})\.pt$")


def checkpoint_name(epoch: int, step: int = 0) -> str:
    return f"ckpt-e{epoch:04d}-s{step:06d}.pt"


def list_checkpoints(state_dir: str | Path) -> list[Path]:
    """Checkpoint files in `state_dir`, newest first."""
    folder = Path(state_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _NAME.match(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def save_checkpoint(state_dir: str | Path, state: dict, epoch: int, step: int = 0) -> Path:
    """Write `state` atomically with its sha256 sidecar, then drop all but the newest `KEEP` checkpoints."""
    folder = Path(state_dir)
    target = folder / checkpoint_name(epoch, step)
    # Serialized in memory first: torch's file writer reports a full disk as a bare RuntimeError ("unexpected
    # pos"), a plain write says "No space left on device" and rir.io names the file.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(target, data)
    digest = hashlib.sha256(data).hexdigest()
    atomic_write_text(_sidecar(target), f"{digest}  {target.name}\n")
    for old in list_checkpoints(folder)[KEEP:]:
        old.unlink(missing_ok=True)
        _sidecar(old).unlink(missing_ok=True)
    return target


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _is_intact(path: Path) -> bool:
    try:
        recorded = _sidecar(path).read_text().split()[0]
    except (OSError, IndexError):
        return False
    return recorded == sha256_file(path)


def _warn(message: str) -> None:
    print(f"rir train: warning: {message}", file=sys.stderr)


def load_latest(
    state_dir: str | Path, map_location: str | torch.device = "cpu", warn: Callable[[str], None] = _warn
) -> dict | None:
    """The newest intact checkpoint in `state_dir`, or None if there is none.

    Damaged checkpoints (hash mismatch, missing sidecar, unreadable) are skipped; if any was, `warn` is
    called exactly once, naming them and what is used instead.
    """
    damaged: list[str] = []
    loaded = None
    for path in list_checkpoints(state_dir):
        if _is_intact(path):
            try:
                loaded = torch.load(path, map_location=map_location, weights_only=True)
            except Exception:  # an intact hash over bytes torch cannot read: same as damaged
                loaded = None
            if loaded is not None:
                if damaged:
                    warn(f"checkpoint {', '.join(damaged)} is damaged (sha256 mismatch or unreadable); "
                         f"resuming from the previous good one, {path.name}")
                return loaded
        damaged.append(path.name)
    if damaged:
        warn(f"checkpoint {', '.join(damaged)} is damaged (sha256 mismatch or unreadable) and no good one "
             f"is left in {state_dir}; starting over")
    return None


def capture_rng() -> dict:
    """Every RNG state the training process touches, as tensors and plain types."""
    mt_name, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": mt_name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Inverse of `capture_rng`."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        # A run resumed with fewer visible GPUs than it was saved with (a lease, another node) restores the
        # generators it still has; only the first is ever used (one run, one GPU).
        for index, s in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), index)
