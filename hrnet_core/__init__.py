"""hrnet_core: one config-driven HRNet core (Sun et al. 2019; Wang et al. 2019).

Public API: ``load_config``, ``dump_config``, ``build_model``, ``load_checkpoint``, ``infer_config`` /
``config_from_checkpoint`` (a config from weights alone), ``architecture`` (the one description of a built
model: parts, prefixes, shapes, edges; ``hrnet_core.graph``), ``ConfigError``, ``CheckpointError`` and the
typed config classes.
"""

from .checkpoint import CheckpointError, CheckpointReport, load_checkpoint, read_state_dict
from .checkpoint_formats import NameMapping, detect_mapping
from .config import (
    FUSION_PRESETS,
    ConfigError,
    HeadConfig,
    HRNetConfig,
    Stage1Config,
    StageConfig,
    StemConfig,
    UpsampleConfig,
    fusion_preset,
    named_fusion,
)
from .errors import UserInputError
from .graph import ArchGraph, Part, architecture
from .infer_config import NOT_IN_WEIGHTS, NotAnHRNetError, config_from_checkpoint, infer_config
from .loader import dump_config, load_config, load_config_text, parse_mapping
from .mmpose_model import config_from_mmpose
from .model import MAX_PARAMS, HRNet, build_model, build_on_meta, count_params, init_weights

__all__ = [
    "ArchGraph",
    "Part",
    "architecture",
    "FUSION_PRESETS",
    "MAX_PARAMS",
    "NOT_IN_WEIGHTS",
    "CheckpointError",
    "CheckpointReport",
    "ConfigError",
    "HRNet",
    "HRNetConfig",
    "HeadConfig",
    "NameMapping",
    "NotAnHRNetError",
    "Stage1Config",
    "StageConfig",
    "StemConfig",
    "UpsampleConfig",
    "UserInputError",
    "build_model",
    "build_on_meta",
    "config_from_checkpoint",
    "config_from_mmpose",
    "count_params",
    "detect_mapping",
    "dump_config",
    "fusion_preset",
    "infer_config",
    "init_weights",
    "load_checkpoint",
    "load_config",
    "load_config_text",
    "named_fusion",
    "parse_mapping",
    "read_state_dict",
]
