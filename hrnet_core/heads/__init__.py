"""Heads on top of the final HRNet branches, one file per kind, each registering itself (``registry``).

Each head's children carry the official state_dict names; ``HRNet`` registers them at the top level so
official checkpoints load with ``strict=True``.

- ``v1`` (HRNetV1, pose): ``final_layer`` on the 1/4 branch (``pose_hrnet.py``).
- ``v2`` (HRNetV2, segmentation / landmarks): all branches to 1/4, concat, 1x1 conv + BN + ReLU, final conv.
- ``v2p`` (HRNetV2p, detection): V2 concat, 1x1 reduction, pooled pyramid, 3x3 conv per level (``HRFPN``).
- ``cls`` (HRNet-W*-C): ``incre_modules``, ``downsamp_modules``, ``final_layer``, ``classifier``.
- ``ocr`` (HRNet + OCR, segmentation): object-contextual representations (``seg_hrnet_ocr.py``).
- ``higher`` (HigherHRNet, bottom-up pose): ``final_layers`` + ``deconv_layers`` (``pose_higher_hrnet.py``).
"""

from . import cls, higher, ocr, v1, v2, v2p  # noqa: F401  (each registers its kind)
from .cls import CLS_FEATURES, ClsHead, cls_head_channels
from .common import concat_branches, final_conv
from .higher import DECONV_PADDING, HigherHead, deconv_in_channels
from .ocr import OCRHead
from .registry import HeadSpec, head_kinds, head_spec, register, unregister
from .v1 import V1Head
from .v2 import V2Head
from .v2p import V2pHead

__all__ = [
    "CLS_FEATURES",
    "DECONV_PADDING",
    "ClsHead",
    "HeadSpec",
    "HigherHead",
    "OCRHead",
    "V1Head",
    "V2Head",
    "V2pHead",
    "cls_head_channels",
    "concat_branches",
    "deconv_in_channels",
    "final_conv",
    "head_kinds",
    "head_spec",
    "register",
    "unregister",
]
