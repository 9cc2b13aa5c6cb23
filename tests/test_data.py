"""CIFAR data: `rir synth` writes the official layout, `rir fetch` verifies, reads safely and prepares arrays
atomically, `load_arrays` detects damage. Everything runs the real code on synthetic tarballs, offline (the
download path is served by a local http.server on 127.0.0.1)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import pickle
import shutil
import subprocess
import sys
import tarfile
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from payloads import RunsCode

from rir.cli import main
from rir.data import DATASETS, dataset_names, load_arrays
from rir.errors import UserError

OFFICIAL_MEMBERS = {
    "cifar10": [
        "cifar-10-batches-py",
        "cifar-10-batches-py/batches.meta",
        "cifar-10-batches-py/data_batch_1",
        "cifar-10-batches-py/data_batch_2",
        "cifar-10-batches-py/data_batch_3",
        "cifar-10-batches-py/data_batch_4",
        "cifar-10-batches-py/data_batch_5",
        "cifar-10-batches-py/readme.html",
        "cifar-10-batches-py/test_batch",
    ],
    "cifar100": [
        "cifar-100-python",
        "cifar-100-python/meta",
        "cifar-100-python/test",
        "cifar-100-python/train",
    ],
}
BATCH_KEYS = {
    "cifar10": {b"batch_label", b"labels", b"data", b"filenames"},
    "cifar100": {b"filenames", b"batch_label", b"fine_labels", b"coarse_labels", b"data"},
}
META_KEYS = {
    "cifar10": {b"num_cases_per_batch", b"label_names", b"num_vis"},
    "cifar100": {b"fine_label_names", b"coarse_label_names"},
}


def rir(capsys, *args: str) -> tuple[int, str, str]:
    """Run the real command line in this process; return (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def official_pickle(payload: bytes) -> dict:
    """Load a batch the way the CIFAR page says (Python 3: encoding="bytes"), with no safety net."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy 2 renamed numpy.core, as in the originals
        return pickle.loads(payload, encoding="bytes")


def members_of(tarball: Path) -> dict[str, bytes]:
    with tarfile.open(tarball) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def write_tarball(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A tar.gz of `entries` and the sidecar `rir synth` would write: only the content is at fault."""
    with tarfile.open(path, "w:gz") as tar:
        for info, payload in entries:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".md5").write_text(f"{md5}  {path.name}\n")
    return path


def file_entry(name: str, payload: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


def good_entries(tarball: Path, replace: dict[str, bytes] | None = None) -> list:
    replace = replace or {}
    return [file_entry(name, replace.get(name, data)) for name, data in members_of(tarball).items()]


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under `root` (hidden ones included) with its content hash."""
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def http_folder(tmp_path, monkeypatch):
    """A folder served over http://127.0.0.1:PORT/ by the standard library's server, in a thread."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # the server's request log would add lines to stderr
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy set for the real download must not take this one
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --- rir synth --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", dataset_names())
def test_synthetic_tarball_has_the_official_layout(synthetic_tarball, dataset):
    tarball = synthetic_tarball(dataset, 23, 7)
    with tarfile.open(tarball) as tar:
        assert sorted(m.name for m in tar.getmembers()) == OFFICIAL_MEMBERS[dataset]
    spec = DATASETS[dataset]
    members = members_of(tarball)
    counts = {}
    for name in (*spec.train_members, spec.test_member):
        payload = members[spec.member(name)]
        assert payload[:2] == b"\x80\x02"  # protocol 2, like the originals
        batch = official_pickle(payload)
        assert set(batch) == BATCH_KEYS[dataset]
        n = len(batch[b"data"])
        assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (n, 3072)
        assert isinstance(batch[b"batch_label"], bytes)
        assert all(isinstance(f, bytes) for f in batch[b"filenames"]) and len(batch[b"filenames"]) == n
        assert all(type(x) is int and 0 <= x < spec.num_classes for x in batch[spec.label_key])
        if dataset == "cifar100":
            assert all(0 <= x < 20 for x in batch[b"coarse_labels"])
        counts[name] = n
    assert sum(counts[n] for n in spec.train_members) == 23 and counts[spec.test_member] == 7
    meta = official_pickle(members[spec.member(spec.meta_member)])
    assert set(meta) == META_KEYS[dataset]
    names = meta[b"label_names" if dataset == "cifar10" else b"fine_label_names"]
    assert len(names) == spec.num_classes and all(isinstance(n, bytes) for n in names)


def test_synth_is_reproducible_and_writes_an_md5_sidecar(tmp_path, capsys):
    md5s = []
    for name in ("a.tar.gz", "b.tar.gz"):
        code, out, _ = rir(
            capsys,
            "synth",
            "--dataset",
            "cifar10",
            "--out",
            tmp_path / name,
            "--n-train",
            10,
            "--n-test",
            5,
            "--seed",
            3,
        )
        assert code == 0
        md5s.append(hashlib.md5((tmp_path / name).read_bytes()).hexdigest())
        assert (tmp_path / f"{name}.md5").read_text() == f"{md5s[-1]}  {name}\n"
        assert md5s[-1] in out
    assert md5s[0] == md5s[1]


@pytest.mark.parametrize("dataset,min_accuracy", [("cifar10", 0.3), ("cifar100", 0.08)])
def test_class_signal_is_learnable_but_not_trivial(synthetic_data, dataset, min_accuracy):
    """A nearest-class-mean classifier on raw pixels: far above chance, far from perfect."""
    a = load_arrays(synthetic_data(dataset), dataset)
    x = a.train_images.reshape(len(a.train_images), -1).astype(np.float64)
    xt = a.test_images.reshape(len(a.test_images), -1).astype(np.float64)
    classes = np.unique(a.train_labels)
    means = np.stack([x[a.train_labels == c].mean(axis=0) for c in classes])
    dist = (xt**2).sum(1)[:, None] - 2 * xt @ means.T + (means**2).sum(1)[None, :]
    accuracy = (classes[dist.argmin(1)] == a.test_labels).mean()
    assert min_accuracy < accuracy < 0.9, accuracy


# --- rir fetch: the good paths ----------------------------------------------------------------------------


def test_fetch_from_a_local_tarball_prepares_the_arrays(synthetic_data_root, synthetic_tarball):
    a = load_arrays(synthetic_data_root, "cifar10")
    assert a.dataset == "cifar10" and a.num_classes == 10 and a.synthetic is True
    assert a.train_images.dtype == np.uint8 and a.train_images.shape == (1000, 32, 32, 3)
    assert a.test_images.dtype == np.uint8 and a.test_images.shape == (500, 32, 32, 3)
    assert a.train_labels.dtype == np.int64 and a.train_labels.shape == (1000,)
    assert a.test_labels.dtype == np.int64 and a.test_labels.shape == (500,)
    assert set(np.unique(a.train_labels)) == set(range(10))
    # Same pixels and labels as the tarball: row = R plane, G plane, B plane, each 32 rows of 32.
    test = official_pickle(members_of(synthetic_tarball())["cifar-10-batches-py/test_batch"])
    assert np.array_equal(a.test_labels, test[b"labels"])
    planes = test[b"data"].reshape(-1, 3, 32, 32)
    assert np.array_equal(a.test_images[:, :, :, 0], planes[:, 0]) and np.array_equal(
        a.test_images[:, :, :, 2], planes[:, 2]
    )
    pixels = a.train_images.reshape(-1, 3) / 255
    np.testing.assert_allclose(a.mean, pixels.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(a.std, pixels.std(axis=0), atol=1e-12)
    manifest = json.loads((synthetic_data_root / "cifar10" / "manifest.json").read_text())
    assert manifest["synthetic"] is True and manifest["n_train"] == 1000 and manifest["num_classes"] == 10
    assert manifest["source_md5"] == hashlib.md5(synthetic_tarball().read_bytes()).hexdigest()
    assert sorted(p.name for p in (synthetic_data_root / "cifar10").iterdir()) == [
        "cifar-10-python.tar.gz",
        "cifar-10-python.tar.gz.md5",
        "manifest.json",
        "prepared.npz",
    ]


def test_cifar100_uses_the_fine_labels(synthetic_data, synthetic_tarball):
    a = load_arrays(synthetic_data("cifar100"), "cifar100")
    train = official_pickle(members_of(synthetic_tarball("cifar100"))["cifar-100-python/train"])
    assert a.num_classes == 100 and np.array_equal(a.train_labels, train[b"fine_labels"])


def test_fetch_over_http_with_pooch(tmp_path, capsys, http_folder, synthetic_tarball, synthetic_data_root):
    folder, url = http_folder
    shutil.copy(synthetic_tarball(), folder / "c10.tar.gz")
    shutil.copy(f"{synthetic_tarball()}.md5", folder / "c10.tar.gz.md5")
    root = tmp_path / "data"
    code, out, err = rir(
        capsys, "fetch", "--dataset", "cifar10", "--root", root, "--from", f"{url}/c10.tar.gz", "--synthetic"
    )
    assert (code, err) == (0, ""), err
    assert "SYNTHETIC" in out
    a, b = load_arrays(root, "cifar10"), load_arrays(synthetic_data_root, "cifar10")
    assert np.array_equal(a.train_images, b.train_images) and np.array_equal(a.test_labels, b.test_labels)
    assert not [p for p in (root / "cifar10").iterdir() if p.name.startswith(".")]

    # Without --synthetic the same bytes are held to the official md5: refused, nothing kept.
    before = snapshot(root)
    code, _, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", root, "--from", f"{url}/c10.tar.gz")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert DATASETS["cifar10"].md5 in err and "does not match" in err
    assert snapshot(root) == before
    # A URL that is not there is the user's mistake: exit 2, one line, nothing kept.
    code, _, err = rir(
        capsys, "fetch", "--dataset", "cifar10", "--root", root, "--from", f"{url}/nope.tar.gz"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "HTTP 404" in err
    assert snapshot(root) == before


def test_an_unreachable_server_says_how_to_fetch_offline_in_one_line(tmp_path, capsys):
    """No network (a closed local port here): exit 1, one short line that names the URL, the reason and where
    a copied tarball goes; nothing is left in the data folder."""
    import socket

    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/cifar-10-python.tar.gz"
        code, _, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", tmp_path / "data", "--from",
                           url)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and len(lines[0]) < 400, err
    assert url in err and "connection refused" in err and "--from FILE" in err
    assert str(tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz") in err
    assert not (tmp_path / "data").exists()


def test_preplaced_tarball_is_used_and_a_second_fetch_is_a_no_op(tmp_path, capsys, synthetic_tarball):
    folder = tmp_path / "data" / "cifar10"
    folder.mkdir(parents=True)
    shutil.copy(synthetic_tarball(), folder / "cifar-10-python.tar.gz")
    shutil.copy(f"{synthetic_tarball()}.md5", folder / "cifar-10-python.tar.gz.md5")
    code, out, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", tmp_path / "data")
    assert (code, err) == (0, "") and "prepared 1000 train" in out
    assert load_arrays(tmp_path / "data", "cifar10").train_images.shape == (1000, 32, 32, 3)
    before = snapshot(tmp_path / "data")
    mtimes = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    for extra in ([], ["--from", synthetic_tarball()]):
        code, out, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", tmp_path / "data", *extra)
        assert (code, err) == (0, "") and "nothing to do" in out
    assert snapshot(tmp_path / "data") == before
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == mtimes


# --- rir fetch: refusals ----------------------------------------------------------------------------------


def _checksum_mismatch(src: Path, bad: Path) -> None:
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    shutil.copy(f"{src}.md5", f"{bad}.md5")  # the sidecar of the good file


def _truncated(src: Path, bad: Path) -> None:
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    shutil.copy(f"{src}.md5", f"{bad}.md5")


def _truncated_with_matching_md5(src: Path, bad: Path) -> None:
    # Even if the checksum matches (a sidecar made from the cut file), the tar reader must notice.
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    bad.with_name(bad.name + ".md5").write_text(hashlib.md5(bad.read_bytes()).hexdigest())


def _dotdot_member(src: Path, bad: Path) -> None:
    write_tarball(bad, good_entries(src) + [file_entry("cifar-10-batches-py/../../escaped", b"x")])


def _absolute_member(src: Path, bad: Path) -> None:
    write_tarball(bad, good_entries(src) + [file_entry("/tmp/rir-escaped", b"x")])


def _symlink_member(src: Path, bad: Path) -> None:
    link = tarfile.TarInfo("cifar-10-batches-py/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    write_tarball(bad, good_entries(src) + [(link, None)])


def _hardlink_member(src: Path, bad: Path) -> None:
    link = tarfile.TarInfo("cifar-10-batches-py/extra")
    link.type, link.linkname = tarfile.LNKTYPE, "cifar-10-batches-py/test_batch"
    write_tarball(bad, good_entries(src) + [(link, None)])


def _device_member(src: Path, bad: Path) -> None:
    device = tarfile.TarInfo("cifar-10-batches-py/null")
    device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 3  # /dev/null's numbers
    write_tarball(bad, good_entries(src) + [(device, None)])


def _code_running_pickle(src: Path, bad: Path) -> None:
    payload = pickle.dumps(RunsCode(bad.parent / "PWNED"), protocol=2)
    write_tarball(bad, good_entries(src, replace={"cifar-10-batches-py/test_batch": payload}))


def _wrong_dataset(src: Path, bad: Path) -> None:
    write_tarball(bad, [file_entry("cifar-100-python/train", b"x")])


REFUSALS = {
    "checksum mismatch": (_checksum_mismatch, "does not match"),
    "truncated": (_truncated, "does not match"),
    "truncated, md5 matching": (_truncated_with_matching_md5, "truncated or damaged"),
    "../ member": (_dotdot_member, "outside"),
    "absolute member": (_absolute_member, "outside"),
    "symlink member": (_symlink_member, "is a link"),
    "hardlink member": (_hardlink_member, "is a link"),
    "device member": (_device_member, "a device or special file"),
    "pickle running code": (_code_running_pickle, "posix.system"),
    "another dataset's tarball": (_wrong_dataset, "not inside cifar-10-batches-py/"),
}


@pytest.mark.parametrize("previous", ["empty", "prepared"])
@pytest.mark.parametrize("case", list(REFUSALS))
def test_bad_tarball_is_refused_in_one_line_and_nothing_changes(
    tmp_path, capsys, synthetic_tarball, synthetic_data_root, case, previous
):
    make_bad, expected_words = REFUSALS[case]
    bad = tmp_path / "bad" / "bad.tar.gz"
    bad.parent.mkdir()
    make_bad(synthetic_tarball(), bad)
    root = tmp_path / "data"
    if previous == "prepared":
        shutil.copytree(synthetic_data_root, root)
    else:
        root.mkdir()
    before = snapshot(root)
    code, out, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", root, "--from", bad)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rir fetch: error: ") and str(bad) in lines[0], err
    assert expected_words in lines[0], lines[0]
    assert snapshot(root) == before  # no prepared file, no temporary file, previous state intact
    assert not (bad.parent / "PWNED").exists()
    if previous == "prepared":
        assert load_arrays(root, "cifar10").train_images.shape == (1000, 32, 32, 3)


# What tarfile.data_filter refuses (PEP 706): names outside the destination, links, devices and special files.
MEMBER_REFUSALS = ("../ member", "absolute member", "symlink member", "hardlink member", "device member")


@pytest.mark.parametrize("case", [None, *MEMBER_REFUSALS])
def test_members_are_judged_the_same_without_the_standard_library_filter(
    tmp_path, capsys, monkeypatch, synthetic_tarball, case
):
    """Python 3.11.0-3.11.3 (Debian 12's 3.11.2) have neither tarfile.data_filter nor FilterError: a good
    tarball still reads, and every member data_filter would refuse is refused by rir's own checks."""
    for name in ("data_filter", "FilterError"):
        monkeypatch.delattr(tarfile, name, raising=False)
    tarball, root = synthetic_tarball(), tmp_path / "data"
    if case is not None:
        REFUSALS[case][0](synthetic_tarball(), tarball := tmp_path / "bad.tar.gz")
    code, out, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", root, "--from", tarball)
    if case is None:
        assert (code, err) == (0, "")
        assert load_arrays(root, "cifar10").train_images.shape == (1000, 32, 32, 3)
    else:
        assert code == 2 and err.count("\n") == 1 and REFUSALS[case][1] in err, err
        assert not root.exists()


def test_checksum_message_names_both_checksums(tmp_path, capsys, synthetic_tarball):
    bad = tmp_path / "bad.tar.gz"
    _checksum_mismatch(synthetic_tarball(), bad)
    code, _, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", tmp_path / "d", "--from", bad)
    good, actual = hashlib.md5(synthetic_tarball().read_bytes()).hexdigest(), hashlib.md5(bad.read_bytes())
    assert code == 2 and good in err and actual.hexdigest() in err
    assert not (tmp_path / "d").exists()


def test_bad_preplaced_tarball_is_moved_aside(tmp_path, capsys, synthetic_tarball, synthetic_data_root):
    root = tmp_path / "data"
    shutil.copytree(synthetic_data_root, root)
    target = root / "cifar10" / "cifar-10-python.tar.gz"
    target.write_bytes(target.read_bytes()[:1000])
    code, _, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", root)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "rejected" in err
    assert not target.exists() and not Path(f"{target}.md5").exists()
    assert target.with_name("cifar-10-python.tar.gz.rejected").exists()
    assert load_arrays(root, "cifar10").num_classes == 10  # the prepared arrays are still good
    # The next fetch starts clean from a good tarball.
    code, out, err = rir(
        capsys, "fetch", "--dataset", "cifar10", "--root", root, "--from", synthetic_tarball()
    )
    assert code == 0 and target.exists()


def test_malicious_pickle_does_not_run_through_the_subprocess_cli(tmp_path, synthetic_tarball):
    bad = tmp_path / "bad.tar.gz"
    _code_running_pickle(synthetic_tarball(), bad)
    # The payload is live: a plain pickle.load, in a throwaway process, does run it.
    payload = members_of(bad)["cifar-10-batches-py/test_batch"]
    subprocess.run(
        [sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
        input=payload,
        check=True,
    )
    assert (tmp_path / "PWNED").exists()
    (tmp_path / "PWNED").unlink()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rir",
            "fetch",
            "--dataset",
            "cifar10",
            "--root",
            str(tmp_path / "d"),
            "--from",
            str(bad),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "refused to unpickle" in proc.stderr
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["fetch", "--dataset", "cifar1000", "--root", "ROOT"],
        ["synth", "--dataset", "svhn", "--out", "ROOT/x.tar.gz", "--n-train", "1", "--n-test", "1"],
        ["synth", "--dataset", "cifar10", "--out", "ROOT/x.tar.gz", "--n-train", "0", "--n-test", "1"],
        ["synth", "--dataset", "cifar10", "--out", "ROOT/x.tar.gz", "--n-train", "1", "--n-test", "-3"],
        ["synth", "--dataset", "cifar100", "--out", "ROOT/x.tar.gz", "--n-train", "10**9", "--n-test", "1"],
        ["synth", "--dataset", "cifar100", "--out", "ROOT/x.tar.gz", "--n-train", "400000", "--n-test", "1"],
        ["fetch", "--dataset", "cifar10", "--root", "ROOT", "--from", "ROOT/missing.tar.gz"],
        ["fetch", "--dataset", "cifar10", "--root", "ROOT", "--synthetic"],
    ],
)
def test_bad_arguments_are_one_line_exit_2(tmp_path, capsys, args):
    code, _, err = rir(capsys, *[a.replace("ROOT", str(tmp_path)) for a in args])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


# --- rir fetch: an unofficial real copy (--unofficial-md5) ------------------------------------------------
# The positive path, on the real JPEG copy of CIFAR-10, is in tests/test_real_photos.py.


def _bare_copy(src: Path, folder: Path) -> tuple[Path, str]:
    """The tarball without its rir synth sidecar, as a copy from elsewhere would come; (path, its md5)."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "copy.tar.gz"
    shutil.copy(src, copy)
    return copy, hashlib.md5(copy.read_bytes()).hexdigest()


def test_a_copy_short_of_the_official_counts_is_refused(tmp_path, capsys, synthetic_tarball):
    """An md5 vouches for bytes, not for a complete copy: 1,000 training images are not CIFAR-10's 50,000."""
    copy, md5 = _bare_copy(synthetic_tarball(), tmp_path / "src")
    code, _, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", tmp_path / "data", "--from", copy,
                       "--unofficial-md5", md5)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "1,000 train images" in err and "50,000" in err and "not a complete copy" in err, err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("case", ["wrong md5", "truncated", "truncated, its own md5"])
def test_an_unofficial_copy_keeps_the_refusals(
    tmp_path, capsys, synthetic_tarball, synthetic_data_root, case
):
    copy, md5 = _bare_copy(synthetic_tarball(), tmp_path / "src")
    if case != "wrong md5":
        copy.write_bytes(copy.read_bytes()[: copy.stat().st_size // 2])
    if case == "truncated, its own md5":
        md5 = hashlib.md5(copy.read_bytes()).hexdigest()
    root = tmp_path / "data"
    shutil.copytree(synthetic_data_root, root)
    before = snapshot(root)
    code, _, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", root, "--from", copy,
                       "--unofficial-md5", "0" * 32 if case == "wrong md5" else md5)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    words = "truncated or damaged" if case == "truncated, its own md5" else "the --unofficial-md5 given"
    assert words in err and str(copy) in err, err
    assert snapshot(root) == before


def test_the_official_md5_refusal_names_the_flag(tmp_path, capsys, synthetic_tarball):
    copy, _ = _bare_copy(synthetic_tarball(), tmp_path / "src")
    code, _, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", tmp_path / "d", "--from", copy)
    assert code == 2 and "(the official md5)" in err and "--unofficial-md5" in err, err


@pytest.mark.parametrize(
    "extra,words",
    [
        (["--unofficial-md5", "xyz"], "not an md5"),
        (["--unofficial-md5", DATASETS["cifar10"].md5], "is the official CIFAR-10 md5"),
        (["--unofficial-md5", "0" * 32, "--synthetic"], "exclude each other"),
        (["--unofficial-md5", "0" * 32], "--unofficial-md5 needs a tarball"),
        (["--unofficial-md5", "0" * 32, "--from", "SYNTH"], "a rir synth tarball"),
    ],
)
def test_bad_unofficial_arguments_are_one_line_exit_2(tmp_path, capsys, synthetic_tarball, extra, words):
    args = [str(synthetic_tarball()) if a == "SYNTH" else a for a in extra]
    code, _, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", tmp_path / "d", *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / "d").exists()


def test_the_data_folder_remembers_an_unofficial_copy_until_the_official_tarball_replaces_it(
    tmp_path, capsys, monkeypatch, synthetic_tarball
):
    """The pipeline's own fetch has no flag: the `.unofficial.md5` sidecar keeps the copy what it is, and an
    official tarball put in its place is taken as official (its md5 stands in for the real one here; the
    count check, which synthetic tarballs cannot pass, is test_a_copy_short_of_the_official_counts...)."""
    import dataclasses

    import rir.data as data_module

    monkeypatch.setattr(data_module, "_check_counts", lambda *a: None)
    copy, md5 = _bare_copy(synthetic_tarball(seed=0), tmp_path / "src")
    root, folder = tmp_path / "data", tmp_path / "data" / "cifar10"
    code, out, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", root, "--from", copy,
                         "--unofficial-md5", md5.upper())
    assert (code, err) == (0, "") and "UNOFFICIAL" in out, err
    assert (folder / "cifar-10-python.tar.gz.unofficial.md5").read_text().startswith(md5)
    assert not (folder / "cifar-10-python.tar.gz.md5").exists()
    assert (load_arrays(root, "cifar10").kind, load_arrays(root, "cifar10").source_md5) == ("unofficial", md5)
    code, out, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", root)
    assert (code, err) == (0, "") and "nothing to do" in out and "UNOFFICIAL" in out, (out, err)

    official, official_md5 = _bare_copy(synthetic_tarball(seed=1), tmp_path / "official")
    monkeypatch.setitem(data_module.DATASETS, "cifar10",
                        dataclasses.replace(data_module.DATASETS["cifar10"], md5=official_md5))
    shutil.copy(official, folder / "cifar-10-python.tar.gz")
    code, out, err = rir(capsys, "fetch", "--dataset", "cifar10", "--root", root)
    assert (code, err) == (0, "") and "(official)" in out, (out, err)
    assert not (folder / "cifar-10-python.tar.gz.unofficial.md5").exists()
    assert (load_arrays(root, "cifar10").kind, load_arrays(root, "cifar10").source_md5) == ("official",
                                                                                          official_md5)


def test_a_version_1_manifest_still_loads_with_its_kind(tmp_path, synthetic_data_root):
    """Data prepared before the data kinds (manifest_version 1) knew only the synthetic flag."""
    root = tmp_path / "data"
    shutil.copytree(synthetic_data_root, root)
    path = root / "cifar10" / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["data_kind"] == "synthetic" and manifest["manifest_version"] == 2
    del manifest["data_kind"]
    manifest["manifest_version"] = 1
    path.write_text(json.dumps(manifest))
    arrays = load_arrays(root, "cifar10")
    assert (arrays.kind, arrays.synthetic) == ("synthetic", True)
    manifest["data_kind"] = "official"  # contradicts the synthetic flag: refused, not trusted
    path.write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="contradicts data_kind official"):
        load_arrays(root, "cifar10")


# --- load_arrays --------------------------------------------------------------------------------------------


def test_load_arrays_detects_a_damaged_prepared_file_and_fetch_repairs_it(
    tmp_path, capsys, synthetic_data_root
):
    root = tmp_path / "data"
    shutil.copytree(synthetic_data_root, root)
    prepared = root / "cifar10" / "prepared.npz"
    data = bytearray(prepared.read_bytes())
    data[len(data) // 2] ^= 0x01
    prepared.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"prepared data .* is damaged.*run rir fetch again"):
        load_arrays(root, "cifar10")
    code, out, _ = rir(capsys, "fetch", "--dataset", "cifar10", "--root", root)  # the kept tarball suffices
    assert code == 0 and "prepared" in out
    assert load_arrays(root, "cifar10").train_images.shape == (1000, 32, 32, 3)


def test_load_arrays_without_data_names_the_fetch_command(tmp_path):
    with pytest.raises(UserError, match=f"rir fetch --dataset cifar100 --root {tmp_path}"):
        load_arrays(tmp_path, "cifar100")
    with pytest.raises(UserError, match="unknown dataset"):
        load_arrays(tmp_path, "imagenet")
