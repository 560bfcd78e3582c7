"""Whole-model budgets, checked from the config alone before anything is built.

Each field of a config has its own bound (``hrnet_core.config``), but fields within their bounds can
still multiply into a model that costs minutes to build or gigabytes to run (32 modules x 64 blocks in
every stage; width 190). Three whole-model bounds close that gap, each answered by arithmetic over the
config in well under a second:

- ``MAX_CONV_LAYERS`` convolutions in the backbone (stem, residual units, projections, transitions,
  fusion layers): 3x the deepest official HRNet (W48: about 300). It also bounds the cost of anything
  that walks the model, such as counting on the meta device.
- ``MAX_PARAMS`` parameters: twice HRNet-W64-C (128M), the largest published; 1 GiB of float32 weights.
- ``MAX_ACTIVATION_BYTES`` of estimated float32 activations for a batch at an input size
  (``activation_estimate``): what one forward pass writes, the memory a real run allocates.

Errors are ``ConfigError`` with field ``model`` and say what to reduce.
"""

from __future__ import annotations

from .config import BLOCK_EXPANSION, ConfigError, HRNetConfig
from .errors import quote

MAX_CONV_LAYERS = 1000
MAX_PARAMS = 250_000_000
MAX_ACTIVATION_BYTES = 16 * 2**30
MAX_BATCH = 65_536


class _Tally:
    """Convolutions, exact parameters and estimated activation elements (per sample) of the backbone."""

    def __init__(self):
        self.convs = 0
        self.params = 0
        self.elements = 0

    def conv_bn(self, cin: int, cout: int, k: int, hw: tuple[int, int], relu: bool = True) -> None:
        self.convs += 1
        self.params += cin * cout * k * k + 2 * cout  # bias-free conv + BatchNorm weight and bias
        # conv and BatchNorm each write one output map (an in-place ReLU writes nothing new)
        self.elements += 2 * cout * hw[0] * hw[1]

    def unit(self, block: str, cin: int, planes: int, hw) -> int:
        out = planes * BLOCK_EXPANSION[block]
        if block == "BASIC":
            self.conv_bn(cin, planes, 3, hw)
            self.conv_bn(planes, planes, 3, hw)
        else:
            self.conv_bn(cin, planes, 1, hw)
            self.conv_bn(planes, planes, 3, hw)
            self.conv_bn(planes, out, 1, hw)
        self.elements += out * hw[0] * hw[1]  # the residual sum
        return out

    def layer(self, block: str, cin: int, planes: int, blocks: int, hw) -> int:
        out = planes * BLOCK_EXPANSION[block]
        if cin != out:
            self.conv_bn(cin, out, 1, hw)  # the first unit's projection
        self.unit(block, cin, planes, hw)
        for _ in range(1, blocks):
            self.unit(block, out, planes, hw)
        return out


def _half(hw: tuple[int, int]) -> tuple[int, int]:
    return -(-hw[0] // 2), -(-hw[1] // 2)


def _backbone(cfg: HRNetConfig, input_hw: tuple[int, int]) -> _Tally:
    """The tally of ``hrnet_core.model.HRNet`` without its head, following its constructor."""
    t = _Tally()
    hw = _half(input_hw)
    t.conv_bn(3, cfg.stem.channels, 3, hw)
    hw = _half(hw)
    t.conv_bn(cfg.stem.channels, cfg.stem.channels, 3, hw)
    sizes = [hw]
    for _ in range(len(cfg.stages)):
        sizes.append(_half(sizes[-1]))
    pre = (t.layer(cfg.stage1.block, cfg.stem.channels, cfg.stage1.planes, cfg.stage1.blocks, hw),)
    for s, st in enumerate(cfg.stages):
        cur = st.out_channels
        for i, c in enumerate(cur):  # Transition
            if i < len(pre):
                if c != pre[i]:
                    t.conv_bn(pre[i], c, 3, sizes[i])
            else:
                for j in range(i + 1 - len(pre)):
                    out = c if j == i - len(pre) else pre[-1]
                    t.conv_bn(pre[-1], out, 3, sizes[len(pre) + j])
        for m in range(st.modules):
            for k, (n, ch) in enumerate(zip(st.blocks, st.channels)):
                t.layer(st.block, cur[k], ch, n, sizes[k])
            outs = cfg.fuse_outputs(s, m)
            if st.branches > 1:
                for i in range(outs):
                    for j in range(st.branches):
                        if j > i:
                            t.conv_bn(cur[j], cur[i], 1, sizes[j])
                            t.elements += cur[i] * sizes[i][0] * sizes[i][1]  # upsampled
                        elif j < i:
                            for k in range(i - j):
                                last = k == i - j - 1
                                t.conv_bn(cur[j], cur[i] if last else cur[j], 3, sizes[j + k + 1])
                    t.elements += cur[i] * sizes[i][0] * sizes[i][1]  # the sum (and its ReLU)
        pre = cur
    return t


def _head_estimate(cfg: HRNetConfig, sizes) -> int:
    """Activation elements per sample of the head, roughly: V2-style heads upsample and concatenate every
    branch at 1/4 and convolve that; V1 convolves the 1/4 branch; the classification head works at 1/4 to 1/32."""
    (h, w) = sizes[0]
    out = cfg.stages[-1].out_channels
    if cfg.head.kind == "v1":
        return cfg.head.outputs * h * w
    if cfg.head.kind == "cls":
        return sum(4 * c * 2 * a * b for c, (a, b) in zip(out, sizes)) + 2048 * 2
    total = sum(out)
    return 5 * total * h * w + (cfg.head.outputs + cfg.head.channels) * h * w


def _sizes(cfg: HRNetConfig, input_hw: tuple[int, int]) -> list[tuple[int, int]]:
    hw = _half(_half(input_hw))
    sizes = [hw]
    for _ in range(cfg.num_branches - 1):
        sizes.append(_half(sizes[-1]))
    return sizes


def conv_layers(cfg: HRNetConfig) -> int:
    """Convolutions of the backbone (stem, residual units, projections, transitions, fusion layers)."""
    return _backbone(cfg, cfg.input_hw).convs


def backbone_params(cfg: HRNetConfig) -> int:
    """Exact parameter count of the backbone (everything but the head), by arithmetic."""
    return _backbone(cfg, cfg.input_hw).params


def _network_section(cfg):
    """``cfg`` when it is a ``NetworkConfig`` (another registered network), else None. Imported when used: the
    networks' own config sections build on this module."""
    from .networks.model_config import NetworkConfig

    return cfg if isinstance(cfg, NetworkConfig) else None


# Each Conv2d / Linear / matmul output of a network is followed by about two more tensors of its size (its
# BatchNorm or LayerNorm and its activation, or a residual sum): bytes ~ 3 x the counted outputs.
NETWORK_WRITES_PER_OUTPUT = 3


def activation_estimate(cfg: HRNetConfig, batch: int = 1, input_hw: tuple[int, int] | None = None) -> int:
    """Estimated float32 bytes that one forward pass of ``batch`` images at ``input_hw`` (default: the
    config's) writes: every convolution's and BatchNorm's output, residual and fusion sums, and the head
    (roughly). Within a factor of two of ``analysis.complexity``'s exact count for every preset. Another
    network (``NetworkConfig``): ``NETWORK_WRITES_PER_OUTPUT`` x its closed-form activations
    (``NetworkSpec.counts``)."""
    hw = input_hw or cfg.input_hw
    if _network_section(cfg) is not None:
        outputs = sum(c.activations for c in cfg.spec.counts(cfg.backbone, tuple(hw)))
        return 4 * batch * NETWORK_WRITES_PER_OUTPUT * outputs
    t = _backbone(cfg, hw)
    return 4 * batch * (t.elements + _head_estimate(cfg, _sizes(cfg, hw)))


def check_depth(cfg: HRNetConfig, max_layers: int = MAX_CONV_LAYERS) -> int:
    """``conv_layers(cfg)``; ``ConfigError`` (field ``model``) above ``max_layers``. Another network's section
    bounds its depth when it is parsed (e.g. Lite-HRNet's convolutions): 0 is returned for it."""
    if _network_section(cfg) is not None:
        return 0
    n = conv_layers(cfg)
    if n > max_layers:
        raise ConfigError("model", f"{n} convolution layers exceed the bound of {max_layers}; reduce modules or "
                                   "blocks per stage")
    return n


def check_activations(cfg: HRNetConfig, batch: int = 1, input_hw: tuple[int, int] | None = None,
                      max_bytes: int = MAX_ACTIVATION_BYTES) -> int:
    """``activation_estimate``; ``ConfigError`` (field ``model``) above ``max_bytes`` or for a batch
    outside 1..``MAX_BATCH``."""
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ConfigError("batch", f"must be an integer in 1..{MAX_BATCH}, got {quote(batch)}")
    n = activation_estimate(cfg, batch, input_hw)
    if n > max_bytes:
        h, w = input_hw or cfg.input_hw
        raise ConfigError("model", f"about {n / 2**30:.1f} GiB of activations for batch {batch} at {h}x{w} exceed "
                                   f"the bound of {max_bytes / 2**30:.0f} GiB; reduce the batch, the input size or "
                                   "the widths")
    return n
