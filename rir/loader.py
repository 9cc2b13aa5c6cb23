"""DeviceLoader: the whole uint8 data set on the training device, augmentation batched on the device.

The paper trains with "only standard augmentation by random crops and horizontal flips" (Section 3); the
crops follow He et al. (2015b): pad 4 pixels on each side, take a random 32x32 window. The padding value is
not in the paper (docs/paper.md); we pad with 0 in pixel space (black, as torchvision's `RandomCrop(32,
padding=4)` does on uint8 images), before the per-channel normalization.

Design (the data stays on the device):
- the images are padded once and moved once, as uint8 (50000 x 3 x 40 x 40 bytes = 240 MB for CIFAR);
- the order and the augmentation of epoch `e` are drawn on the CPU from a generator seeded by (seed, e) and
  moved to the device once per epoch, so any epoch can be replayed exactly (resume), on any device;
- a training batch is ONE gather (`torch.take` with a linear index that encodes sample, crop offset and
  flip) followed by the uint8 -> float conversion and the per-channel affine normalization. No per-sample
  Python, no host-device synchronisation.

`drop_last` defaults to True for training: every step then has the same batch shape (one torch.compile
graph, BatchNorm never sees a tiny last batch), and since the permutation changes every epoch no image is
excluded for good. For the paper's 50000 images in batches of 500 it makes no difference (100 full
batches). Evaluation never drops.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

IMAGE_SIZE = 32  # CIFAR images are 32 x 32 pixels


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator whose stream is a function of (seed, epoch) alone."""
    # SeedSequence mixes the pair properly: (seed, epoch) and (seed + 1, epoch - 1) give unrelated streams.
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device="cpu").manual_seed(int(state[0]) << 32 | int(state[1]))


class DeviceLoader:
    """Batches of normalized float images `(B, 3, 32, 32)` and int64 labels, produced on `device`.

    images: uint8 `N x 32 x 32 x 3` (the layout of `rir.data.load_arrays`); labels: int64 `N`;
    mean/std: per-channel statistics on the 0-1 scale. `train=True` shuffles and augments (random crop with
    `padding` pixels of zero padding, horizontal flip with probability 1/2); `train=False` yields the images
    in order, unaugmented. `channels_last=True` yields tensors in channels-last memory format.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        mean,
        std,
        batch_size: int,
        device: torch.device | str = "cpu",
        train: bool = True,
        seed: int = 0,
        drop_last: bool | None = None,
        channels_last: bool = False,
        padding: int = 4,
        flip: bool = True,
    ) -> None:
        if images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3) or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 N x 32 x 32 x 3, got {images.dtype} {images.shape}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.train = train
        self.seed = int(seed)
        self.drop_last = train if drop_last is None else drop_last
        self.channels_last = channels_last
        self.padding = int(padding) if train else 0
        self.flip = flip and train
        self.num_samples = len(images)

        p = self.padding
        side = IMAGE_SIZE + 2 * p
        # Channels-last output comes for free by gathering in N, H, W, C order and permuting the view.
        layout = images if channels_last else images.transpose(0, 3, 1, 2)
        pads = [(0, 0)] + [((p, p) if s == IMAGE_SIZE else (0, 0)) for s in layout.shape[1:]]
        padded = np.pad(layout, pads)
        self._images = torch.from_numpy(np.ascontiguousarray(padded)).to(self.device)
        self._labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64).to(self.device)

        mean = torch.as_tensor(np.asarray(mean, dtype=np.float64))
        std = torch.as_tensor(np.asarray(std, dtype=np.float64))
        # (x / 255 - mean) / std == x * scale + shift, one multiply-add per element.
        self._scale = (1.0 / (255.0 * std)).float().view(1, 3, 1, 1).to(self.device)
        self._shift = (-mean / std).float().view(1, 3, 1, 1).to(self.device)

        # Linear offset inside one padded image of output pixel (c, y, x) for crop (0, 0), no flip; a crop
        # at (dy, dx) adds dy * row_stride + dx * col_stride, and a flip mirrors the column index.
        ar = torch.arange(IMAGE_SIZE, device=self.device)
        if channels_last:  # padded image is (side, side, 3)
            self._row_stride, self._col_stride, chan_stride = side * 3, 3, 1
        else:  # padded image is (3, side, side)
            self._row_stride, self._col_stride, chan_stride = side, 1, side * side
        self._image_stride = 3 * side * side
        self._chan = torch.arange(3, device=self.device) * chan_stride
        self._cols = ar * self._col_stride
        self._cols_flipped = (IMAGE_SIZE - 1 - ar) * self._col_stride
        self._rows = ar * self._row_stride

    def __len__(self) -> int:
        """Number of batches per epoch."""
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Order, vertical and horizontal crop offsets and flip flags of `epoch` (CPU tensors)."""
        n = self.num_samples
        if not self.train:
            zeros = torch.zeros(n, dtype=torch.int64)
            return torch.arange(n), zeros, zeros, zeros.bool()
        g = epoch_generator(self.seed, epoch)
        order = torch.randperm(n, generator=g)
        dy = torch.randint(0, 2 * self.padding + 1, (n,), generator=g)
        dx = torch.randint(0, 2 * self.padding + 1, (n,), generator=g)
        flip = torch.rand(n, generator=g) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool)
        return order, dy, dx, flip

    def epoch(self, epoch: int = 0, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches of `epoch`, starting at batch `start_step` (to resume inside an epoch)."""
        if not self.train:
            yield from self._eval_batches()
            return
        # Pinned host memory makes the once-per-epoch copy truly asynchronous on CUDA (a copy from pageable
        # memory makes the host wait for it).
        pin = self.device.type == "cuda"
        order, dy, dx, flip = ((t.pin_memory() if pin else t).to(self.device, non_blocking=True)
                               for t in self.epoch_plan(epoch))
        # Per-sample base offset: image start + crop corner; reversed columns where flipped.
        base = order * self._image_stride + dy * self._row_stride + dx * self._col_stride
        b = self.batch_size
        for step in range(start_step, len(self)):
            sl = slice(step * b, (step + 1) * b)
            cols = torch.where(flip[sl, None], self._cols_flipped, self._cols)  # (B, 32)
            yield self._gather(base[sl], cols), self._labels[order[sl]]

    def _gather(self, base: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        rows = self._rows
        if self.channels_last:  # index (B, H, W, C), viewed as (B, C, H, W)
            index = (base[:, None, None, None] + rows[None, :, None, None] + cols[:, None, :, None]
                     + self._chan[None, None, None, :])
            x = self._images.take(index).permute(0, 3, 1, 2)
        else:
            index = (base[:, None, None, None] + self._chan[None, :, None, None] + rows[None, None, :, None]
                     + cols[:, None, None, :])
            x = self._images.take(index)
        return self._normalize(x)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        # Elementwise ops keep the memory format of `x`, so channels-last stays channels-last.
        return torch.addcmul(self._shift, x.float(), self._scale)

    def _eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        b = self.batch_size
        for step in range(len(self)):
            sl = slice(step * b, (step + 1) * b)
            x = self._images[sl]
            x = x.permute(0, 3, 1, 2) if self.channels_last else x
            yield self._normalize(x), self._labels[sl]
