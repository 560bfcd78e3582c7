"""The HRNet config of a checkpoint, read from its tensor names and shapes alone.

``infer_config(state)`` takes a state_dict under official names (``hrnet_core.checkpoint_formats`` maps
timm and mmpose names first) and finds everything the weights determine:

- stem width (``conv1``), stage 1 block, units and planes (``layer1.*``);
- per stage 2..4: modules, block (``conv3`` present = BOTTLENECK), units and planes per branch
  (``stageS.M.branches.B.*``), and per module whether it fuses (``stageS.M.fuse_layers`` present);
- the head and with it the family: ``final_layer`` conv = V1 pose, ``last_layer`` = V2 seg, ``head`` = V2
  face (official face ``hrnet.py``), ``reduction_conv`` + ``fpn_convs`` = V2p det, ``conv3x3_ocr`` = OCR
  seg, ``incre_modules`` + ``classifier`` = cls; outputs, final conv kernel, pyramid levels, OCR widths.

What weights cannot tell is taken from the family's defaults (``hrnet_core.concise_yaml``) and named in
``NOT_IN_WEIGHTS``: the input size, the upsampling (nearest vs bilinear, align_corners: no tensors), the
name and description, and the unused ``outputs`` of a V2p head. The result is checked by building the
inferred model on the meta device and comparing every key and shape with the checkpoint: a state_dict of
no known HRNet raises ``NotAnHRNetError`` (one line) instead of returning a wrong config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from .checkpoint import CheckpointError, read_state_dict
from .checkpoint_formats import NameMapping, detect_mapping
from .concise_yaml import DEFAULT_INPUT_HW, DEFAULT_OUTPUTS, DEFAULT_UPSAMPLE
from .config import ConfigError, HeadConfig, HRNetConfig, Stage1Config, StageConfig, StemConfig
from .heads import cls_head_channels
from .model import build_on_meta

NOT_IN_WEIGHTS = ("input_size", "upsample.mode", "upsample.align_corners", "name", "description",
                  "head.outputs (v2p only)")


class NotAnHRNetError(CheckpointError):
    """A state_dict whose names and shapes are not those of an HRNet this project builds."""


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise NotAnHRNetError(f"no {key} tensor")
    return tuple(state[key].shape)


def _count(state: Mapping, prefix: str) -> int:
    """How many consecutive indices ``prefix0.``, ``prefix1.``... have keys."""
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pat.match(k))}
    n = 0
    while n in found:
        n += 1
    return n


def _layer(state: Mapping, prefix: str) -> tuple[str, int, int]:
    """(block, units, planes) of a ``make_layer`` Sequential at ``prefix`` (e.g. ``layer1.``)."""
    units = _count(state, prefix)
    if units == 0:
        raise NotAnHRNetError(f"no residual units under {prefix.rstrip('.')}")
    block = "BOTTLENECK" if f"{prefix}0.conv3.weight" in state else "BASIC"
    planes = _shape(state, f"{prefix}0.conv1.weight")[0]
    return block, units, planes


def _stages(state: Mapping) -> tuple[StageConfig, ...]:
    stages = []
    for s in range(2, 5):
        name = f"stage{s}"
        modules = _count(state, f"{name}.")
        if modules == 0:
            break
        layout = None
        fuse = []
        for m in range(modules):
            branches = _count(state, f"{name}.{m}.branches.")
            layers = [_layer(state, f"{name}.{m}.branches.{b}.") for b in range(branches)]
            this = (branches, {b for b, _, _ in layers}, tuple(n for _, n, _ in layers), tuple(c for _, _, c in layers))
            if layout is None:
                layout = this
            elif this != layout:
                raise NotAnHRNetError(f"{name} module {m} differs from module 0 (branches, blocks or widths)")
            fuse.append(any(k.startswith(f"{name}.{m}.fuse_layers.") for k in state))
        branches, blocks_used, units, channels = layout
        if len(blocks_used) != 1:
            raise NotAnHRNetError(f"{name} mixes BASIC and BOTTLENECK branches")
        stages.append(StageConfig(modules, blocks_used.pop(), units, channels, tuple(fuse), name=name))
    if not stages:
        raise NotAnHRNetError("no stage2 modules")
    return tuple(stages)


def _conv_out(state: Mapping, key: str) -> tuple[int, int]:
    """(out channels, kernel) of a conv weight."""
    shape = _shape(state, key)
    if len(shape) != 4:
        raise NotAnHRNetError(f"{key} is not a conv weight (shape {shape})")
    return shape[0], shape[-1]


def _higher_head(state: Mapping, branch0: int) -> HeadConfig:
    """HigherHRNet's head (``final_layers`` + ``deconv_layers``, ``hrnet_core.heads.higher``) from its shapes.

    The joints are the smallest prediction (a prediction with associative-embedding tags adds one map per
    joint, or one map); when every prediction has the same width none is taken to carry tags."""
    n_pred = _count(state, "final_layers.")
    outs = [_conv_out(state, f"final_layers.{i}.weight")[0] for i in range(n_pred)]
    kernel = _conv_out(state, "final_layers.0.weight")[1]
    joints = min(outs)
    extra = [o - joints for o in outs]
    tags = {e for e in extra if e}
    if len(tags) > 1 or (tags and tags.pop() not in (1, joints)):
        raise NotAnHRNetError(f"final_layers widths {outs} fit no joints + tags layout")
    with_ae = tuple(e > 0 for e in extra)
    tag_per_joint = not any(e == 1 for e in extra) or joints == 1
    channels, kernels, cats = [], [], []
    prev = branch0
    for i in range(n_pred - 1):
        c_in, c_out, k = _shape(state, f"deconv_layers.{i}.0.0.weight")[:3]
        cats.append(c_in != prev)
        channels.append(c_out)
        kernels.append(k)
        prev = c_out
    blocks = _count(state, "deconv_layers.0.") - 1 if n_pred > 1 else 0
    return HeadConfig(kind="higher", outputs=joints, final_conv_kernel=kernel, tag_per_joint=tag_per_joint,
                      with_ae=with_ae, deconv_channels=tuple(channels), deconv_kernels=tuple(kernels),
                      deconv_blocks=max(0, blocks), cat_output=tuple(cats))


def _head(state: Mapping, branch0: int) -> tuple[str, HeadConfig]:
    """(family, head config) from the head's keys; ``branch0``: channels of the 1/4 branch."""
    if "final_layers.0.weight" in state:
        return "pose", _higher_head(state, branch0)
    if "incre_modules.0.0.conv1.weight" in state:
        outputs = _shape(state, "classifier.weight")[0]
        return "cls", HeadConfig(kind="cls", outputs=outputs)
    if "reduction_conv.conv.weight" in state:
        channels = _conv_out(state, "reduction_conv.conv.weight")[0]
        levels = _count(state, "fpn_convs.")
        return "det", HeadConfig(kind="v2p", outputs=DEFAULT_OUTPUTS["det"], channels=channels, levels=levels)
    if "conv3x3_ocr.0.weight" in state:
        outputs = _conv_out(state, "cls_head.weight")[0]
        mid = _conv_out(state, "conv3x3_ocr.0.weight")[0]
        key_ch = _conv_out(state, "ocr_distri_head.object_context_block.f_pixel.0.weight")[0]
        return "seg", HeadConfig(kind="ocr", outputs=outputs, channels=mid, key_channels=key_ch)
    for family, attr in (("seg", "last_layer"), ("face", "head")):
        if f"{attr}.3.weight" in state:
            outputs, kernel = _conv_out(state, f"{attr}.3.weight")
            return family, HeadConfig(kind="v2", outputs=outputs, final_conv_kernel=kernel)
    if "final_layer.weight" in state:
        outputs, kernel = _conv_out(state, "final_layer.weight")
        return "pose", HeadConfig(kind="v1", outputs=outputs, final_conv_kernel=kernel)
    raise NotAnHRNetError("no known head (final_layer, final_layers, last_layer, head, reduction_conv, conv3x3_ocr "
                          "or incre_modules)")


def _check_fits(cfg: HRNetConfig, state: Mapping[str, torch.Tensor]) -> None:
    own = {k: tuple(v.shape) for k, v in build_on_meta(cfg).state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state.items()}
    missing = [k for k in own if k not in theirs and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in theirs if k not in own]
    shaped = [k for k in own if k in theirs and own[k] != theirs[k]]
    if missing or unexpected or shaped:
        first = (missing or unexpected or shaped)[0]
        raise NotAnHRNetError(f"the inferred {cfg.family}/{cfg.head.kind} model does not match: {len(missing)} "
                              f"missing, {len(unexpected)} unexpected, {len(shaped)} mis-shaped (first: {first})")


def infer_config(state: Mapping[str, torch.Tensor], name: str = "inferred") -> HRNetConfig:
    """The ``HRNetConfig`` whose model has exactly ``state``'s keys and shapes (official names).

    Fields the weights cannot tell (``NOT_IN_WEIGHTS``) get the family's defaults. Raises
    ``NotAnHRNetError`` (one line, no file name: callers add it) when ``state`` is no HRNet.
    """
    if not state:
        raise NotAnHRNetError("no tensors")
    stem = _shape(state, "conv1.weight")
    if len(stem) != 4 or stem[1] != 3:
        raise NotAnHRNetError(f"conv1.weight {stem} is not a 3-channel stem conv")
    block, units, planes = _layer(state, "layer1.")
    stages = _stages(state)
    family, head = _head(state, stages[-1].channels[0])
    if head.kind == "cls" and tuple(
        _shape(state, f"incre_modules.{i}.0.conv1.weight")[0] for i in range(len(stages) + 1)
    ) != cls_head_channels(len(stages) + 1):
        raise NotAnHRNetError("incre_modules widths differ from the official 32/64/128/256")
    try:
        cfg = HRNetConfig(
            family=family, stages=stages, head=head, input_hw=DEFAULT_INPUT_HW[family],
            stem=StemConfig(stem[0]), stage1=Stage1Config(block, units, planes),
            upsample=DEFAULT_UPSAMPLE[family], name=name,
        )
    except ConfigError as err:
        raise NotAnHRNetError(f"the inferred layout is not a valid HRNet ({err})") from None
    _check_fits(cfg, state)
    return cfg


def config_from_checkpoint(path: str | Path) -> tuple[HRNetConfig, NameMapping]:
    """The config of checkpoint file ``path`` (any format ``read_state_dict`` reads) and the naming scheme
    found; the config is named after the file. Raises ``CheckpointError`` / ``NotAnHRNetError`` naming it."""
    raw = read_state_dict(path)
    mapping = detect_mapping(raw)
    try:
        return infer_config(mapping.apply(raw), name=Path(path).name.split(".")[0] or "inferred"), mapping
    except NotAnHRNetError as err:
        raise NotAnHRNetError(f"{path}: not a known HRNet checkpoint ({err})") from None


__all__ = ["NOT_IN_WEIGHTS", "NotAnHRNetError", "config_from_checkpoint", "infer_config"]
