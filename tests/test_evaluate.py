"""Evaluation with BatchNorm's running averages (Section 3) and Figure 3's ablation of a saved run.

In process, on synthetic CIFAR-10 (1000 training, 500 test images) and a ResNet Init net of width 4, one
block per stage, with random weights and BatchNorm statistics set by hand: the numbers are nonsense as
accuracies, but each one is recomputed independently, so any change in what is evaluated shows.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from rir.data import load_arrays
from rir.layers import READINGS, STREAMS, resnet_init_layers, zero_stream
from rir.loader import DeviceLoader
from rir.models import create_model
from rir.recipe import TrainConfig

MODEL, OVERRIDES = "resnet_init_18", {"width": 4, "blocks": [1, 1, 1]}  # 6 ResNet Init layers


def _model_with_running_stats() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(MODEL, **OVERRIDES)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # statistics unlike any one batch's
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module")
def test_set(synthetic_data_root):
    arrays = load_arrays(synthetic_data_root, "cifar10")
    return arrays, DeviceLoader(arrays.test_images, arrays.test_labels, arrays.mean, arrays.std, 250,
                                torch.device("cpu"), train=False)


def _by_hand(model, loader) -> tuple[float, float]:
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        logits = torch.cat([model(x) for x, _ in loader.epoch()])
    labels = torch.cat([y for _, y in loader.epoch()])
    return F.cross_entropy(logits, labels).item(), 100.0 * (logits.argmax(1) == labels).float().mean().item()


def test_evaluation_uses_the_running_averages_and_leaves_the_model_as_it_was(test_set):
    from rir.evaluate import evaluate_model

    torch.set_num_threads(1)
    _, loader = test_set
    model = _model_with_running_stats().train()
    before = copy.deepcopy(model.state_dict())
    loss, accuracy = evaluate_model(model, loader)
    expected_loss, expected_accuracy = _by_hand(model, loader)
    assert loss == pytest.approx(expected_loss, rel=1e-5) and accuracy == pytest.approx(expected_accuracy)
    assert model.training  # training mode is given back
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # statistics untouched


def test_ablation_zeroes_one_layer_and_stream_at_a_time_in_both_readings(synthetic_data_root, test_set,
                                                                         tmp_path):
    """Figure 3 on a saved run: one row per (layer, stream, reading), each equal to zeroing that one kernel
    set in an intact copy of the model, so every earlier row's weights were restored before the next."""
    from rir.ablation import ablate_run

    torch.set_num_threads(1)
    _, loader = test_set
    model = _model_with_running_stats()
    cfg = TrainConfig.from_dict({"model": MODEL, "model_overrides": OVERRIDES, "batch_size": 250,
                                 "data_root": str(synthetic_data_root), "device": "cpu"})
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"state_dict": model.state_dict(), "config": cfg.to_dict(), "num_classes": 10,
                "status": "completed"}, run / "model.pt")
    rows = ablate_run(run, tmp_path / "ablation.csv", device="cpu")
    layers = resnet_init_layers(model)
    assert [(r["layer"], r["stream"], r["reading"]) for r in rows] == [
        (i, s, r) for i in range(len(layers)) for s in STREAMS for r in READINGS]
    assert {r["baseline_accuracy"] for r in rows} == {round(_by_hand(model, loader)[1], 4)}
    for row in (rows[-1], rows[len(rows) // 2 + 1]):  # late rows: every earlier zeroing had to be undone
        with zero_stream(layers[row["layer"]], row["stream"], row["reading"]):
            assert row["accuracy"] == round(_by_hand(model, loader)[1], 4), row
    assert (tmp_path / "ablation.csv").read_text().count("\n") == len(rows) + 1
