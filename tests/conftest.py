"""Shared paths and fixtures: the project root, ``../shared`` (official YAMLs, manifests, fixtures), the presets,
and a real trained run folder, made once per session by the smoke ablation.

Test modules import the constants (``from conftest import ROOT, SHARED, PRESETS``) where they parametrize at
import time; the fixtures ``root``, ``shared`` and ``presets`` give the same paths to a test."""

from __future__ import annotations

import base64
import ctypes
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PRESETS = sorted((ROOT / "configs").glob("*.yaml"))  # the classic HRNet presets
# The presets of the other registered networks (Lite-HRNet, HRFormer: hrnet_core.networks), one folder apart.
NETWORK_PRESETS = sorted((ROOT / "configs" / "networks").glob("*.yaml"))
TRAINED_RUN = "smoke"
# Local iteration on a busy machine: copy the runs folder of an earlier `ablate --smoke --out DIR/smoke`
# instead of training again (CI leaves it unset and trains).
REUSE_ENV = "HRNET_EXPLORER_TEST_TRAINED_RUNS"


SVG_URI = "data:image/svg+xml;base64,"


def diagrams(at) -> list[str]:
    """What an AppTest page draws as diagrams: the SVG that the server's Graphviz laid out (an image's data URI,
    ``app.common.show_diagram``), or the DOT of a chart the browser lays out (``st.graphviz_chart``)."""
    svgs = [base64.b64decode(img.url[len(SVG_URI):]).decode("utf-8")
            for el in at.get("image") for img in el.proto.imgs if img.url.startswith(SVG_URI)]
    return svgs + [chart.proto.spec for chart in at.get("graphviz_chart")]


def import_timm():
    """timm (a dev dependency: the parity tests), importable beside a CPU-only torch.

    timm needs torchvision, and the registry's torchvision wheels are built against CUDA torch: beside torch's CPU
    build their ``_C`` extension cannot load (``libc10_cuda.so``), and torchvision 0.28's ``_meta_registrations``
    then registers fake kernels for ``torchvision::nms`` / ``qnms`` unguarded, so ``import torchvision`` raises
    RuntimeError. Declaring those two schemas first lets it import; timm's HRNet uses none of torchvision's ops.
    Where the extension loads (a CUDA torch, a CPU torchvision) nothing is declared."""
    spec = importlib.util.find_spec("torchvision")
    if spec is not None and spec.origin and "torchvision" not in sys.modules:
        ext = sorted(Path(spec.origin).parent.glob("_C*.so"))
        try:
            if ext:
                ctypes.CDLL(str(ext[0]))
        except OSError:
            lib = torch.library.Library("torchvision", "DEF")
            lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _TORCHVISION_SCHEMAS.append(lib)  # a Library object unregisters its schemas when collected
    import timm

    return timm


_TORCHVISION_SCHEMAS: list = []


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``):
    two xdist workers on two cores, and oversubscribed OpenMP threads spin and make small forwards tens of
    times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def app_dirs(tmp_path, monkeypatch) -> Path:
    """The app's runs and saved configs in this test's ``tmp_path`` (``HRNET_EXPLORER_RUNS``, ``..._USER_CONFIGS``),
    so an AppTest writes nothing into the project or the home folder. A module of app tests takes it for every
    test: ``pytestmark = pytest.mark.usefixtures("app_dirs")``."""
    from analysis.settings import RUNS_ENV, USER_CONFIGS_ENV

    monkeypatch.setenv(RUNS_ENV, str(tmp_path / "runs"))
    monkeypatch.setenv(USER_CONFIGS_ENV, str(tmp_path / "configs"))
    return tmp_path


@pytest.fixture(scope="session")
def root() -> Path:
    """The project root (the worktree pytest runs in)."""
    return ROOT


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared``: official YAMLs, manifests and numeric fixtures (read there, never copied in)."""
    return SHARED


@pytest.fixture(scope="session")
def presets() -> list[Path]:
    """Every preset ``configs/*.yaml``, sorted by name."""
    return PRESETS


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> Path:
    """A runs folder holding ``smoke/`` from ``hrnet-explorer ablate --smoke`` (3 variants x seed 0, each
    with model.yaml and last.pth, its built-in dataset in the session's cache). ``all/seed0`` also gets a
    best.pth (a copy of its last.pth) so both kinds of run checkpoint are there."""
    tmp = tmp_path_factory.mktemp("trained")
    runs = tmp / "runs"
    if os.environ.get(REUSE_ENV):
        shutil.copytree(Path(os.environ[REUSE_ENV]) / TRAINED_RUN, runs / TRAINED_RUN)
    else:
        env = dict(os.environ, HRNET_EXPLORER_CACHE=str(tmp / "cache"), PYTHONPATH=str(ROOT))
        proc = subprocess.run([sys.executable, "-m", "analysis.cli", "ablate", "--smoke", "--out",
                               str(runs / TRAINED_RUN)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
    job = runs / TRAINED_RUN / "all" / "seed0"
    if not (job / "best.pth").exists():  # until the trainer keeps best.pth itself
        shutil.copyfile(job / "last.pth", job / "best.pth")
    return runs
