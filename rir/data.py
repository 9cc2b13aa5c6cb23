"""CIFAR-10/100 as used in Section 4: fetch, verify, read safely, prepare, load.

The paper trains on CIFAR-10 and CIFAR-100 (Krizhevsky 2009), read from the official python tarballs. `fetch`
verifies a tarball's md5 (the official one, or the sidecar `FILE.md5` that `synthesize` writes), reads the
batches straight out of the tar stream without unpacking anything to disk, unpickles them with an allow-list
that admits only numpy arrays and plain containers, and stores the uint8 arrays once, atomically:

    ROOT/<dataset>/<official tarball name>   the verified tarball (plus `.md5` sidecar when synthetic)
    ROOT/<dataset>/prepared.npz              train/test images (N, 32, 32, 3) uint8 and labels int64
    ROOT/<dataset>/manifest.json             provenance, sha256 of prepared.npz, counts, channel mean/std

Training reads only the prepared arrays, through `load_arrays`, which checks the manifest's hash first.
The format (specs, class names, member layout) and the data folder's layout are defined here once;
`rir.synthetic` writes synthetic tarballs in exactly the official layout, so the offline tests exercise the
same reading code as the real data.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rir.errors import UserError
from rir.io import atomic_path, atomic_write_json, atomic_write_text, sha256_file

IMAGE_SHAPE = (32, 32, 3)  # H, W, C as stored in prepared.npz
ROW_BYTES = 3072  # one image in the batches: 1024 red, then 1024 green, then 1024 blue bytes, rows first
PREPARED_NAME = "prepared.npz"
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
_MAX_MEMBER_BYTES = 1 << 30  # the largest official member is 155 MB; anything far bigger is a bomb
# numpy's array rebuilder, which array pickles name: numpy.core.multiarray._reconstruct in numpy 1 (and in the
# official batches), numpy._core.multiarray._reconstruct in numpy 2; taken from an array, whichever it is.
NUMPY_RECONSTRUCT = np.zeros(0).__reduce__()[0]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# CIFAR-100's 20 superclasses (coarse labels) and their 5 classes each, as on the dataset's page; the fine
# label indices are the alphabetical order of the 100 class names, as in the official meta file.
_CIFAR100_SUPERCLASSES = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
CIFAR100_COARSE_CLASSES = tuple(sorted(_CIFAR100_SUPERCLASSES))
CIFAR100_CLASSES = tuple(sorted(name for names in _CIFAR100_SUPERCLASSES.values() for name in names))
CIFAR100_COARSE_OF = {
    CIFAR100_CLASSES.index(fine): CIFAR100_COARSE_CLASSES.index(coarse)
    for coarse, fines in _CIFAR100_SUPERCLASSES.items()
    for fine in fines
}


@dataclass(frozen=True)
class DatasetSpec:
    """One official CIFAR python tarball: where it comes from and what is inside."""

    name: str  # the name on the command line and the folder under the data root
    title: str  # the name people use
    url: str  # the official download
    md5: str  # the official tarball's md5, as published on the dataset's page
    filename: str  # the tarball's name
    folder: str  # the one top-level folder inside the tarball
    train_members: tuple[str, ...]  # training batches, in order, relative to `folder`
    test_member: str  # the test batch
    meta_member: str  # label names
    label_key: bytes  # the key of the labels we train on (CIFAR-100: the fine labels, as in the paper)
    num_classes: int

    def member(self, name: str) -> str:
        return f"{self.folder}/{name}"


DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        name="cifar10",
        title="CIFAR-10",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        filename="cifar-10-python.tar.gz",
        folder="cifar-10-batches-py",
        train_members=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_member="test_batch",
        meta_member="batches.meta",
        label_key=b"labels",
        num_classes=10,
    ),
    "cifar100": DatasetSpec(
        name="cifar100",
        title="CIFAR-100",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        filename="cifar-100-python.tar.gz",
        folder="cifar-100-python",
        train_members=("train",),
        test_member="test",
        meta_member="meta",
        label_key=b"fine_labels",
        num_classes=100,
    ),
}


def dataset_names() -> list[str]:
    return list(DATASETS)


def get_spec(dataset: str) -> DatasetSpec:
    try:
        return DATASETS[dataset]
    except KeyError:
        raise UserError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}") from None


@dataclass
class CifarArrays:
    """A prepared dataset, as training and evaluation read it."""

    dataset: str
    train_images: np.ndarray  # (N, 32, 32, 3) uint8, H, W, C
    train_labels: np.ndarray  # (N,) int64 in [0, num_classes)
    test_images: np.ndarray  # (M, 32, 32, 3) uint8
    test_labels: np.ndarray  # (M,) int64
    mean: np.ndarray  # (3,) float64, per-channel mean of the training images on the 0-1 scale
    std: np.ndarray  # (3,) float64, per-channel standard deviation (population) on the 0-1 scale
    num_classes: int
    synthetic: bool  # True when made by `rir synth`: everything computed from it must say so


# ---------------------------------------------------------------------------------------------------------
# Reading a tarball safely


# Everything a CIFAR batch pickle may name: the array rebuilder under both its names, the array and dtype
# classes. Lists, dicts, bytes and ints need no global. Anything else (os.system, builtins.eval,
# codecs, ...) is refused before it is even looked up.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): NUMPY_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): NUMPY_RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"it names {module}.{name}, which a CIFAR batch never does"
            ) from None


def _unpickle(payload: bytes, where: str) -> dict:
    try:
        # encoding="bytes": the batches are Python 2 pickles whose strings are byte strings (b"data", ...).
        obj = _BatchUnpickler(io.BytesIO(payload), encoding="bytes").load()
    except Exception as err:  # any failure of an untrusted pickle is the file's fault
        raise UserError(f"{where}: refused to unpickle: {err}") from None
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a dict, found {type(obj).__name__}")
    return obj


def _check_member(info: tarfile.TarInfo, spec: DatasetSpec, tarball: str, dest: Path) -> None:
    """Refuse any member that could land outside a target folder or is not a plain file or folder."""
    name = info.name
    parts = name.split("/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts or "\\" in name:
        raise UserError(f"{tarball}: member {name!r} points outside the dataset folder; refusing the tarball")
    if not (info.isfile() or info.isdir()):
        kind = "a link" if info.issym() or info.islnk() else "a device or special file"
        raise UserError(f"{tarball}: member {name!r} is {kind}; refusing the tarball")
    if parts[0] != spec.folder:
        raise UserError(f"{tarball}: member {name!r} is not inside {spec.folder}/; refusing the tarball")
    if info.size > _MAX_MEMBER_BYTES:
        raise UserError(f"{tarball}: member {name!r} is {info.size} bytes, far more than CIFAR; refusing")
    # The standard library's own rules for safe extraction (PEP 706), as a second opinion where it has them:
    # tarfile.data_filter and FilterError arrived in Python 3.11.4, and pyproject.toml admits 3.11.0 on. The
    # checks above already refuse everything data_filter refuses in a tarball that is never extracted
    # (absolute and `..` names, every link, devices and other special files), so without it a tarball is
    # refused or read exactly as with it; tests/test_data.py runs its refusals on a tarfile without it.
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is None:
        return
    try:
        data_filter(info, str(dest))
    except tarfile.FilterError as err:
        raise UserError(f"{tarball}: member {name!r} is unsafe ({err}); refusing the tarball") from None


def _read_members(path: Path, spec: DatasetSpec, tarball: str) -> dict[str, bytes]:
    """The wanted members' bytes, read from the gzip stream in one pass; nothing is written to disk."""
    wanted = {spec.member(m) for m in (*spec.train_members, spec.test_member, spec.meta_member)}
    found: dict[str, bytes] = {}
    seen: set[str] = set()
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for info in tar:
                _check_member(info, spec, tarball, path.parent)
                name = info.name.rstrip("/")
                if name in seen:  # a later copy would silently win on extraction; ambiguous, so refuse
                    raise UserError(f"{tarball}: member {name!r} appears twice; refusing the tarball")
                seen.add(name)
                if name in wanted:
                    found[name] = tar.extractfile(info).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise UserError(f"{tarball}: not a readable tar.gz ({err}); it is truncated or damaged") from None
    missing = sorted(wanted - found.keys())
    if missing:
        raise UserError(f"{tarball}: missing {', '.join(missing)}; not a {spec.title} python tarball")
    return found


def _batch_arrays(batch: dict, spec: DatasetSpec, where: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = batch.get(b"data"), batch.get(spec.label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise UserError(f"{where}: b'data' is not a uint8 N x 3072 array")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(type(x) is int for x in labels):
        raise UserError(f"{where}: {spec.label_key!r} is not a list of {len(data)} ints")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise UserError(f"{where}: labels outside 0..{spec.num_classes - 1}")
    # The rows are channel planes (R, G, B), each 32 rows of 32 pixels: to N, H, W, C.
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def read_tarball(
    tarball: str | os.PathLike, dataset: str, shown_as: str | None = None
) -> dict[str, np.ndarray]:
    """Train/test images and labels from an official-layout tarball, read safely (see module docstring).

    Errors name the tarball as `shown_as` (the user's file or URL) rather than a staging copy's name.
    """
    spec, name = get_spec(dataset), shown_as or str(tarball)
    members = _read_members(Path(tarball), spec, name)
    _unpickle(members[spec.member(spec.meta_member)], f"{name}: {spec.meta_member}")
    arrays = {}
    for split, batches in (("train", spec.train_members), ("test", (spec.test_member,))):
        parts = [
            _batch_arrays(_unpickle(members[spec.member(b)], f"{name}: {b}"), spec, f"{name}: {b}")
            for b in batches
        ]
        arrays[f"{split}_images"] = np.concatenate([p[0] for p in parts])
        arrays[f"{split}_labels"] = np.concatenate([p[1] for p in parts])
        if not len(arrays[f"{split}_labels"]):
            raise UserError(f"{name}: the {split} split is empty")
    return arrays


# ---------------------------------------------------------------------------------------------------------
# Fetching and preparing (`rir fetch`)


def md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def md5_sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".md5")


def _parse_sidecar(text: str, where: str) -> str:
    m = re.match(r"\s*([0-9a-fA-F]{32})\b", text)
    if not m:
        raise UserError(f"{where}: not an md5 sidecar (expected '<32 hex digits>  FILE')")
    return m.group(1).lower()


def _channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and population std on the 0-1 scale, from exact integer sums (no float drift)."""
    s = np.zeros(3, dtype=np.int64)
    ss = np.zeros(3, dtype=np.int64)
    for start in range(0, len(images), 4096):
        chunk = images[start : start + 4096].reshape(-1, 3).astype(np.int64)
        s += chunk.sum(axis=0)
        ss += (chunk * chunk).sum(axis=0)
    n = images.shape[0] * images.shape[1] * images.shape[2]
    mean = [int(s[c]) / n / 255 for c in range(3)]
    std = [(int(ss[c]) * n - int(s[c]) ** 2) ** 0.5 / n / 255 for c in range(3)]
    return mean, std


def _prepared_state(folder: Path) -> dict | None:
    """The manifest of an intact prepared dataset in `folder`, or None when there is none or it is damaged."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        if sha256_file(folder / PREPARED_NAME) == manifest["prepared_sha256"]:
            return {"source_md5": manifest["source_md5"], "synthetic": manifest["synthetic"]}
    return None


@contextlib.contextmanager
def _folders_removed_on_failure(folder: Path):
    """Create `folder` (and missing parents); if the block fails, remove the ones it created, when empty."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for path in created:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()
        raise


def _download(url: str, folder: Path, fname: str, progress: bool) -> Path:
    """Download `url` with pooch into a private temporary folder inside `folder`; the caller moves it."""
    import pooch

    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=folder))
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")  # we verify md5 ourselves; pooch's advice about SHA256 would only confuse
    try:
        return Path(pooch.retrieve(url, known_hash=None, fname=fname, path=staging, progressbar=progress))
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        status = getattr(getattr(err, "response", None), "status_code", None) or 0
        if 400 <= status < 500:  # the URL is wrong (a user's mistake); other failures are the network's
            raise UserError(f"cannot download {url}: HTTP {status}") from None
        if isinstance(err, OSError):  # requests' errors are OSErrors: no network, DNS, refused, timed out
            raise OSError(f"cannot download {url} ({_network_reason(err)}); without a network, copy the "
                          f"tarball to {folder / fname} or pass --from FILE, then run again") from None
        raise
    finally:
        logger.setLevel(level)


def _network_reason(err: OSError) -> str:
    """A few words for a failed download; requests' own message runs to several hundred characters."""
    text = str(err)
    if "NameResolution" in text or "Name or service not known" in text or "nodename nor servname" in text:
        return "the host name does not resolve: no network?"
    if "refused" in text.lower():
        return "connection refused"
    if "timed out" in text.lower() or "Timeout" in type(err).__name__:
        return "timed out"
    status = getattr(getattr(err, "response", None), "status_code", None)
    return f"HTTP {status}" if status else type(err).__name__


def _copy_hashing(src: Path, dst: Path) -> str:
    h = hashlib.md5()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for chunk in iter(lambda: fin.read(1 << 20), b""):
            h.update(chunk)
            fout.write(chunk)
    return h.hexdigest()


def _mismatch(path: Path | str, actual: str, expected: str, against: str) -> str:
    return f"{path}: md5 {actual} does not match {expected} ({against}); truncated or the wrong file, refused"


@dataclass(frozen=True)
class _Source:
    """Where a fetch reads its tarball from and which md5 it must have."""

    local: Path | None  # a file on this machine (possibly the data folder's own tarball)
    url: str | None  # or an http(s) URL to download with pooch
    expected_md5: str
    synthetic: bool

    @property
    def against(self) -> str:
        return "its rir synth sidecar" if self.synthetic else "the official md5"


def _resolve_source(spec: DatasetSpec, source: str | None, synthetic: bool, target: Path) -> _Source:
    parsed = urllib.parse.urlparse(source or "")
    if parsed.scheme in ("http", "https"):
        if not synthetic:
            return _Source(None, source, spec.md5, False)
        # A synthetic tarball served over http carries its sidecar at URL.md5, as `rir synth` writes it.
        side = _download(source + ".md5", target.parent, target.name + ".md5", progress=False)
        try:
            md5 = _parse_sidecar(side.read_text(), source + ".md5")
            return _Source(None, source, md5, synthetic=md5 != spec.md5)
        finally:
            shutil.rmtree(side.parent)
    if parsed.scheme == "file":
        source = urllib.request.url2pathname(parsed.path)
    local = Path(source) if source else target
    if not local.is_file():
        if source:
            raise UserError(f"--from {source}: no such file")
        if synthetic:
            raise UserError(f"--synthetic needs a tarball: give --from FILE, or put it at {target}")
        return _Source(None, spec.url, spec.md5, False)
    if md5_sidecar(local).is_file():
        md5 = _parse_sidecar(md5_sidecar(local).read_text(), str(md5_sidecar(local)))
        return _Source(local, None, md5, synthetic=md5 != spec.md5)  # a sidecar may hold the official md5
    if synthetic:
        raise UserError(f"--synthetic: no sidecar {md5_sidecar(local)} (written by rir synth) beside {local}")
    return _Source(local, None, spec.md5, False)


def fetch(
    dataset: str,
    root: str | os.PathLike,
    source: str | None = None,
    synthetic: bool = False,
    progress: bool = False,
) -> str:
    """Obtain, verify and prepare `dataset` under `root`; return a one-line summary of what happened.

    `source` is a local path, a file:// URL or an http(s) URL; without it the tarball already in the data
    folder is used, or the official one is downloaded. A sidecar `SOURCE.md5` (written by `rir synth`) beside
    a local source, or `synthetic=True`, makes the sidecar md5 the expected one and marks the data synthetic.
    Nothing in the data folder changes unless the tarball verifies and reads completely.
    """
    spec = get_spec(dataset)
    folder = Path(root) / spec.name
    with _folders_removed_on_failure(folder):
        return _fetch(spec, folder, source, synthetic, progress)


def _fetch(spec: DatasetSpec, folder: Path, source: str | None, synthetic: bool, progress: bool) -> str:
    target = folder / spec.filename
    src = _resolve_source(spec, source, synthetic, target)
    in_place = src.local is not None and target.is_file() and src.local.resolve() == target.resolve()
    if src.local is not None:
        actual = md5_file(src.local)
        if actual != src.expected_md5 and in_place:  # move it aside, so no later fetch picks it up
            os.replace(target, target.with_name(target.name + ".rejected"))
            if md5_sidecar(target).is_file():  # a sidecar left behind would condemn the next good tarball
                os.replace(md5_sidecar(target), target.with_name(target.name + ".md5.rejected"))
            raise UserError(
                _mismatch(target, actual, src.expected_md5, src.against) + "; moved to *.rejected"
            )
        if actual != src.expected_md5:
            raise UserError(_mismatch(src.local, actual, src.expected_md5, src.against))
    label = "SYNTHETIC" if src.synthetic else "official"
    state = _prepared_state(folder)
    if (
        state
        and (state["source_md5"], state["synthetic"]) == (src.expected_md5, src.synthetic)
        and target.is_file()
    ):
        return (
            f"{spec.name}: already prepared in {folder} from md5 {src.expected_md5} ({label}); nothing to do"
        )

    staged: Path | None = None  # a verified copy inside the data folder, renamed onto `target` at the end
    try:
        if src.url:
            staged = _download(src.url, folder, spec.filename, progress)
            actual = md5_file(staged)
        elif not in_place:
            fd, tmp = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".tmp", dir=folder)
            os.close(fd)
            staged = Path(tmp)
            actual = _copy_hashing(src.local, staged)  # hashed again: the source may change under us
        if actual != src.expected_md5:
            raise UserError(_mismatch(src.url or src.local, actual, src.expected_md5, src.against))
        arrays = read_tarball(staged or target, spec.name, shown_as=str(src.url or src.local))
        if staged is not None:
            os.replace(staged, target)
        if src.synthetic:
            atomic_write_text(md5_sidecar(target), f"{src.expected_md5}  {target.name}\n")
        else:
            md5_sidecar(target).unlink(missing_ok=True)
    finally:
        if staged is not None and staged.parent.name.startswith(".download-"):
            shutil.rmtree(staged.parent, ignore_errors=True)
        elif staged is not None:
            staged.unlink(missing_ok=True)

    with atomic_path(folder / PREPARED_NAME) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)  # uncompressed: loads fast, and its sha256 is cheap to check
    mean, std = _channel_stats(arrays["train_images"])
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "dataset": spec.name,
        "synthetic": src.synthetic,
        "source_file": spec.filename,
        "source_md5": src.expected_md5,
        "prepared_file": PREPARED_NAME,
        "prepared_sha256": sha256_file(folder / PREPARED_NAME),
        "n_train": len(arrays["train_labels"]),
        "n_test": len(arrays["test_labels"]),
        "num_classes": spec.num_classes,
        "mean": mean,
        "std": std,
    }
    atomic_write_json(folder / MANIFEST_NAME, manifest)
    return (
        f"{spec.name}: prepared {manifest['n_train']} train and {manifest['n_test']} test images in {folder} "
        f"from md5 {src.expected_md5} ({label})"
    )


# ---------------------------------------------------------------------------------------------------------
# Loading (training, evaluation)


def load_arrays(root: str | os.PathLike, dataset: str) -> CifarArrays:
    """The prepared arrays of `dataset` under `root`, after checking the manifest's sha256 and every shape."""
    spec = get_spec(dataset)
    folder = Path(root) / spec.name
    manifest_path, prepared = folder / MANIFEST_NAME, folder / PREPARED_NAME
    again = f"run rir fetch again: rir fetch --dataset {spec.name} --root {root}"
    if not manifest_path.is_file() or not prepared.is_file():
        raise UserError(
            f"no prepared {spec.title} data in {folder}; run: rir fetch --dataset {spec.name} --root {root}"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
        expected = manifest["prepared_sha256"]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"manifest {manifest_path} is damaged; {again}") from None
    actual = sha256_file(prepared)
    if actual != expected:
        raise UserError(
            f"prepared data {prepared} is damaged (sha256 {actual}, manifest says {expected}); {again}"
        )
    with np.load(prepared, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    problem = _inconsistency(arrays, manifest, spec)
    if problem:
        raise UserError(f"prepared data {prepared} does not match its manifest ({problem}); {again}")
    return CifarArrays(
        dataset=spec.name,
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"],
        test_images=arrays["test_images"],
        test_labels=arrays["test_labels"],
        mean=np.asarray(manifest["mean"], dtype=np.float64),
        std=np.asarray(manifest["std"], dtype=np.float64),
        num_classes=spec.num_classes,
        synthetic=manifest["synthetic"],
    )


def _inconsistency(arrays: dict[str, np.ndarray], manifest: dict, spec: DatasetSpec) -> str | None:
    """What is wrong with prepared arrays that hash correctly but disagree with the manifest, if anything."""
    if manifest.get("dataset") != spec.name or manifest.get("num_classes") != spec.num_classes:
        return f"it is not {spec.name}"
    if type(manifest.get("synthetic")) is not bool:
        return "no synthetic flag"
    for key in ("mean", "std"):
        value = manifest.get(key)
        if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, float) for v in value)):
            return f"{key} is not 3 numbers"
    for split in ("train", "test"):
        images, labels = arrays.get(f"{split}_images"), arrays.get(f"{split}_labels")
        n = manifest.get(f"n_{split}")
        if images is None or labels is None or not isinstance(n, int) or n < 1:
            return f"no {split} split"
        if images.dtype != np.uint8 or images.shape != (n, *IMAGE_SHAPE):
            return f"{split} images are {images.dtype} {images.shape}, not uint8 {(n, *IMAGE_SHAPE)}"
        if labels.dtype != np.int64 or labels.shape != (n,):
            return f"{split} labels are {labels.dtype} {labels.shape}, not int64 ({n},)"
        if labels.min() < 0 or labels.max() >= spec.num_classes:
            return f"{split} labels outside 0..{spec.num_classes - 1}"
    return None
