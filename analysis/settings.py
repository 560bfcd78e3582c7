"""Every folder and ``HRNET_EXPLORER_*`` environment variable of hrnet-explorer, read in one place.

Functions (not constants) for anything an environment variable can change, so a test or a launcher that sets the
variable after import is honoured.

=================================  ====================================================================
variable                           meaning (default)
=================================  ====================================================================
``HRNET_EXPLORER_RUNS``            ablation run folders (``<project>/runs``)
``HRNET_EXPLORER_CACHE``           built-in dataset cache, ``/builtin`` below it (``<project>/.cache/hrnet-explorer``)
``HRNET_EXPLORER_SHARED``          reference material: official YAMLs, model_zoo.md (``<project>/../shared``)
``HRNET_EXPLORER_USER_CONFIGS``    configs saved from the app (``~/.hrnet-explorer/configs``)
``HRNET_EXPLORER_CHECKPOINT_DIRS`` extra folders checkpoint paths may lie in (``os.pathsep``-separated)
``HRNET_EXPLORER_DATA_DIRS``       extra folders the app's COCO data folders may lie in (besides ``<project>/data``)
``HRNET_EXPLORER_DEBUG``           ``1``: the CLI shows the traceback of an internal error
=================================  ====================================================================
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PRESET_DIR = PROJECT_ROOT / "configs"
RECIPE_DIR = PRESET_DIR / "recipes"

RUNS_ENV = "HRNET_EXPLORER_RUNS"
CACHE_ENV = "HRNET_EXPLORER_CACHE"
SHARED_ENV = "HRNET_EXPLORER_SHARED"
USER_CONFIGS_ENV = "HRNET_EXPLORER_USER_CONFIGS"
CHECKPOINT_DIRS_ENV = "HRNET_EXPLORER_CHECKPOINT_DIRS"
DATA_DIRS_ENV = "HRNET_EXPLORER_DATA_DIRS"
DEBUG_ENV = "HRNET_EXPLORER_DEBUG"


def runs_root() -> Path:
    """``$HRNET_EXPLORER_RUNS`` or ``runs/`` in the project."""
    env = os.environ.get(RUNS_ENV)
    return Path(env).expanduser() if env else PROJECT_ROOT / "runs"


def cache_base() -> Path:
    """``$HRNET_EXPLORER_CACHE`` or ``<project>/.cache/hrnet-explorer``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else PROJECT_ROOT / ".cache" / "hrnet-explorer"


def shared_dir() -> Path:
    """``$HRNET_EXPLORER_SHARED`` or ``../shared`` next to the project."""
    env = os.environ.get(SHARED_ENV)
    return Path(env) if env else PROJECT_ROOT.parent / "shared"


def user_config_dir() -> Path:
    """Where saved configs go: ``$HRNET_EXPLORER_USER_CONFIGS`` or ``~/.hrnet-explorer/configs``."""
    env = os.environ.get(USER_CONFIGS_ENV)
    return Path(env).expanduser() if env else Path.home() / ".hrnet-explorer" / "configs"


def checkpoint_dirs(env: dict | None = None) -> list[Path]:
    """The extra checkpoint folders named in ``$HRNET_EXPLORER_CHECKPOINT_DIRS`` (``os.pathsep``-separated)."""
    return _folder_list(CHECKPOINT_DIRS_ENV, env)


def project_data_dir() -> Path:
    """``<project>/data``: where the app looks for COCO folders without ``$HRNET_EXPLORER_DATA_DIRS``."""
    return PROJECT_ROOT / "data"


def data_dirs(env: dict | None = None) -> list[Path]:
    """The extra data folders named in ``$HRNET_EXPLORER_DATA_DIRS`` (``os.pathsep``-separated)."""
    return _folder_list(DATA_DIRS_ENV, env)


def _folder_list(name: str, env: dict | None) -> list[Path]:
    env = os.environ if env is None else env
    return [Path(p).expanduser() for p in env.get(name, "").split(os.pathsep) if p.strip()]


def debug() -> bool:
    """Whether ``$HRNET_EXPLORER_DEBUG`` asks for tracebacks."""
    return bool(os.environ.get(DEBUG_ENV))
