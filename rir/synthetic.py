"""Synthetic CIFAR-10/100 (`rir synth`): tarballs in the official layout with a learnable class signal.

Tests and demos run offline, so they need data; a synthetic tarball has exactly the official python layout
(member names, byte-string dict keys, protocol-2 pickles of uint8 arrays in Python 2's spelling), so
`rir fetch` reads it with the same code, and the same safety checks, as the real CIFAR. `synthesize` also
writes a sidecar `FILE.md5`; `rir fetch` takes that md5 as the expected one and marks everything prepared
from it synthetic, which every table, figure and page then says.

Each class is a colour and a cosine texture (`ClassSignal`), drawn under random contrast, colour shift,
distractor texture and noise (`synthesize_images`): a small CNN learns it in a few epochs, through the crops
and flips of training.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rir.data import (
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    CIFAR100_COARSE_CLASSES,
    CIFAR100_COARSE_OF,
    NUMPY_RECONSTRUCT,
    ROW_BYTES,
    DatasetSpec,
    get_spec,
    md5_file,
    md5_sidecar,
)
from rir.errors import UserError
from rir.io import atomic_path, atomic_write_text

_MAX_SYNTH_IMAGES = 300_000  # per split: six times CIFAR, and one batch stays under rir.data's member limit
# Amplitudes of the class texture and of the distractor texture (colour units, see synthesize_images). The
# class texture is twice the distractor's so that the smoke profile's tiny 18-layer nets without shortcuts
# (CNN, ResNet Init) learn it in three short epochs; the pixel-space baseline of synthesize_images cannot use
# it (random phases), so that baseline stays at about 50% on 10 classes.
_TEXTURE = 2.0
_DISTRACTOR = 0.6



# Texture frequencies in cycles per image (one half-plane; the other is the same cosine): periods of 5 to 16
# pixels, which survive the 4-pixel crops and flips of training and which 3x3 convolutions pick up.
_FREQS = np.array(
    [(fx, fy) for fx in range(-6, 7) for fy in range(7) if 2 <= np.hypot(fx, fy) <= 6 and (fy > 0 or fx > 0)]
)


@dataclass(frozen=True)
class ClassSignal:
    """What makes each synthetic class recognisable: a colour, and a texture (frequency, amplitudes)."""

    colour: np.ndarray  # (K, 3) the class colour offset (1 unit = 40 grey levels, see synthesize_images)
    freq: np.ndarray  # (K, 2) its texture's frequency, cycles per image along x and y
    amp: np.ndarray  # (K, 3) its texture's amplitude per channel

    @classmethod
    def draw(cls, num_classes: int, rng: np.random.Generator) -> ClassSignal:
        freq = _FREQS[rng.choice(len(_FREQS), num_classes)]
        return cls(rng.normal(0, 1, (num_classes, 3)), freq, rng.normal(0, 1, (num_classes, 3)))


def _textures(freq: np.ndarray, amp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 1024) cosine textures with random phases: only frequency and colours carry signal."""
    y, x = np.mgrid[0:32, 0:32].reshape(2, -1) / 32.0
    phase = 2 * np.pi * (freq[:, :1] * x + freq[:, 1:] * y) + rng.uniform(0, 2 * np.pi, (len(freq), 1))
    return amp[:, :, None] * np.cos(phase)[:, None, :]


def synthesize_images(signal: ClassSignal, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Images (N, 3072) uint8 in the batches' channel-plane layout, for the given class labels.

    Each image is its class's colour and texture at a random contrast, plus a random colour shift, a random
    distractor texture and pixel noise. The colour shift overlaps the classes' colours: a nearest-class-mean
    classifier on the pixels (which sees the colour alone: the textures' phases are random) reaches about 50%
    on 10 classes and 30% on 100 (5,000 training images). The texture is what a convolution can learn beyond
    that, and the smoke profile's nets do, in three epochs on 768 images (params.yaml).
    """
    out = np.empty((len(labels), ROW_BYTES), dtype=np.uint8)
    for start in range(0, len(labels), 2048):  # chunks bound the working memory
        lab = labels[start : start + 2048]
        n = len(lab)
        contrast = rng.uniform(0.6, 1.2, size=(n, 1, 1))
        texture = _TEXTURE * _textures(signal.freq[lab], signal.amp[lab], rng)
        v = contrast * (signal.colour[lab][:, :, None] + texture)
        v += rng.normal(0, 0.6, (n, 3, 1))
        v += _textures(_FREQS[rng.choice(len(_FREQS), n)], rng.normal(0, _DISTRACTOR, (n, 3)), rng)
        v += rng.normal(0, 0.4, v.shape)
        out[start : start + n] = np.clip(128 + 40 * v, 0, 255).reshape(n, -1)
    return out


class _Py2StylePickler(pickle._Pickler):
    """Pickles the way the official batches were written (Python 2 cPickle, protocol 2).

    Python 3 can only express bytes in protocol 2 through `_codecs.encode`, a global the safe reader must not
    admit, and names numpy's array rebuilder `numpy._core.multiarray._reconstruct`. Python 2 wrote bytes as
    plain strings and the rebuilder as `numpy.core.multiarray._reconstruct`; so do we.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + len(obj).to_bytes(4, "little") + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes

    def save_global(self, obj, name=None) -> None:
        if obj is NUMPY_RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def _pickle_py2(obj: object) -> bytes:
    buf = io.BytesIO()
    _Py2StylePickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _batch(spec: DatasetSpec, label: str, data: np.ndarray, labels: np.ndarray, names: list[bytes]) -> dict:
    if spec.name == "cifar10":
        return {
            b"batch_label": label.encode(),
            b"labels": labels.tolist(),
            b"data": data,
            b"filenames": names,
        }
    coarse = [CIFAR100_COARSE_OF[int(f)] for f in labels]
    return {
        b"filenames": names,
        b"batch_label": label.encode(),
        b"fine_labels": labels.tolist(),
        b"coarse_labels": coarse,
        b"data": data,
    }


def synthesize(dataset: str, out: str | os.PathLike, n_train: int, n_test: int, seed: int = 0) -> str:
    """Write a synthetic tarball in the official layout to `out`, and `out.md5`; return the md5.

    The bytes depend only on the arguments (fixed tar and gzip timestamps), so a rerun gives the same md5.
    """
    spec = get_spec(dataset)
    if not (1 <= n_train <= _MAX_SYNTH_IMAGES and 1 <= n_test <= _MAX_SYNTH_IMAGES):
        raise UserError(f"--n-train and --n-test must be 1..{_MAX_SYNTH_IMAGES} (got {n_train}, {n_test})")
    rng = np.random.default_rng(seed)
    signal = ClassSignal.draw(spec.num_classes, rng)
    class_names = CIFAR10_CLASSES if spec.name == "cifar10" else CIFAR100_CLASSES
    members: dict[str, bytes] = {}
    splits = [("training", spec.train_members, n_train), ("testing", (spec.test_member,), n_test)]
    for kind, member_names, n in splits:
        labels = rng.integers(0, spec.num_classes, size=n)
        data = synthesize_images(signal, labels, rng)
        for i, (member, idx) in enumerate(
            zip(member_names, np.array_split(np.arange(n), len(member_names)), strict=True)
        ):
            names = [f"synthetic_{class_names[labels[j]]}_s_{j:06d}.png".encode() for j in idx]
            batch = _batch(
                spec, f"{kind} batch {i + 1} of {len(member_names)}", data[idx], labels[idx], names
            )
            members[member] = _pickle_py2(batch)
    if spec.name == "cifar10":
        meta = {
            b"num_cases_per_batch": -(-n_train // 5),
            b"label_names": [c.encode() for c in class_names],
            b"num_vis": ROW_BYTES,
        }
        members["readme.html"] = b"<html><body><p>Synthetic CIFAR-10 made by rir synth.</p></body></html>\n"
    else:
        meta = {
            b"fine_label_names": [c.encode() for c in class_names],
            b"coarse_label_names": [c.encode() for c in CIFAR100_COARSE_CLASSES],
        }
    members[spec.meta_member] = _pickle_py2(meta)

    out = Path(out)
    with atomic_path(out) as tmp, open(tmp, "wb") as raw:
        with (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
        ):
            folder = tarfile.TarInfo(spec.folder)
            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(folder)
            for name, payload in members.items():
                info = tarfile.TarInfo(spec.member(name))
                info.size, info.mode = len(payload), 0o644
                tar.addfile(info, io.BytesIO(payload))
    md5 = md5_file(out)
    atomic_write_text(md5_sidecar(out), f"{md5}  {out.name}\n")
    return md5
