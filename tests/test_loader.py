"""DeviceLoader: the batched crop/flip equals a naive per-sample reference, the order and augmentation are a
function of (seed, epoch), normalization is per channel, evaluation is unaugmented and in order."""

import numpy as np
import pytest
import torch

from rir.loader import DeviceLoader

MEAN = np.array([0.49, 0.48, 0.45])
STD = np.array([0.25, 0.24, 0.26])


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(37, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=37).astype(np.int64)
    return images, labels


def reference_batch(images, order, dy, dx, flip, padding=4):
    """One image at a time, the obvious way: pad with zeros, crop, flip, scale, normalize."""
    out = []
    for i, y, x, f in zip(order.tolist(), dy.tolist(), dx.tolist(), flip.tolist(), strict=True):
        img = np.pad(images[i], ((padding, padding), (padding, padding), (0, 0)))  # H, W, C
        crop = img[y:y + 32, x:x + 32]
        if f:
            crop = crop[:, ::-1]
        out.append(((crop / 255.0 - MEAN) / STD).transpose(2, 0, 1))
    return torch.tensor(np.stack(out), dtype=torch.float32)


@pytest.mark.parametrize("channels_last", [False, True])
def test_crop_and_flip_match_a_per_sample_reference(arrays, channels_last):
    images, labels = arrays
    loader = DeviceLoader(images, labels, MEAN, STD, batch_size=8, seed=3, channels_last=channels_last)
    epoch = 5
    order, dy, dx, flip = loader.epoch_plan(epoch)
    # The plan exercises every case: both flips, the extreme offsets 0 and 8 (4 pixels of padding showing).
    assert flip.any() and (~flip).any() and dy.min() == 0 and dx.max() == 8
    batches = list(loader.epoch(epoch))
    assert len(batches) == len(loader) == 37 // 8  # drop_last is the training default
    for step, (x, y) in enumerate(batches):
        sl = slice(step * 8, (step + 1) * 8)
        expected = reference_batch(images, order[sl], dy[sl], dx[sl], flip[sl])
        assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        assert x.is_contiguous(memory_format=fmt)
        torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)
        assert torch.equal(y, torch.from_numpy(labels[order[sl].numpy()]))


def test_order_and_augmentation_are_a_function_of_seed_and_epoch(arrays):
    images, labels = arrays
    a = DeviceLoader(images, labels, MEAN, STD, batch_size=8, seed=1)
    b = DeviceLoader(images, labels, MEAN, STD, batch_size=8, seed=1)
    # Replaying epoch 7 from a fresh loader (a resumed process) gives the same plan and the same bytes.
    for t_a, t_b in zip(a.epoch_plan(7), b.epoch_plan(7), strict=True):
        assert torch.equal(t_a, t_b)
    for (xa, ya), (xb, yb) in zip(a.epoch(7), b.epoch(7), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # ...whatever the global RNG did in between.
    torch.manual_seed(123)
    torch.rand(10)
    assert torch.equal(a.epoch_plan(7)[0], b.epoch_plan(7)[0])
    # Each epoch's order is a permutation of the whole set; epochs and seeds differ.
    orders = {(s, e): DeviceLoader(images, labels, MEAN, STD, 8, seed=s).epoch_plan(e)[0] for s in (1, 2)
              for e in (0, 1)}
    for order in orders.values():
        assert sorted(order.tolist()) == list(range(37))
    assert not torch.equal(orders[1, 0], orders[1, 1])
    assert not torch.equal(orders[1, 0], orders[2, 0])


def test_resuming_inside_an_epoch_yields_the_remaining_batches(arrays):
    images, labels = arrays
    loader = DeviceLoader(images, labels, MEAN, STD, batch_size=5, seed=0)
    whole = list(loader.epoch(2))
    rest = list(loader.epoch(2, start_step=3))
    assert len(rest) == len(whole) - 3
    for (x, y), (xr, yr) in zip(whole[3:], rest, strict=True):
        assert torch.equal(x, xr) and torch.equal(y, yr)


def test_normalization_is_per_channel():
    images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    images[..., 0], images[..., 1], images[..., 2] = 0, 128, 255
    loader = DeviceLoader(images, np.zeros(4, dtype=np.int64), MEAN, STD, batch_size=4, train=False)
    (x, _), = list(loader.epoch())
    for c, value in enumerate((0, 128, 255)):
        expected = (value / 255.0 - MEAN[c]) / STD[c]
        torch.testing.assert_close(x[:, c], torch.full((4, 32, 32), expected, dtype=torch.float32))


@pytest.mark.parametrize("channels_last", [False, True])
def test_evaluation_is_in_order_unaugmented_and_keeps_the_last_batch(arrays, channels_last):
    images, labels = arrays
    loader = DeviceLoader(images, labels, MEAN, STD, batch_size=8, train=False, channels_last=channels_last)
    batches = list(loader.epoch(4))
    assert len(batches) == len(loader) == 5 and batches[-1][0].shape[0] == 37 - 32
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    n = len(images)
    expected = reference_batch(images, torch.arange(n), torch.full((n,), 4), torch.full((n,), 4),
                               torch.zeros(n, dtype=torch.bool))
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(y, torch.from_numpy(labels))


def test_training_without_drop_last_keeps_a_partial_batch(arrays):
    images, labels = arrays
    loader = DeviceLoader(images, labels, MEAN, STD, batch_size=8, drop_last=False)
    sizes = [y.shape[0] for _, y in loader.epoch(0)]
    assert sizes == [8, 8, 8, 8, 5]
    seen = torch.cat([y for _, y in loader.epoch(0)])
    assert sorted(seen.tolist()) == sorted(labels.tolist())


def test_rejects_images_in_the_wrong_layout(arrays):
    images, labels = arrays
    with pytest.raises(ValueError, match="N x 32 x 32 x 3"):
        DeviceLoader(images.transpose(0, 3, 1, 2), labels, MEAN, STD, batch_size=8)
