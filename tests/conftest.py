"""Shared fixtures: synthetic CIFAR data made and prepared by the real `rir synth` and `rir fetch` commands;
and the tests' fault injection (tests/faults.py) and GPU-box observers (tests/gpubox.py), installed before any
test module binds `rir.train.train`.

Session-scoped and cached, so every test module that needs data pays for it once. Treat the returned folders
as read-only; a test that changes data copies it first (`shutil.copytree`).
"""

from __future__ import annotations

import os
from pathlib import Path

import faults
import gpubox
import pytest

from rir.cli import main

faults.install()
gpubox.install()

# The tests run on three pytest-xdist workers (pyproject.toml: `-n 3 --dist loadgroup`): many of them wait on
# SLURM, Snakemake or a paused run more than they compute. The tests that share an expensive session fixture
# go to one worker together, so it is built once; the SLURM tests share one small cluster. The longest groups
# come first, one to each worker; the other tests go one by one to whichever worker is free.
SHARED = {"slurm": "slurm", "quickstart": "workspace", "snakemade": "workspace", "sliced": "sliced",
          "sliced_by_snakemake": "sliced"}
FIRST = ("slurm", "workspace", "sliced")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    group = {}
    for item in items:
        names = [SHARED[name] for name in getattr(item, "fixturenames", ()) if name in SHARED]
        if names:
            group[item] = min(names, key=FIRST.index)
            item.add_marker(pytest.mark.xdist_group(group[item]))
    items.sort(key=lambda item: FIRST.index(group[item]) if item in group else len(FIRST))


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test leaves os.environ as it found it. `rir train`'s process-wide GPU lease narrows
    CUDA_VISIBLE_DEVICES for the rest of its process by design (rir.gpu.apply_gpu_lease); run in-process by
    a test, it would otherwise make every later Snakemake run in the session see one GPU."""
    before = dict(os.environ)
    yield
    if os.environ != before:
        os.environ.clear()
        os.environ.update(before)


def _rir(*args: str) -> None:
    code = main(list(args))
    assert code == 0, f"rir {' '.join(args)} exited with {code}"


@pytest.fixture(scope="session")
def synthetic_tarball(tmp_path_factory):
    """Factory: `synthetic_tarball(dataset="cifar10", n_train=1000, n_test=500, seed=0)` -> path of a
    synthetic tarball in the official layout, with its `.md5` sidecar beside it (one per argument set)."""
    made: dict[tuple, Path] = {}

    def make(dataset: str = "cifar10", n_train: int = 1000, n_test: int = 500, seed: int = 0) -> Path:
        key = (dataset, n_train, n_test, seed)
        if key not in made:
            out = tmp_path_factory.mktemp("synth") / f"{dataset}-{n_train}-{n_test}-{seed}.tar.gz"
            _rir(
                "synth",
                "--dataset",
                dataset,
                "--out",
                str(out),
                "--n-train",
                str(n_train),
                "--n-test",
                str(n_test),
                "--seed",
                str(seed),
            )
            made[key] = out
        return made[key]

    return make


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory, synthetic_tarball):
    """Factory: `synthetic_data(dataset="cifar10", n_train=1000, n_test=500, seed=0)` -> a data root holding
    that synthetic dataset fetched and prepared (`rir.data.load_arrays(root, dataset)` reads it)."""
    made: dict[tuple, Path] = {}

    def make(dataset: str = "cifar10", n_train: int = 1000, n_test: int = 500, seed: int = 0) -> Path:
        key = (dataset, n_train, n_test, seed)
        if key not in made:
            root = tmp_path_factory.mktemp("data")
            tarball = synthetic_tarball(dataset, n_train, n_test, seed)
            _rir("fetch", "--dataset", dataset, "--root", str(root), "--from", str(tarball))
            made[key] = root
        return made[key]

    return make


@pytest.fixture(scope="session")
def synthetic_data_root(synthetic_data) -> Path:
    """A data root with synthetic CIFAR-10 prepared: 1000 training and 500 test images, seed 0."""
    return synthetic_data("cifar10", 1000, 500, 0)


@pytest.fixture(scope="session")
def quickstart(tmp_path_factory) -> dict:
    """README's command 1 run once, as a new user runs it, on Debian's python3 (tests/pipeline.py,
    `readme_command_1`); None where /usr/bin/python3 is absent or older than 3.11 (CI's machines have
    Debian 12's)."""
    from pipeline import readme_command_1, system_python_supported

    if os.environ.get("RIR_TEST_SNAKEMADE"):  # a developer's run reusing a workspace: no quick start
        return None

    return readme_command_1(tmp_path_factory.mktemp("quickstart")) if system_python_supported() else None


@pytest.fixture(scope="session")
def snakemade(tmp_path_factory, quickstart) -> Path:
    """A fresh git copy of the repository in which the smoke pipeline ran to the end: README's command 1
    (`snakemake --cores all --config profile=smoke`) in the quickstart fixture's clone, or, where Debian's
    Python is absent (or too old), `snakemake --cores 2 --config profile=smoke` in a fresh copy
    (tests/pipeline.py).
    Shared by the pipeline, report and fault tests: copy it before changing it. The clone's virtual
    environment is moved out of it first, so that copies stay small; its checks have run by then."""
    from pipeline import fresh_copy, snakemake

    reuse = os.environ.get("RIR_TEST_SNAKEMADE")  # a developer's finished smoke workspace (DEVELOPING.md)
    if reuse:
        return Path(reuse)
    if quickstart is None:
        repo = fresh_copy(tmp_path_factory.mktemp("snakemade"))
        snakemake(repo)
        return repo
    repo = quickstart["repo"]
    assert quickstart["returncode"] == 0, f"README's command 1 failed:\n{quickstart['log']}"
    venv = repo / ".venv"
    if venv.exists():
        venv.rename(repo.parent / "clone-venv")  # no longer runnable (its scripts name this path): not needed
    return repo


def _sliced(tmp_path_factory, by: str) -> Path:
    from pipeline import SMOKE_DVC, cut_smoke_profile, fresh_copy, sh, snakemake

    repo = fresh_copy(tmp_path_factory.mktemp(f"sliced-{by}"))
    cut_smoke_profile(repo)
    if by == "dvc":  # a start from DVC, as docs/workflow.md says: the profile's stage, then `dvc repro`
        sh(repo, "rir", "dvc", "smoke")
        sh(repo, "dvc", "repro", SMOKE_DVC)
    else:
        snakemake(repo)
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", f"{by} ran")
    return repo


@pytest.fixture(scope="session")
def sliced(tmp_path_factory) -> Path:
    """A slice of the smoke profile with short runs (tests/pipeline.py, `cut_smoke_profile`), made from
    scratch by `rir dvc smoke` and `dvc repro` of its pipeline in a fresh copy of the working tree and
    committed to git (dvc.lock and the .dvc files too), as a user's workspace is after a first run. Copy it
    before changing it."""
    return _sliced(tmp_path_factory, "dvc")


@pytest.fixture(scope="session")
def sliced_by_snakemake(tmp_path_factory) -> Path:
    """The same slice made by `snakemake --cores 2 --config profile=smoke` (whose end records it in DVC),
    committed to git. Copy it before changing it."""
    return _sliced(tmp_path_factory, "snakemake")
