"""Checkpoints: weights_only round trip with RNG states, the previous good one kept, damage detected by the
hash and recovered from with one warning."""

import random

import numpy as np
import pytest
import torch

from rir import checkpoint as ckpt


def make_state(value: float) -> dict:
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(value)
    return {"model": model.state_dict(), "rng": ckpt.capture_rng(), "epoch": int(value),
            "history": [{"epoch": 1, "train_loss": 0.5}], "config": {"model": "m", "milestones": [42, 62]}}


@pytest.fixture
def warnings():
    seen: list[str] = []
    return seen


def test_round_trip_loads_with_weights_only(tmp_path, warnings):
    ckpt.save_checkpoint(tmp_path, make_state(1.0), epoch=1)
    loaded = ckpt.load_latest(tmp_path, warn=warnings.append)
    assert loaded["epoch"] == 1 and loaded["config"]["milestones"] == [42, 62]
    assert torch.equal(loaded["model"]["weight"], torch.ones(2, 3))
    assert warnings == []
    sidecar = (tmp_path / "ckpt-e0001-s000000.pt.sha256").read_text().split()
    assert sidecar[1] == "ckpt-e0001-s000000.pt" and len(sidecar[0]) == 64


def test_rng_states_are_restored_exactly():
    np.random.rand(5)
    random.random()
    saved = ckpt.capture_rng()
    expected = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])
    ckpt.restore_rng(saved)
    assert torch.equal(torch.rand(4), expected[0])
    assert np.array_equal(np.random.rand(4), expected[1])
    assert [random.random() for _ in range(4)] == expected[2]


def test_keeps_the_newest_and_the_previous_one(tmp_path):
    for epoch in range(1, 5):
        ckpt.save_checkpoint(tmp_path, make_state(float(epoch)), epoch=epoch)
    ckpt.save_checkpoint(tmp_path, make_state(4.5), epoch=4, step=3)  # a mid-epoch (SIGTERM) checkpoint
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["ckpt-e0004-s000000.pt", "ckpt-e0004-s000000.pt.sha256",
                     "ckpt-e0004-s000003.pt", "ckpt-e0004-s000003.pt.sha256"]


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "no_sidecar"])
def test_damaged_newest_falls_back_to_previous_with_one_warning(tmp_path, warnings, damage):
    ckpt.save_checkpoint(tmp_path, make_state(1.0), epoch=1)
    newest = ckpt.save_checkpoint(tmp_path, make_state(2.0), epoch=2)
    data = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(data[: len(data) // 2])
    elif damage == "flip_byte":
        newest.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    else:
        newest.with_name(newest.name + ".sha256").unlink()
    loaded = ckpt.load_latest(tmp_path, warn=warnings.append)
    assert loaded["epoch"] == 1
    assert len(warnings) == 1 and "ckpt-e0002-s000000.pt" in warnings[0] and "ckpt-e0001" in warnings[0]


def test_all_damaged_starts_over_with_one_warning(tmp_path, warnings):
    for epoch in (1, 2):
        path = ckpt.save_checkpoint(tmp_path, make_state(float(epoch)), epoch=epoch)
        path.write_bytes(b"not a checkpoint")
    assert ckpt.load_latest(tmp_path, warn=warnings.append) is None
    assert len(warnings) == 1 and "starting over" in warnings[0]


def test_empty_or_missing_state_dir_is_a_fresh_start(tmp_path, warnings):
    assert ckpt.load_latest(tmp_path / "missing", warn=warnings.append) is None
    assert ckpt.load_latest(tmp_path, warn=warnings.append) is None
    assert warnings == []


def test_a_checkpoint_cannot_run_code(tmp_path, warnings):
    """An intact hash over a pickle that is not weights-only data is still refused (weights_only=True)."""

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / ckpt.checkpoint_name(1)
    torch.save({"x": Evil()}, path)
    path.with_name(path.name + ".sha256").write_text(f"{ckpt.sha256_file(path)}  {path.name}\n")
    assert ckpt.load_latest(tmp_path, warn=warnings.append) is None
    assert len(warnings) == 1
