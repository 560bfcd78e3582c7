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

Bounded before any work: the key names are read once (``KeyIndex``, linear in the number of keys) and a
state_dict is refused as soon as its names imply more than the config's limits allow: more than
``MAX_KEYS`` tensors, a name longer than ``MAX_KEY_CHARS``, a stage other than 2..``MAX_STAGES``, a
module index of ``MAX_MODULES`` or more, a branch index of ``MAX_STAGES`` or more, a residual unit index
of ``MAX_BLOCKS`` or more, or any other index above ``MAX_INDEX``. A crafted file declaring 20,000
modules is answered in milliseconds, before any model is built.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from .checkpoint import CheckpointError, read_state_dict
from .checkpoint_formats import NameMapping, detect_mapping
from .concise_yaml import DEFAULT_INPUT_HW, DEFAULT_OUTPUTS, DEFAULT_UPSAMPLE
from .config import (
    MAX_BLOCKS,
    MAX_MODULES,
    MAX_STAGES,
    ConfigError,
    HeadConfig,
    HRNetConfig,
    Stage1Config,
    StageConfig,
    StemConfig,
)
from .errors import quote
from .heads import cls_head_channels
from .model import build_on_meta

# An HRNet within the bounds has at most hrnet_core.budget.MAX_CONV_LAYERS (1000) backbone convolutions of
# 6 tensors each (a bias-free conv + BatchNorm's weight, bias, running mean and variance, batch counter)
# plus its head (the largest, HigherHRNet with MAX_BLOCKS units per deconvolution, about 1,600): under
# 8,000 tensors; the official models have under 2,000.
MAX_KEYS = 12_000
MAX_KEY_CHARS = 256  # the official names are under 70 characters (mmpose prefixes add about 15)
MAX_INDEX = MAX_BLOCKS + 1  # any other index: deconv_layers.0.0 is the deconvolution, then MAX_BLOCKS units
_STAGE = re.compile(r"stage(\d+)")

NOT_IN_WEIGHTS = ("input_size", "upsample.mode", "upsample.align_corners", "name", "description",
                  "head.outputs (v2p only)")


class NotAnHRNetError(CheckpointError):
    """A state_dict whose names and shapes are not those of an HRNet this project builds."""


class KeyIndex:
    """The key names of a state_dict read once: for every prefix ``a.b.`` the integer indices that follow it
    (``a.b.0.``, ``a.b.1.``, ...) and the set of all dotted prefixes. Building it is linear in the number of
    keys (each at most ``MAX_KEY_CHARS``); lookups are O(1).

    Raises ``NotAnHRNetError`` at the first key that no HRNet within the config's bounds has (module
    docstring), so a crafted file costs at most one pass over its names.
    """

    def __init__(self, state: Mapping[str, torch.Tensor]):
        self.state = state
        self.indices: dict[str, set[int]] = {}
        self.prefixes: set[str] = set()
        if len(state) > MAX_KEYS:
            raise NotAnHRNetError(f"{len(state):,} tensors; an HRNet within this project's bounds has at most "
                                  f"{MAX_KEYS:,}")
        for key in state:
            self._add(key)

    def _add(self, key: object) -> None:
        if not isinstance(key, str):
            raise NotAnHRNetError(f"a tensor name that is not a string ({quote(key, 40)})")
        if len(key) > MAX_KEY_CHARS:
            raise NotAnHRNetError(f"a tensor name of {len(key):,} characters ({quote(key, 60, bare=True)}); "
                                  f"HRNet's are at most {MAX_KEY_CHARS}")
        parts = key.split(".")
        prefix = ""
        for i, part in enumerate(parts[:-1]):
            if part.isascii() and part.isdigit():
                _check_index(key, parts, i, int(part))
                self.indices.setdefault(prefix, set()).add(int(part))
            prefix += part + "."
            self.prefixes.add(prefix)

    def count(self, prefix: str) -> int:
        """How many consecutive indices ``prefix0.``, ``prefix1.``... have keys."""
        found = self.indices.get(prefix, ())
        n = 0
        while n in found:
            n += 1
        return n

    def has_prefix(self, prefix: str) -> bool:
        """Whether some key starts with ``prefix`` (which ends in ``.``)."""
        return prefix in self.prefixes

    def shape(self, key: str) -> tuple[int, ...]:
        """The shape of tensor ``key``; ``NotAnHRNetError`` when there is none."""
        if key not in self.state:
            raise NotAnHRNetError(f"no {key} tensor")
        return tuple(self.state[key].shape)


def _check_index(key: str, parts: list[str], i: int, index: int) -> None:
    """``NotAnHRNetError`` when ``index`` (the ``i``-th part of ``key``) implies more stages, modules,
    branches or residual units than the config allows."""
    stage = _STAGE.fullmatch(parts[0])
    if stage and not 2 <= int(stage.group(1)) <= MAX_STAGES:
        raise NotAnHRNetError(f"{quote(key, 60, bare=True)}: an HRNet has stages 2 to {MAX_STAGES} only")
    if stage and i == 1:
        limit, what = MAX_MODULES, f"modules in {parts[0]}"
    elif stage and i == 3 and parts[2] == "branches":
        limit, what = MAX_STAGES, "branches"
    elif (stage and i == 4 and parts[2] == "branches") or (parts[0] == "layer1" and i == 1):
        limit, what = MAX_BLOCKS, "residual units per branch"
    else:
        limit, what = MAX_INDEX + 1, "entries in one sequence"
    if index >= limit:
        raise NotAnHRNetError(f"{quote(key, 60, bare=True)}: index {quote(index, 40)} implies more than {limit} "
                              f"{what}, the most an HRNet has")


def _layer(idx: KeyIndex, prefix: str) -> tuple[str, int, int]:
    """(block, units, planes) of a ``make_layer`` Sequential at ``prefix`` (e.g. ``layer1.``)."""
    units = idx.count(prefix)
    if units == 0:
        raise NotAnHRNetError(f"no residual units under {prefix.rstrip('.')}")
    block = "BOTTLENECK" if f"{prefix}0.conv3.weight" in idx.state else "BASIC"
    planes = idx.shape(f"{prefix}0.conv1.weight")[0]
    return block, units, planes


def _stages(idx: KeyIndex) -> tuple[StageConfig, ...]:
    stages = []
    for s in range(2, MAX_STAGES + 1):
        name = f"stage{s}"
        modules = idx.count(f"{name}.")
        if modules == 0:
            break
        layout = None
        fuse = []
        for m in range(modules):
            branches = idx.count(f"{name}.{m}.branches.")
            layers = [_layer(idx, f"{name}.{m}.branches.{b}.") for b in range(branches)]
            this = (branches, {b for b, _, _ in layers}, tuple(n for _, n, _ in layers), tuple(c for _, _, c in layers))
            if layout is None:
                layout = this
            elif this != layout:
                raise NotAnHRNetError(f"{name} module {m} differs from module 0 (branches, blocks or widths)")
            fuse.append(idx.has_prefix(f"{name}.{m}.fuse_layers."))
        branches, blocks_used, units, channels = layout
        if len(blocks_used) != 1:
            raise NotAnHRNetError(f"{name} mixes BASIC and BOTTLENECK branches")
        stages.append(StageConfig(modules, blocks_used.pop(), units, channels, tuple(fuse), name=name))
    if not stages:
        raise NotAnHRNetError("no stage2 modules")
    return tuple(stages)


def _conv_out(idx: KeyIndex, key: str) -> tuple[int, int]:
    """(out channels, kernel) of a conv weight."""
    shape = idx.shape(key)
    if len(shape) != 4:
        raise NotAnHRNetError(f"{key} is not a conv weight (shape {shape})")
    return shape[0], shape[-1]


def _higher_head(idx: KeyIndex, branch0: int) -> HeadConfig:
    """HigherHRNet's head (``final_layers`` + ``deconv_layers``, ``hrnet_core.heads.higher``) from its shapes.

    The joints are the smallest prediction (a prediction with associative-embedding tags adds one map per
    joint, or one map); when every prediction has the same width none is taken to carry tags."""
    n_pred = idx.count("final_layers.")
    outs = [_conv_out(idx, f"final_layers.{i}.weight")[0] for i in range(n_pred)]
    kernel = _conv_out(idx, "final_layers.0.weight")[1]
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
        c_in, c_out, k = idx.shape(f"deconv_layers.{i}.0.0.weight")[:3]
        cats.append(c_in != prev)
        channels.append(c_out)
        kernels.append(k)
        prev = c_out
    blocks = idx.count("deconv_layers.0.") - 1 if n_pred > 1 else 0
    return HeadConfig(kind="higher", outputs=joints, final_conv_kernel=kernel, tag_per_joint=tag_per_joint,
                      with_ae=with_ae, deconv_channels=tuple(channels), deconv_kernels=tuple(kernels),
                      deconv_blocks=max(0, blocks), cat_output=tuple(cats))


def _head(idx: KeyIndex, branch0: int) -> tuple[str, HeadConfig]:
    """(family, head config) from the head's keys; ``branch0``: channels of the 1/4 branch."""
    if "final_layers.0.weight" in idx.state:
        return "pose", _higher_head(idx, branch0)
    if "incre_modules.0.0.conv1.weight" in idx.state:
        outputs = idx.shape("classifier.weight")[0]
        return "cls", HeadConfig(kind="cls", outputs=outputs)
    if "reduction_conv.conv.weight" in idx.state:
        channels = _conv_out(idx, "reduction_conv.conv.weight")[0]
        levels = idx.count("fpn_convs.")
        return "det", HeadConfig(kind="v2p", outputs=DEFAULT_OUTPUTS["det"], channels=channels, levels=levels)
    if "conv3x3_ocr.0.weight" in idx.state:
        outputs = _conv_out(idx, "cls_head.weight")[0]
        mid = _conv_out(idx, "conv3x3_ocr.0.weight")[0]
        key_ch = _conv_out(idx, "ocr_distri_head.object_context_block.f_pixel.0.weight")[0]
        return "seg", HeadConfig(kind="ocr", outputs=outputs, channels=mid, key_channels=key_ch)
    for family, attr in (("seg", "last_layer"), ("face", "head")):
        if f"{attr}.3.weight" in idx.state:
            outputs, kernel = _conv_out(idx, f"{attr}.3.weight")
            return family, HeadConfig(kind="v2", outputs=outputs, final_conv_kernel=kernel)
    if "final_layer.weight" in idx.state:
        outputs, kernel = _conv_out(idx, "final_layer.weight")
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
        first = quote((missing or unexpected or shaped)[0], 60, bare=True)
        kind = cfg.head.kind if cfg.head is not None else "headless"
        raise NotAnHRNetError(f"the inferred {cfg.family}/{kind} model does not match: {len(missing)} "
                              f"missing, {len(unexpected)} unexpected, {len(shaped)} mis-shaped (first: {first})")


def _network_config(state: Mapping[str, torch.Tensor], name: str):
    """The ``NetworkConfig`` of another registered network whose ``NetworkSpec.infer`` recognizes ``state``'s
    names (Lite-HRNet, HRFormer), checked key by key; None when none does."""
    from .networks import load_builtin, network_names, network_spec  # they build on this package: imported here
    from .networks.model_config import NetworkConfig

    load_builtin()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    for arch in network_names():
        spec = network_spec(arch)
        mapping = spec.infer(shapes) if spec.infer is not None else None
        if mapping is None:
            continue
        final = shapes.get("final_layer.weight")
        try:
            head = None if final is None or len(final) != 4 else HeadConfig(
                kind="v1", outputs=final[0], final_conv_kernel=final[2])
            cfg = NetworkConfig(arch, spec.parse(mapping, "backbone"), head, input_hw=DEFAULT_INPUT_HW["pose"],
                                name=name)
        except ConfigError as err:
            raise NotAnHRNetError(f"the inferred layout is not a valid {spec.title} ({err})") from None
        _check_fits(cfg, state)
        return cfg
    return None


def infer_config(state: Mapping[str, torch.Tensor], name: str = "inferred") -> HRNetConfig:
    """The ``HRNetConfig`` whose model has exactly ``state``'s keys and shapes (official names), or for the
    weights of another registered network (Lite-HRNet, HRFormer: mmpose names, ``NetworkSpec.infer``) its
    ``NetworkConfig`` (pose, the heatmap head when ``final_layer`` is there, input 256x192).

    Fields the weights cannot tell (``NOT_IN_WEIGHTS``) get the family's defaults. Raises
    ``NotAnHRNetError`` (one line, no file name: callers add it) when ``state`` is no HRNet, and before any
    work when its names imply more than the bounds (module docstring: ``KeyIndex``).
    """
    if not state:
        raise NotAnHRNetError("no tensors")
    if len(state) > MAX_KEYS:
        raise NotAnHRNetError(f"{len(state):,} tensors; an HRNet within this project's bounds has at most "
                              f"{MAX_KEYS:,}")
    state = {key: state[key] for key in state}  # the one pass over the names; everything below reads this copy
    if all(isinstance(k, str) for k in state) and all(isinstance(v, torch.Tensor) for v in state.values()):
        network = _network_config(state, name)  # each network's reader bounds its own scans (NetworkSpec.infer)
        if network is not None:
            return network
    idx = KeyIndex(state)  # refuses names beyond the bounds, before any work
    stem = idx.shape("conv1.weight")
    if len(stem) != 4 or stem[1] != 3:
        raise NotAnHRNetError(f"conv1.weight {stem} is not a 3-channel stem conv")
    block, units, planes = _layer(idx, "layer1.")
    stages = _stages(idx)
    family, head = _head(idx, stages[-1].channels[0])
    if head.kind == "cls" and tuple(
        idx.shape(f"incre_modules.{i}.0.conv1.weight")[0] for i in range(len(stages) + 1)
    ) != cls_head_channels(len(stages) + 1):
        raise NotAnHRNetError("incre_modules widths differ from the official 32/64/128/256")
    try:
        cfg = HRNetConfig(
            family=family, stages=stages, head=head, input_hw=DEFAULT_INPUT_HW[family],
            stem=StemConfig(stem[0]), stage1=Stage1Config(block, units, planes),
            upsample=DEFAULT_UPSAMPLE[family], name=name,
        )
        _check_fits(cfg, state)  # builds on the meta device: refuses a model above the layer budget first
    except ConfigError as err:
        raise NotAnHRNetError(f"the inferred layout is not a valid HRNet ({err})") from None
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
