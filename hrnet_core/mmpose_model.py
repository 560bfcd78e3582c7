"""``config_from_mmpose``: an mmpose ``model`` dict (as ``hrnet_core.mmpose_config`` reads it from a ``.py``
config) as one of our typed configs.

- ``model``: mmpose 1.x ``TopdownPoseEstimator`` (``backbone`` + ``head``) or 0.x ``TopDown`` (``backbone`` +
  ``keypoint_head``); or a bare backbone dict (its ``type`` a backbone type). ``neck`` must be None.
- backbone ``type='HRNet'`` (``mmpose/models/backbones/hrnet.py``): an ``HRNetConfig`` of family ``pose`` with
  the V1 head: mmpose's HRNet has the official pose HRNet's parameter names (stem ``conv1``/``bn1``/``conv2``/
  ``bn2``, ``layer1``, ``transition1..3``, ``stage2..4``), its heatmap head a ``final_layer`` conv. The stages are
  translated into the official experiment YAML's ``MODEL.EXTRA`` and read by ``official_yaml.parse_official``
  (its checks, its errors, renamed back to the mmpose fields: ``model.backbone.extra.stage3.num_channels[1]``).
  ``extra.stage1`` (mmpose reads it: block, blocks and planes of ``layer1``) and ``extra.upsample`` (the fusion's
  ``nn.Upsample`` mode) are applied on top. ``extra.stage4.multiscale_output`` must be False (mmpose's default:
  the last module fuses into branch 0 only and the head reads that one map).
- other backbone types: the network registered for that mmpose type
  (``hrnet_core.networks.registry.spec_for_mmpose_type``) parses the backbone; the result is a
  ``hrnet_core.networks.model_config.NetworkConfig`` (head None for a bare backbone).
- heads: 1.x ``HeatmapHead`` with no deconvolutions (``deconv_out_channels=None``), no extra convs and a 1x1
  ``final_layer``; 0.x ``TopdownHeatmapSimpleHead`` with ``num_deconv_layers=0`` and ``extra.final_conv_kernel``
  1 or 3 (padding 1, as the official ``FINAL_CONV_KERNEL``). Deconvolution heads (SimpleBaseline's) map onto
  none of our heads and are refused. ``in_channels`` must be the channels of the map the head reads.
- input size: ``codec.input_size`` (1.x, ``(W, H)``), else 0.x ``data_cfg.image_size`` (``[W, H]``), else
  256x192 (H x W).

Keys that only training reads (``loss``, ``decoder``, ``init_cfg``, ``data_preprocessor``, ``test_cfg``,
``norm_eval``, ``with_cp`` ...) are ignored; unknown keys are refused (mmpose itself would raise on them), so a typo
never silently builds another model. Errors are ``ConfigError`` naming the mmpose field (``model.head.in_channels``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from .config import ConfigError, HeadConfig, HRNetConfig, positive_int
from .errors import quote
from .fields import check_keys as _keys
from .fields import dict_of as _mapping
from .fields import hw_pair
from .networks import load_builtin
from .networks.hrnet.mmpose_section import check_backbone, parse_backbone
from .networks.model_config import NetworkConfig
from .networks.registry import mmpose_types, spec_for_mmpose_type
from .safe_yaml import check_data

HRNET_TYPE = "HRNet"
MODEL_TYPES = {"TopdownPoseEstimator": "head", "TopDown": "keypoint_head"}  # mmpose 1.x, 0.x: the head's key
MODEL_KEYS = {
    "TopdownPoseEstimator": {"type", "backbone", "neck", "head", "train_cfg", "test_cfg", "data_preprocessor",
                             "init_cfg", "metainfo"},
    "TopDown": {"type", "backbone", "neck", "keypoint_head", "train_cfg", "test_cfg", "pretrained", "loss_pose"},
}
HEATMAP_HEAD_KEYS = {"type", "in_channels", "out_channels", "deconv_out_channels", "deconv_kernel_sizes",
                     "conv_out_channels", "conv_kernel_sizes", "final_layer", "loss", "decoder", "init_cfg"}
SIMPLE_HEAD_KEYS = {"type", "in_channels", "out_channels", "num_deconv_layers", "num_deconv_filters",
                    "num_deconv_kernels", "extra", "in_index", "input_transform", "align_corners", "loss_keypoint",
                    "train_cfg", "test_cfg", "upsample"}
HEAD_TYPES = ("HeatmapHead", "TopdownHeatmapSimpleHead")
DEFAULT_INPUT_HW = (256, 192)
_MISSING = object()


def _empty(value: Any) -> bool:
    """None or an empty list / tuple (mmpose's "no such layers")."""
    return value is None or (isinstance(value, (list, tuple)) and not value)


def _index(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"must be an integer, got {quote(value)}")
    return value


# ---- heads ---------------------------------------------------------------------------------------------
class _Head(NamedTuple):
    """What a head dict says: its input channels, outputs (unchecked), final kernel, the index of the backbone
    map it reads, and the field the kernel came from."""

    in_channels: int
    outputs: Any
    kernel: int
    index: int
    kernel_path: str


def _heatmap_head(head: Mapping, path: str) -> _Head:
    """mmpose 1.x ``HeatmapHead``: (in_channels, outputs, final kernel, index of the map it reads)."""
    _keys(head, HEATMAP_HEAD_KEYS, path)
    if "deconv_out_channels" not in head:
        raise ConfigError(f"{path}.deconv_out_channels", "is missing: mmpose's default is three 256-channel "
                          "deconvolutions (SimpleBaseline), which none of our heads builds; set it to None")
    if not _empty(head["deconv_out_channels"]):
        raise ConfigError(f"{path}.deconv_out_channels", f"{quote(head['deconv_out_channels'])}: deconvolution "
                          "layers map onto none of our heads (only deconv_out_channels=None is supported)")
    if not _empty(head.get("conv_out_channels")):
        raise ConfigError(f"{path}.conv_out_channels", f"{quote(head['conv_out_channels'])}: extra conv layers "
                          "before the final layer map onto none of our heads (only None is supported)")
    final = head.get("final_layer", {"kernel_size": 1})
    if final is None:
        raise ConfigError(f"{path}.final_layer", "None (no final conv) maps onto none of our heads; "
                          "use dict(kernel_size=1)")
    final = _mapping(final, f"{path}.final_layer")
    _keys(final, {"kernel_size", "type"}, f"{path}.final_layer")
    if final.get("type", "Conv2d") not in ("Conv2d", "Conv"):
        raise ConfigError(f"{path}.final_layer.type", f"must be 'Conv2d', got {quote(final.get('type'))}")
    kernel = final.get("kernel_size", 1)
    if isinstance(kernel, bool) or kernel != 1 or not isinstance(kernel, int):
        raise ConfigError(f"{path}.final_layer.kernel_size", f"must be 1 (mmpose's final conv has no padding), "
                          f"got {quote(kernel)}")
    in_ch = positive_int(head.get("in_channels"), f"{path}.in_channels")
    return _Head(in_ch, head.get("out_channels"), 1, -1, f"{path}.final_layer.kernel_size")


def _simple_head(head: Mapping, path: str) -> _Head:
    """mmpose 0.x ``TopdownHeatmapSimpleHead``: (in_channels, outputs, final kernel, index of the map it reads)."""
    _keys(head, SIMPLE_HEAD_KEYS, path)
    deconvs = head.get("num_deconv_layers", _MISSING)
    if deconvs is _MISSING:
        raise ConfigError(f"{path}.num_deconv_layers", "is missing: mmpose's default is 3 deconvolutions "
                          "(SimpleBaseline), which none of our heads builds; set num_deconv_layers=0")
    if isinstance(deconvs, bool) or deconvs != 0:
        raise ConfigError(f"{path}.num_deconv_layers", f"{quote(deconvs)}: deconvolution layers map onto none "
                          "of our heads (only 0 is supported)")
    if head.get("input_transform") is not None:
        raise ConfigError(f"{path}.input_transform", f"{quote(head['input_transform'])}: only None (one map) is "
                          "supported")
    if head.get("upsample", 0) != 0:
        raise ConfigError(f"{path}.upsample", f"{quote(head['upsample'])}: only 0 (no upsampling) is supported")
    extra = head.get("extra")
    kernel = 1
    if extra is not None:
        extra = _mapping(extra, f"{path}.extra")
        _keys(extra, {"final_conv_kernel", "num_conv_layers", "num_conv_kernels"}, f"{path}.extra")
        if extra.get("num_conv_layers", 0) != 0:
            raise ConfigError(f"{path}.extra.num_conv_layers", f"{quote(extra['num_conv_layers'])}: extra conv "
                              "layers map onto none of our heads (only 0 is supported)")
        kernel = extra.get("final_conv_kernel", 1)
        if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel not in (1, 3):
            raise ConfigError(f"{path}.extra.final_conv_kernel", f"must be 1 or 3, got {quote(kernel)} (0, "
                              "mmpose's identity final layer, maps onto none of our heads)")
    in_ch = positive_int(head.get("in_channels"), f"{path}.in_channels")
    return _Head(in_ch, head.get("out_channels"), kernel, _index(head.get("in_index", 0), f"{path}.in_index"),
                 f"{path}.extra.final_conv_kernel")


def _head(head: Any, path: str) -> _Head:
    head = _mapping(head, path)
    kind = head.get("type")
    if kind == "HeatmapHead":
        return _heatmap_head(head, path)
    if kind == "TopdownHeatmapSimpleHead":
        return _simple_head(head, path)
    raise ConfigError(f"{path}.type", f"unknown head {quote(kind)}; supported: HeatmapHead (mmpose 1.x, no "
                      "deconvolutions) and TopdownHeatmapSimpleHead (0.x, num_deconv_layers=0)")


def _check_in_channels(in_ch: int, index: int, out_channels: tuple[int, ...], path: str, what: str) -> None:
    """The head must read the backbone's last map (the one our heads take) and match its channels."""
    n = len(out_channels)
    if not -n <= index < n or index % n != n - 1:
        raise ConfigError(f"{path}.in_index", f"{index} selects map {index} of the backbone's {n}; the heatmap head "
                          f"reads the last one ({n - 1} or -1)")
    if in_ch != out_channels[-1]:
        raise ConfigError(f"{path}.in_channels", f"is {in_ch} but the backbone's output ({what}) has "
                          f"{out_channels[-1]} channels")


# ---- input size ----------------------------------------------------------------------------------------
def _input_size(codec: Any, data_cfg: Any) -> tuple[tuple[int, int], str]:
    """``(H, W)`` and the field it came from."""
    if codec is not None:
        codec = _mapping(codec, "codec")
        if "input_size" not in codec:
            raise ConfigError("codec.input_size", "is missing")
        return hw_pair(codec["input_size"], "codec.input_size", order="wh"), "codec.input_size"
    if data_cfg is not None:
        data_cfg = _mapping(data_cfg, "data_cfg")
        if "image_size" in data_cfg:
            return hw_pair(data_cfg["image_size"], "data_cfg.image_size", order="wh"), "data_cfg.image_size"
    return DEFAULT_INPUT_HW, "input_size"


# ---- HRNet ---------------------------------------------------------------------------------------------
def _hrnet(bb: Mapping, bb_path: str, head: Any, head_path: str, input_hw: tuple[int, int], size_path: str,
           name: str) -> HRNetConfig:
    extra = check_backbone(bb, bb_path)
    if head is None:
        raise ConfigError(head_path, "is missing: an HRNetConfig always has a head (give "
                          "head=dict(type='HeatmapHead', in_channels=..., out_channels=..., deconv_out_channels=None))")
    info = _head(head, head_path)
    cfg = parse_backbone(extra, bb_path, outputs=info.outputs, kernel=info.kernel, kernel_path=info.kernel_path,
                         head_path=head_path, input_hw=input_hw, size_path=size_path, name=name)
    if cfg.upsample.mode == "bilinear" and any(v % cfg.min_input_multiple for v in cfg.input_hw):
        raise ConfigError(size_path, f"{cfg.input_hw[0]}x{cfg.input_hw[1]} must be a multiple of "
                          f"{cfg.min_input_multiple} in both sides: mmpose's fusion upsamples by a scale factor")
    _check_in_channels(info.in_channels, info.index, (cfg.stages[-1].out_channels[0],), head_path,
                       "stage4 num_channels[0] x block expansion")
    return cfg


# ---- other networks ------------------------------------------------------------------------------------
def _network(spec, bb: Mapping, bb_path: str, head: Any, head_path: str, input_hw: tuple[int, int],
             size_path: str, name: str) -> NetworkConfig:
    section = spec.parse({k: v for k, v in bb.items() if k != "type"}, bb_path)
    head_cfg = None
    head_fields: dict[str, str] = {}
    if head is not None:
        info = _head(head, head_path)
        out = tuple(spec.out_channels(section))
        _check_in_channels(info.in_channels, info.index, out, head_path, f"{spec.title}'s last map")
        head_fields = {"head.outputs": f"{head_path}.out_channels", "head.final_conv_kernel": info.kernel_path}
        if info.outputs is None:
            raise ConfigError(f"{head_path}.out_channels", "is missing")
        try:
            head_cfg = HeadConfig(kind="v1", outputs=info.outputs, final_conv_kernel=info.kernel)
        except ConfigError as err:
            raise ConfigError(head_fields.get(err.field, err.field), err.message) from None
    try:
        return NetworkConfig(arch=spec.name, backbone=section, head=head_cfg, family="pose", input_hw=input_hw,
                             name=name)
    except ConfigError as err:
        field = size_path if err.field.startswith("input_size") else head_fields.get(err.field, err.field)
        raise ConfigError(field, err.message) from None


def _backbone_types() -> tuple[str, ...]:
    types = [HRNET_TYPE] + [t for t in mmpose_types() if t != HRNET_TYPE]
    return tuple(types)


def config_from_mmpose(mapping: Mapping, *, codec: Mapping | None = None, data_cfg: Mapping | None = None,
                       name: str = "mmpose") -> HRNetConfig | NetworkConfig:
    """Our typed config of an mmpose ``model`` dict (1.x ``TopdownPoseEstimator``, 0.x ``TopDown``) or a bare
    backbone dict; ``codec`` (1.x) or ``data_cfg`` (0.x) give the input size. See the module docstring.

    Returns an ``HRNetConfig`` for mmpose's ``HRNet``, a ``NetworkConfig`` for a registered network (Lite-HRNet,
    HRFormer ...). Raises ``ConfigError`` naming the mmpose field (``model.backbone.type``).
    """
    load_builtin()  # the network folders register their mmpose types on import
    model = _mapping(mapping, "model")
    check_data(model, "model")
    for value, where in ((codec, "codec"), (data_cfg, "data_cfg")):
        if value is not None:
            check_data(_mapping(value, where), where)
    input_hw, size_path = _input_size(codec, data_cfg)
    kind = model.get("type")
    types = _backbone_types()
    if "backbone" in model or kind in MODEL_TYPES:
        if kind not in MODEL_TYPES:
            raise ConfigError("model.type", f"unknown model {quote(kind)}; supported: top-down heatmap models "
                              f"({', '.join(MODEL_TYPES)})")
        _keys(model, MODEL_KEYS[kind], "model")
        if model.get("neck") is not None:
            raise ConfigError("model.neck", f"{quote(model['neck'])}: only None (no neck) is supported")
        head_path = f"model.{MODEL_TYPES[kind]}"
        head = model.get(MODEL_TYPES[kind])
        if "backbone" not in model:
            raise ConfigError("model.backbone", "is missing")
        bb_path = "model.backbone"
        bb = _mapping(model["backbone"], bb_path)
    elif isinstance(kind, str) and kind in types:
        head_path, head, bb_path, bb = "model.head", None, "model", model
    else:
        raise ConfigError("model.type", f"unknown {quote(kind)}; expected a model ({', '.join(MODEL_TYPES)}) or a "
                          f"backbone ({', '.join(types)})")
    bb_type = bb.get("type")
    if bb_type == HRNET_TYPE:
        if bb is model:
            raise ConfigError("model", "a bare HRNet backbone has no head, and an HRNetConfig always has one: give "
                              "the whole model = dict(type='TopdownPoseEstimator', backbone=..., "
                              "head=dict(type='HeatmapHead', ...))")
        return _hrnet(bb, bb_path, head, head_path, input_hw, size_path, name)
    spec = spec_for_mmpose_type(bb_type) if isinstance(bb_type, str) else None
    if spec is None:
        raise ConfigError(f"{bb_path}.type", f"unknown backbone {quote(bb_type)}; supported: {', '.join(types)}")
    return _network(spec, bb, bb_path, head, head_path, input_hw, size_path, name)


__all__ = ["HEAD_TYPES", "MODEL_TYPES", "config_from_mmpose"]
