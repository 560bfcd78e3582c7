"""The HRNet backbone and ``build_model``.

Official sources: ``PoseHighResolutionNet`` (pose_hrnet.py), ``HighResolutionNet`` (cls_hrnet.py,
seg_hrnet.py, face hrnet.py). Paper: Sun et al. 2019 section 3, Wang et al. 2019 (HRNetV2/V2p).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .blocks import BLOCKS, bn, make_layer
from .budget import MAX_PARAMS, backbone_params, check_depth
from .config import ConfigError, HeadConfig, HRNetConfig, Stage1Config, StageConfig, UpsampleConfig
from .exchange import HighResolutionModule, Transition
from .heads import ClsHead, V1Head, V2Head, V2pHead
from .ocr_head import OCRHead


def build_head(family: str, head: HeadConfig, in_channels: tuple[int, ...], upsample: UpsampleConfig) -> nn.Module:
    """The head for ``head.kind`` over final branch channels ``in_channels``."""
    # V2/V2p concat always upsamples bilinearly; seg honours ALIGN_CORNERS, others use False.
    align = upsample.align_corners if upsample.mode == "bilinear" else False
    if head.kind == "v1":
        return V1Head(in_channels, head.outputs, head.final_conv_kernel)
    if head.kind == "v2":
        return V2Head(in_channels, head.outputs, head.final_conv_kernel, align, "last_layer" if family == "seg" else "head")
    if head.kind == "v2p":
        return V2pHead(in_channels, head.channels, head.levels, align)
    if head.kind == "ocr":
        return OCRHead(in_channels, head.outputs, head.channels, head.key_channels, align)
    return ClsHead(in_channels, head.outputs)


class HRNet(nn.Module):
    """HRNet backbone with a head.

    Input ``(N, 3, H, W)``; stem to ``(N, stem_channels, H/4, W/4)``; branch k of each stage at
    ``H/4/2**k x W/4/2**k``. ``forward`` returns the head output (see ``hrnet_core.heads``),
    ``forward_features`` the final per-branch list, ``forward_intermediates`` every module's outputs.
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

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(x)))

    def _run(self, x: torch.Tensor, record: OrderedDict | None) -> list[torch.Tensor]:
        x = self._stem(x)
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
                        record[f"{name}.module{m}.branch{b}"] = y
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

    def forward(self, x: torch.Tensor):
        return self.head_module(self._run(x, None))


def init_weights(model: nn.Module) -> nn.Module:
    """The official initialisation (pose_hrnet.py ``init_weights``): conv weights N(0, 0.001), biases
    0, BatchNorm weight 1 and bias 0; Linear keeps PyTorch's default."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
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
        # HRNetV1 reads branch 0 only, so the official pose model's last module fuses into it alone.
        final_fuse_outputs=1 if cfg.head.kind == "v1" else None,
    )


def build_on_meta(cfg: HRNetConfig) -> HRNet:
    """``cfg``'s model on PyTorch's meta device: exact structure, names and shapes, no memory allocated.

    Unlike ``build_model`` it does not check ``MAX_PARAMS``; it does refuse a config above
    ``hrnet_core.budget.MAX_CONV_LAYERS`` (so it answers within about a second).
    """
    check_depth(cfg)
    with torch.device("meta"):
        return _construct(cfg)


def count_params(cfg: HRNetConfig) -> int:
    """Exact parameter count of ``cfg``'s model: the backbone by arithmetic (``hrnet_core.budget``), the
    head built alone on the meta device. Milliseconds even for the deepest config within the budget."""
    check_depth(cfg)
    with torch.device("meta"):
        head = build_head(cfg.family, cfg.head, cfg.stages[-1].out_channels, cfg.upsample)
    return backbone_params(cfg) + sum(p.numel() for p in head.parameters())


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
    if not isinstance(cfg, HRNetConfig):
        raise TypeError("build_model takes an HRNetConfig; use hrnet_core.load_config for YAML or dicts")
    check_buildable(cfg)
    model = _construct(cfg)
    if init == "official":
        init_weights(model)
    elif init != "default":
        raise ValueError(f"unknown init {init!r}; expected 'official' or 'default'")
    return model


__all__ = ["MAX_PARAMS", "HRNet", "build_model", "build_on_meta", "build_head", "count_params", "check_buildable", "init_weights", "BLOCKS"]
