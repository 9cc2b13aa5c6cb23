"""Real photographs: the suite meets real CIFAR-10 images (the JPEG copy in ../shared/data/, SOURCE.md there).

Learning alone cannot catch a bug that hits training and test alike (a channel-order swap, a transposed image,
labels shifted by one all still learn), so besides one short training run these tests pin what a person sees:
- pixels of named images as an independent reader (the CIFAR page's own recipe: a plain pickle, rows of
  1024 red, 1024 green, 1024 blue bytes, each plane 32 rows of 32) decodes them from the same tarball;
- what the photographs show, checked by looking at them (the truck's sky is blue and on top, the ship's is
  white), and the class of a few images seen by eye;
- the per-channel statistics against SOURCE.md's, and the normalized batches the loader yields.
The copy is prepared once per module with `rir fetch --unofficial-md5` (about 10 s), so every test also
covers the marking of an unofficial copy; the training run (one epoch of a small net, under a minute on one
core) proves that the pipeline learns real photographs and carries the marking to metrics.json and the
report. CI has the copy at the same relative path; without it these tests fail, naming the path.
"""

from __future__ import annotations

import json
import pickle
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from rir.cli import main
from rir.data import CIFAR10_CLASSES, load_arrays

ROOT = Path(__file__).resolve().parents[1]
COPY = ROOT.parent / "shared" / "data" / "cifar10-jpeg-q75" / "cifar-10-python.tar.gz"
COPY_MD5 = "6ae7feb76eda11188ba891ce99f5691f"  # SOURCE.md
# SOURCE.md's measured statistics of the copy's training images, on 0-255 values.
SOURCE_MEAN = (125.269, 122.933, 113.863)
SOURCE_STD = (62.534, 61.909, 66.460)
# Seen by eye in images drawn from the prepared arrays (tests/test_real_photos.py's docstring): (member,
# position in it) -> the class a person sees.
SEEN = {
    ("data_batch_1", 0): "bird",  # an emu-like head on a blue neck among leaves
    ("data_batch_1", 3): "dog",  # a fluffy pale puppy
    ("data_batch_1", 4): "ship",  # a white ship against a white sky
    ("data_batch_1", 5): "frog",  # a green frog on brown ground
    ("test_batch", 1): "automobile",  # a white car on black
    ("test_batch", 3): "truck",  # a white truck under a blue sky
}
BATCH_SIZE = 10_000  # images per member of the official layout
RUN_ID = "cnn_18__cifar10__s0"
MIN_ACCURACY = 25.0  # one epoch of the run below reached 37 % here (chance: 10 %)


def position(member: str, index: int) -> tuple[str, int]:
    """(split, index in the prepared arrays) of an image of the tarball: the batches in order."""
    if member == "test_batch":
        return "test", index
    return "train", (int(member.rsplit("_", 1)[1]) - 1) * BATCH_SIZE + index


def independent_read(member: str) -> dict:
    """A batch as the CIFAR page says to read it: pickle.load(encoding="bytes"), nothing of rir's."""
    if not COPY.is_file():
        pytest.fail(f"the real-photo copy is missing: {COPY} (CI has it; see ../shared/data/)")
    with tarfile.open(COPY) as tar, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pickle.load(tar.extractfile(f"cifar-10-batches-py/{member}"), encoding="bytes")


def decode(row: np.ndarray) -> np.ndarray:
    """One image from its 3072 bytes: three planes (R, G, B) of 32 rows of 32 pixels, as H x W x C."""
    return np.stack([row[c * 1024:(c + 1) * 1024].reshape(32, 32) for c in range(3)], axis=-1)


def rir(*args) -> None:
    code = main([str(a) for a in args])
    assert code == 0, args


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A data root with the copy fetched as what it is: an unofficial copy, by its md5."""
    if not COPY.is_file():
        pytest.fail(f"the real-photo copy is missing: {COPY} (CI has it; see ../shared/data/)")
    root = tmp_path_factory.mktemp("photos")
    rir("fetch", "--dataset", "cifar10", "--root", root, "--from", COPY, "--unofficial-md5", COPY_MD5)
    return root


@pytest.fixture(scope="module")
def arrays(photos):
    return load_arrays(photos, "cifar10")


def test_the_copy_is_marked_unofficial_with_its_md5(photos, arrays, capsys):
    manifest = json.loads((photos / "cifar10" / "manifest.json").read_text())
    assert (manifest["data_kind"], manifest["source_md5"], manifest["synthetic"]) == (
        "unofficial", COPY_MD5, False)
    assert (arrays.kind, arrays.source_md5) == ("unofficial", COPY_MD5)
    assert (len(arrays.train_labels), len(arrays.test_labels)) == (50_000, 10_000)
    # The data folder remembers the kind: the pipeline's own fetch, without the flag, keeps the copy as it is.
    capsys.readouterr()
    rir("fetch", "--dataset", "cifar10", "--root", photos)
    out = capsys.readouterr().out
    assert "nothing to do" in out and "UNOFFICIAL" in out, out


@pytest.mark.parametrize("member,index", [("data_batch_1", 0), ("data_batch_3", 4321), ("data_batch_5", 9999),
                                          ("test_batch", 3), ("test_batch", 777)])
def test_pixels_and_labels_equal_an_independent_readers(arrays, member, index):
    batch = independent_read(member)
    split, at = position(member, index)
    expected = decode(np.asarray(batch[b"data"][index], dtype=np.uint8))
    assert np.array_equal(getattr(arrays, f"{split}_images")[at], expected), batch[b"filenames"][index]
    assert getattr(arrays, f"{split}_labels")[at] == batch[b"labels"][index]


@pytest.mark.parametrize("member,index", sorted(SEEN))
def test_images_show_the_class_a_person_sees(arrays, member, index):
    split, at = position(member, index)
    assert CIFAR10_CLASSES[getattr(arrays, f"{split}_labels")[at]] == SEEN[(member, index)]


def test_the_truck_has_a_blue_sky_on_top_and_the_ship_a_white_one(arrays):
    """Colours and orientation as a person sees them: a channel swap makes the sky orange, a transposed or
    flipped image puts it on the side or at the bottom."""
    truck = arrays.test_images[position("test_batch", 3)[1]].astype(int)
    blue_minus_red = truck[..., 2] - truck[..., 0]
    assert blue_minus_red[:4].mean() > 50  # the top rows: sky (67 on 0-255 here)
    assert blue_minus_red[-4:].mean() < 0  # the bottom rows: road
    assert blue_minus_red[:, :4].mean() < 30  # the left columns: mostly the truck and the road
    ship = arrays.train_images[position("data_batch_1", 4)[1]].astype(int)
    assert ship[:6].mean() > 240 and ship[-6:].mean() < 160  # white sky above, grey hull and sea below


def test_channel_statistics_are_source_mds(arrays):
    assert np.allclose(arrays.mean * 255, SOURCE_MEAN, atol=0.01), arrays.mean * 255
    assert np.allclose(arrays.std * 255, SOURCE_STD, atol=0.01), arrays.std * 255


def test_the_loader_normalizes_each_channel_and_keeps_the_picture(arrays):
    from rir.loader import DeviceLoader

    loader = DeviceLoader(arrays.test_images, arrays.test_labels, arrays.mean, arrays.std, batch_size=1000,
                          train=False)
    images, labels = map(lambda t: __import__("torch").cat(t), zip(*loader.epoch(), strict=True))
    x = images.double().numpy()
    assert np.allclose(x.mean(axis=(0, 2, 3)), 0, atol=0.03)  # test images under the training statistics
    assert np.allclose(x.std(axis=(0, 2, 3)), 1, atol=0.03)
    at = position("test_batch", 3)[1]
    expected = (arrays.test_images[at].transpose(2, 0, 1) / 255 - arrays.mean[:, None, None]) \
        / arrays.std[:, None, None]
    assert np.allclose(x[at], expected, atol=1e-5)
    assert np.array_equal(labels.numpy(), arrays.test_labels)


def test_a_short_run_learns_real_photographs_and_the_report_says_unofficial(photos, tmp_path):
    """One epoch of a small 18-layer CNN on the 50,000 photographs: well above chance, and the unofficial
    marking reaches metrics.json, env.json, the evaluation, the tables, the figures and the page."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["profiles"]["photo"] = {
        "data": "real",
        "recipe": {"epochs": 1, "batch_size": 128, "lr": 0.05, "milestones": [], "threads": 1,
                   "device": "cpu", "precision": "fp32", "deterministic": True},
        "model_overrides": {"width_scale": 0.125},
        "families": {name: None for name in params["families"] if name != "table3"}
        | {"table3": {"models": ["cnn_18"], "datasets": ["cifar10"], "seeds": [0]}},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    results, reports = tmp_path / "results", tmp_path / "reports"
    run_dir = results / "runs" / RUN_ID
    rir("train", "--params", tmp_path / "params.yaml", "--profile", "photo", "--run", RUN_ID,
        "--data-root", photos, "--out", run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["test_accuracy"] > MIN_ACCURACY, metrics
    assert (metrics["data"], metrics["data_md5"], metrics["synthetic"]) == ("unofficial", COPY_MD5, False)
    env = json.loads((run_dir / "env.json").read_text())
    assert env["data"] == {"data": "unofficial", "data_md5": COPY_MD5, "synthetic": False}

    rir("evaluate", run_dir, "--data-root", photos, "--out", results / "evaluations" / f"{RUN_ID}.json")
    evaluation = json.loads((results / "evaluations" / f"{RUN_ID}.json").read_text())
    assert evaluation["data"] == "unofficial" and evaluation["test_accuracy"] == pytest.approx(
        metrics["test_accuracy"], abs=0.01)

    rir("report", "--params", tmp_path / "params.yaml", "--profile", "photo", "--results", results,
        "--out", reports)
    table3 = (results / "tables" / "table3.csv").read_text()
    assert f"unofficial (cifar10 md5 {COPY_MD5})" in table3
    runs = (results / "tables" / "runs.csv").read_text()
    assert "unofficial" in runs and COPY_MD5 in runs
    figures = json.loads((reports / "figures" / "index.json").read_text())
    assert {f["mark"] for f in figures} == {"UNOFFICIAL COPY OF CIFAR"}
    page = (reports / "index.html").read_text()
    assert "<title>[UNOFFICIAL COPY OF CIFAR]" in page and 'class="unofficial-banner"' in page
    assert COPY_MD5 in page and "not comparable to the paper" in page
    assert "SYNTHETIC" not in page and "the official tarballs" not in page
