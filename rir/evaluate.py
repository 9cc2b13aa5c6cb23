"""Test accuracy of a model (used after every training epoch) and of a finished run (`rir evaluate`).

BatchNorm uses its running statistics at test time, the paper's "exponential moving average of training
batch normalization statistics" (Section 3): the model is put in eval mode. Accuracies are in percent.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.nn.functional as F

from rir.errors import UserError
from rir.io import atomic_write_json


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, loader, autocast=contextlib.nullcontext) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (%) of `model` over one pass of an evaluation `DeviceLoader`."""
    was_training = model.training
    model.eval()
    device = loader.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    for x, y in loader.epoch():
        with autocast():
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
        count += y.shape[0]
    model.train(was_training)
    # The only host-device synchronisation of the pass.
    return loss_sum.item() / count, 100.0 * correct.item() / count


def load_run_model(run_dir: str | Path) -> dict:
    """model.pt of a run (weights_only); a missing or damaged file is a UserError."""
    path = Path(run_dir) / "model.pt"
    if not path.is_file():
        raise UserError(f"{path} does not exist (was the run finished by `rir train`?)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"{path} is damaged and cannot be read ({type(err).__name__})") from None
    if not isinstance(saved, dict) or not {"state_dict", "config"} <= saved.keys():
        raise UserError(f"{path} is not a model.pt written by `rir train`")
    return saved


def load_trained(run_dir: str | Path, data_root: str | None = None, device: str = "auto"):
    """(model on its device in eval mode, evaluation DeviceLoader over the test set, TrainConfig, CifarArrays)
    of a finished run; `data_root` replaces the config's when the data moved."""
    from rir.data import load_arrays
    from rir.device import apply_math_mode, resolve_device
    from rir.loader import DeviceLoader
    from rir.models import create_model
    from rir.recipe import TrainConfig

    saved = load_run_model(run_dir)
    cfg = TrainConfig.from_dict({**saved["config"], "device": device,
                                 **({"data_root": data_root} if data_root else {})})
    dev = resolve_device(cfg.device)
    apply_math_mode(cfg.precision)  # the run's own math mode, so its ResNet Init layers take the same form
    arrays = load_arrays(cfg.data_root, cfg.dataset)
    model = create_model(cfg.model, num_classes=arrays.num_classes, **cfg.model_overrides)
    try:
        model.load_state_dict(saved["state_dict"])
    except RuntimeError as err:
        raise UserError(f"{Path(run_dir) / 'model.pt'} does not fit model {cfg.model!r}: "
                        f"{str(err).splitlines()[0]}") from None
    model.to(dev).eval()
    loader = DeviceLoader(arrays.test_images, arrays.test_labels, arrays.mean, arrays.std,
                          cfg.batch_size, dev, train=False)
    return model, loader, cfg, arrays


def evaluate_run(run_dir: str | Path, data_root: str | None = None, device: str = "auto",
                 out: str | Path | None = None) -> dict:
    """Recompute the test accuracy of a finished run and write it to `out` (default RUN_DIR/eval.json)."""
    from rir.device import autocast

    model, loader, cfg, arrays = load_trained(run_dir, data_root, device)
    test_loss, test_acc = evaluate_model(model, loader, lambda: autocast(loader.device, cfg.precision))
    result = {
        "run_dir": str(run_dir), "model": cfg.model, "dataset": cfg.dataset,
        **arrays.provenance,
        "test_accuracy": test_acc, "test_error": 100.0 - test_acc, "test_loss": test_loss,
        "test_images": len(arrays.test_labels), "device": str(loader.device),
    }
    atomic_write_json(Path(out) if out is not None else Path(run_dir) / "eval.json", result)
    return result
