"""hrnet_core: one config-driven HRNet core (Sun et al. 2019; Wang et al. 2019).

Public API: ``load_config``, ``dump_config``, ``build_model``, ``load_checkpoint``, ``ConfigError``,
``CheckpointError`` and the typed config classes.
"""

from .checkpoint import CheckpointError, CheckpointReport, load_checkpoint, read_state_dict
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
from .loader import dump_config, load_config, load_config_text, parse_mapping
from .model import MAX_PARAMS, HRNet, build_model, build_on_meta, count_params, init_weights

__all__ = [
    "FUSION_PRESETS",
    "MAX_PARAMS",
    "CheckpointError",
    "CheckpointReport",
    "ConfigError",
    "HRNet",
    "HRNetConfig",
    "HeadConfig",
    "Stage1Config",
    "StageConfig",
    "StemConfig",
    "UpsampleConfig",
    "UserInputError",
    "build_model",
    "build_on_meta",
    "count_params",
    "dump_config",
    "fusion_preset",
    "init_weights",
    "load_checkpoint",
    "load_config",
    "load_config_text",
    "named_fusion",
    "parse_mapping",
    "read_state_dict",
]
