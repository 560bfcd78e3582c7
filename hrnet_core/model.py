"""The HRNet backbone and ``build_model``.

Official sources: ``PoseHighResolutionNet`` (pose_hrnet.py), ``HighResolutionNet`` (cls_hrnet.py,
seg_hrnet.py, face hrnet.py). Paper: Sun et al. 2019 section 3, Wang et al. 2019 (HRNetV2/V2p).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from .blocks import BLOCKS, bn, make_layer
from .budget import MAX_PARAMS, backbone_params, check_depth
from .config import ConfigError, HeadConfig, HRNetConfig, Stage1Config, StageConfig, UpsampleConfig
from .exchange import HighResolutionModule, Transition
from .heads import CLS_FEATURES, ClsHead, cls_head_channels, head_spec
from .keys import output_key


def build_head(family: str, head: HeadConfig, in_channels: tuple[int, ...], upsample: UpsampleConfig) -> nn.Module:
    """The head for ``head.kind`` (looked up in ``hrnet_core.heads.registry``) over final branch channels
    ``in_channels``."""
    # V2/V2p concat always upsamples bilinearly; seg honours ALIGN_CORNERS, others use False.
    align = upsample.align_corners if upsample.mode == "bilinear" else False
    return head_spec(head.kind).build(family, head, in_channels, align)


FEATURE_LOCATIONS = ("incre", "branches")


@dataclass(frozen=True)
class FeatureInfo:
    """One map of ``HRNet.features_only``: its channels, reduction (input pixels per map pixel) and the
    module whose output it is (official names)."""

    channels: int
    reduction: int
    module: str

    def as_timm(self) -> dict:
        """timm's ``feature_info`` entry: ``{'num_chs', 'reduction', 'module'}``."""
        return {"num_chs": self.channels, "reduction": self.reduction, "module": self.module}


class HRNet(nn.Module):
    """HRNet backbone with a head.

    Input ``(N, 3, H, W)``; stem to ``(N, stem_channels, H/4, W/4)``; branch k of each stage at
    ``H/4/2**k x W/4/2**k``. ``forward`` returns the head output (see ``hrnet_core.heads``),
    ``forward_features`` the final per-branch list, ``forward_intermediates`` every module's outputs,
    ``features_only`` timm's feature maps (with ``feature_info``).
    """

    def __init__(
        self,
        stem_channels: int,
        stage1: Stage1Config,
        stages: tuple[StageConfig, ...],
        upsample: UpsampleConfig,
        head: nn.Module,
        final_fuse_outputs: int | None = None,
    ):
        super().__init__()
        self.stage_names = tuple(f"stage{i + 2}" for i in range(len(stages)))
        self.conv1 = nn.Conv2d(3, stem_channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = bn(stem_channels)
        self.conv2 = nn.Conv2d(stem_channels, stem_channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = bn(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(stage1.block, stem_channels, stage1.planes, stage1.blocks)

        pre = (stage1.out_channels,)
        for s, st in enumerate(stages):
            cur = st.out_channels
            setattr(self, f"transition{s + 1}", Transition(pre, cur))
            modules = []
            in_ch = cur
            for m in range(st.modules):
                last = s == len(stages) - 1 and m == st.modules - 1
                outs = final_fuse_outputs if (last and final_fuse_outputs) else st.branches
                mod = HighResolutionModule(
                    st.block, in_ch, st.blocks, st.channels, st.fuse[m], outs, upsample.mode, upsample.align_corners
                )
                in_ch = mod.out_channels
                modules.append(mod)
            setattr(self, self.stage_names[s], nn.ModuleList(modules))
            pre = in_ch
        self.final_channels = pre
        # The head's children sit at the top level under their official names (strict loading); the
        # head object itself is kept out of the module tree so no key appears twice.
        self._head = (head,)
        for name, child in head.named_children():
            self.add_module(name, child)

    @property
    def head_module(self) -> nn.Module:
        return self._head[0]

    def _stem_half(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)))

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """The stem alone: ``(N, 3, H, W)`` -> ``(N, 64, H/4, W/4)`` (two stride-2 3x3 convs with BatchNorm and
        ReLU; official ``conv1 .. relu`` in ``PoseHighResolutionNet.forward``)."""
        return self.relu(self.bn2(self.conv2(self._stem_half(x))))

    def _run(self, x: torch.Tensor, record: OrderedDict | None) -> list[torch.Tensor]:
        return self._after_stem(self.forward_stem(x), record)

    def _after_stem(self, x: torch.Tensor, record: OrderedDict | None) -> list[torch.Tensor]:
        if record is not None:
            record["stem"] = x
        x = self.layer1(x)
        if record is not None:
            record["layer1"] = x
        ys = [x]
        for s, name in enumerate(self.stage_names):
            ys = getattr(self, f"transition{s + 1}")(ys)
            for m, module in enumerate(getattr(self, name)):
                ys = module(ys)
                if record is not None:
                    for b, y in enumerate(ys):
                        record[output_key(name, m, b)] = y
        return ys

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Final per-branch features: list of ``(N, C_k, H/4/2**k, W/4/2**k)``."""
        return self._run(x, None)

    def forward_intermediates(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Every module's per-branch output keyed ``stageS.moduleM.branchB`` (0-based M, B), plus
        ``stem`` and ``layer1``; in forward order."""
        record: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._run(x, record)
        return record

    def feature_info(self, location: str = "incre", pre_pool: bool = False) -> tuple[FeatureInfo, ...]:
        """What ``features_only(x, location, pre_pool)`` returns, map by map (see there)."""
        self._check_location(location, pre_pool)
        info = [FeatureInfo(self.conv1.out_channels, 2, "conv1")]
        if location == "incre":
            chans = [c * 4 for c in cls_head_channels(len(self.final_channels))]
            info += [FeatureInfo(c, 4 * 2**k, f"incre_modules.{k}") for k, c in enumerate(chans)]
        else:
            last = self.stage_names[-1]
            module = f"{last}.{len(getattr(self, last)) - 1}"
            outs = len(getattr(self, last)[-1].fuse_layers) or len(self.final_channels)
            info += [FeatureInfo(c, 4 * 2**k, module) for k, c in enumerate(self.final_channels[:outs])]
        if pre_pool:
            info.append(FeatureInfo(CLS_FEATURES, 4 * 2 ** (len(self.final_channels) - 1), "final_layer"))
        return tuple(info)

    def _check_location(self, location: str, pre_pool: bool) -> None:
        if location not in FEATURE_LOCATIONS:
            raise ValueError(f"location: unknown {location!r}; expected one of {', '.join(FEATURE_LOCATIONS)}")
        if (location == "incre" or pre_pool) and not isinstance(self.head_module, ClsHead):
            raise ValueError("location 'incre' and pre_pool need the classification head (family cls); "
                             "use location='branches'")

    def features_only(self, x: torch.Tensor, location: str = "incre", pre_pool: bool = False) -> list[torch.Tensor]:
        """timm's ``features_only=True`` maps, in order, described by ``feature_info(location, pre_pool)``.

        - ``(N, stem, H/2, W/2)``: after ``conv1``, ``bn1``, ReLU (timm's ``stem`` feature, reduction 2);
        - ``location='incre'`` (cls only; timm's default ``feature_location='incre'``): the incremental
          modules' outputs ``(N, 128 * 2**k, H/4/2**k, W/4/2**k)`` (128/256/512/1024 channels);
          ``location='branches'`` (timm's ``feature_location=''``; every family): the final branches,
          ``forward_features`` (the V1 pose head's last module fuses into branch 0 only, so one map there);
        - ``pre_pool=True`` (cls only) appends ``final_layer``'s ``(N, 2048, H/32, W/32)``, timm's
          ``forward_features`` (2048x7x7 at 224x224), which ``forward`` pools and classifies.

        Source: ``HighResolutionNetFeatures`` in timm ``timm/models/hrnet.py``. Raises ``ValueError`` for an
        unknown ``location`` or a cls-only request on another head.
        """
        self._check_location(location, pre_pool)
        y = self._stem_half(x)
        out = [y]
        feats = self._after_stem(self.relu(self.bn2(self.conv2(y))), None)
        if location == "incre":
            incre = self.head_module.incre_features(feats)
            out += incre
        else:
            out += feats
        if pre_pool:
            out.append(self.head_module.pre_pool(incre if location == "incre" else self.head_module.incre_features(feats)))
        return out

    def forward(self, x: torch.Tensor):
        return self.head_module(self._run(x, None))


def init_weights(model: nn.Module) -> nn.Module:
    """The official initialisation (pose_hrnet.py, pose_higher_hrnet.py ``init_weights``): conv and transposed
    conv weights N(0, 0.001), biases 0, BatchNorm weight 1 and bias 0; Linear keeps PyTorch's default."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def _construct(cfg: HRNetConfig) -> HRNet:
    final_channels = cfg.stages[-1].out_channels
    head = build_head(cfg.family, cfg.head, final_channels, cfg.upsample)
    return HRNet(
        stem_channels=cfg.stem.channels,
        stage1=cfg.stage1,
        stages=cfg.stages,
        upsample=cfg.upsample,
        head=head,
        # HRNetV1 and HigherHRNet read branch 0 only, so the official pose models' last module fuses into it alone.
        final_fuse_outputs=1 if cfg.head.reads_branch0_only else None,
    )


def _network(cfg):
    """``cfg`` if it is a model of another registered network (``hrnet_core.networks``), else None."""
    from .networks.model_config import NetworkConfig  # the networks build on this module: imported when used

    return cfg if isinstance(cfg, NetworkConfig) else None


def build_on_meta(cfg: HRNetConfig) -> HRNet:
    """``cfg``'s model on PyTorch's meta device: exact structure, names and shapes, no memory allocated.

    Unlike ``build_model`` it does not check ``MAX_PARAMS``; it does refuse a config above
    ``hrnet_core.budget.MAX_CONV_LAYERS`` (so it answers within about a second).
    """
    if _network(cfg):
        from .networks.model import build_network

        with torch.device("meta"):
            return build_network(cfg)
    check_depth(cfg)
    with torch.device("meta"):
        return _construct(cfg)


def count_params(cfg: HRNetConfig) -> int:
    """Exact parameter count of ``cfg``'s model: the backbone by arithmetic (``hrnet_core.budget``), the
    head built alone on the meta device. Milliseconds even for the deepest config within the budget. Other
    networks (``NetworkConfig``): their closed-form counts plus the head's final convolution."""
    if _network(cfg):
        return network_params(cfg)
    check_depth(cfg)
    with torch.device("meta"):
        head = build_head(cfg.family, cfg.head, cfg.stages[-1].out_channels, cfg.upsample)
    return backbone_params(cfg) + sum(p.numel() for p in head.parameters())


def network_params(cfg) -> int:
    """Parameters of a ``NetworkConfig``'s model: the backbone's closed form (``NetworkSpec.counts``) and the head's
    ``final_layer`` (k x k conv with bias on the last map)."""
    spec = cfg.spec
    n = sum(p.params for p in spec.counts(cfg.backbone, cfg.input_hw))
    if cfg.head is not None:
        k = cfg.head.final_conv_kernel
        n += spec.out_channels(cfg.backbone)[-1] * cfg.head.outputs * k * k + cfg.head.outputs
    return n


def check_buildable(cfg: HRNetConfig, max_params: int = MAX_PARAMS) -> int:
    """Parameter count of ``cfg``; raises ``ConfigError`` (field ``model``) above ``max_params`` or above
    the layer budget (``hrnet_core.budget``), before anything is allocated."""
    n = count_params(cfg)
    if n > max_params:
        raise ConfigError(
            "model", f"{n / 1e6:.1f}M parameters exceed the bound of {max_params / 1e6:.0f}M; reduce the widths "
                     "(channels), blocks or modules"
        )
    return n


def build_model(cfg: HRNetConfig, init: str = "official") -> HRNet:
    """Build the model for ``cfg`` on CPU in float32.

    ``init``: ``official`` (N(0, 0.001) convs, see ``init_weights``) or ``default`` (PyTorch's).
    Raises ``ConfigError`` for a model above ``MAX_PARAMS`` (checked before allocating).
    """
    if _network(cfg):
        from .networks.model import build_network

        if init not in ("official", "default"):
            raise ValueError(f"unknown init {init!r}; expected 'official' or 'default'")
        check_buildable(cfg)
        return build_network(cfg)  # either init: the network's construction-time init (mmpose / mmcv's)
    if not isinstance(cfg, HRNetConfig):
        raise TypeError("build_model takes an HRNetConfig; use hrnet_core.load_config for YAML or dicts")
    check_buildable(cfg)
    model = _construct(cfg)
    if init == "official":
        init_weights(model)
    elif init != "default":
        raise ValueError(f"unknown init {init!r}; expected 'official' or 'default'")
    return model


__all__ = ["FEATURE_LOCATIONS", "MAX_PARAMS", "FeatureInfo", "HRNet", "build_model", "build_on_meta", "build_head", "count_params", "check_buildable", "init_weights", "BLOCKS"]
