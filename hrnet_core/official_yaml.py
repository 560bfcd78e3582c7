"""Reader for the official HRNet experiment YAMLs of the four repositories, quirks included.

- pose (leoxiaobin/deep-high-resolution-net.pytorch, ``MODEL.NAME: pose_hrnet``): stage 1 is fixed in
  the code (Bottleneck x4, 64 planes; any STAGE1 entry is ignored, as the code does), V1 head.
- cls (HRNet/HRNet-Image-Classification, ``cls_hrnet``): STAGE1 read, classification head,
  ``MODEL.NUM_CLASSES`` (default 1000).
- seg (HRNet/HRNet-Semantic-Segmentation, ``seg_hrnet``): STAGE1 read, V2 ``last_layer``,
  ``DATASET.NUM_CLASSES`` (default 19), bilinear fusion honouring ``MODEL.ALIGN_CORNERS``
  (default true), input from ``TRAIN.IMAGE_SIZE``.
- seg + OCR (``seg_hrnet_ocr``): the seg backbone with the OCR head (``hrnet_core.heads.ocr``),
  ``MODEL.OCR.MID_CHANNELS`` (512) and ``KEY_CHANNELS`` (256). Development-only names seen in some
  experiment files (``seg_hrnet_ocr_b``, ``..._bndefault_...``) are separate development model files;
  they are refused with that reason.
- face (HRNet/HRNet-Facial-Landmark-Detection, ``hrnet``): stage 1 fixed like pose, V2 ``head``,
  bilinear fusion with ``align_corners=False``.
- HigherHRNet (HRNet/HigherHRNet-Human-Pose-Estimation, ``pose_higher_hrnet``): the pose backbone (stem and
  stage 1 fixed in the code, nearest fusion, last module fusing into branch 0) with the HigherHRNet head
  (``hrnet_core.heads.higher``) from ``MODEL.EXTRA.DECONV`` (NUM_DECONVS, NUM_CHANNELS, KERNEL_SIZE,
  NUM_BASIC_BLOCKS, CAT_OUTPUT; required, as the code has no defaults for them), ``MODEL.TAG_PER_JOINT``
  (default true) and ``LOSS.WITH_AE_LOSS`` (default ``(True,)``: which predictions carry tag maps). The input
  is the square ``DATASET.INPUT_SIZE`` (one integer, default 512); ``MODEL.NUM_JOINTS`` (17), or
  ``DATASET.NUM_JOINTS + 1`` with ``DATASET.WITH_CENTER`` as ``update_config`` does.

Sizes are ``[W, H]`` in the official files. Keys the model never reads are ignored; ``NUM_RANCHES``
(STAGE1 typo) is never read. Missing keys take the official defaults (each repo's ``config/default.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

from .config import (
    DEFAULT_HEAD,
    MAX_DECONVS,
    ConfigError,
    HeadConfig,
    HRNetConfig,
    Stage1Config,
    StageConfig,
    StemConfig,
    UpsampleConfig,
    check_block,
    check_kernel,
)
from .errors import quote
from .fields import bool_list, boolean, hw_pair, int_list, integer, section

MODEL_NAMES = {"pose_hrnet": "pose", "cls_hrnet": "cls", "seg_hrnet": "seg", "seg_hrnet_ocr": "seg", "hrnet": "face",
               "pose_higher_hrnet": "pose"}
DEFAULT_INPUT_WH = {"pose": (256, 256), "cls": (224, 224), "seg": (1024, 512), "face": (256, 256)}
DEFAULT_OUTPUTS = {"pose": 17, "cls": 1000, "seg": 19, "face": 17}
FIXED_STAGE1 = Stage1Config("BOTTLENECK", 4, 64)


def is_official(data: Mapping) -> bool:
    """Official files have an upper-case ``MODEL`` section (with ``EXTRA``)."""
    return isinstance(data.get("MODEL"), Mapping)


def _stage(extra: Mapping, k: int) -> StageConfig:
    key = f"STAGE{k}"
    path = f"MODEL.EXTRA.{key}"
    raw = section(extra, key, path, required=True)
    modules = integer(raw, "NUM_MODULES", f"{path}.NUM_MODULES")
    branches = integer(raw, "NUM_BRANCHES", f"{path}.NUM_BRANCHES")
    if branches != k:
        raise ConfigError(
            f"{path}.NUM_BRANCHES", f"stage {k} must have {k} branches (one more than the stage before), got {branches}"
        )
    blocks = int_list(raw.get("NUM_BLOCKS"), f"{path}.NUM_BLOCKS")
    channels = int_list(raw.get("NUM_CHANNELS"), f"{path}.NUM_CHANNELS")
    for name, values in (("NUM_BLOCKS", blocks), ("NUM_CHANNELS", channels)):
        if len(values) != branches:
            raise ConfigError(f"{path}.{name}", f"has {len(values)} entries but NUM_BRANCHES is {branches}")
    fuse_method = raw.get("FUSE_METHOD", "SUM")
    if fuse_method != "SUM":
        raise ConfigError(f"{path}.FUSE_METHOD", f"only SUM exists in the official code, got {quote(fuse_method)}")
    block = check_block(raw.get("BLOCK", "BASIC"), f"{path}.BLOCK")
    return StageConfig(modules=modules, block=block, blocks=blocks, channels=channels, name=f"stage{k}")


def _stage1(extra: Mapping) -> Stage1Config:
    raw = section(extra, "STAGE1", "MODEL.EXTRA.STAGE1")
    if not raw:
        return FIXED_STAGE1
    path = "MODEL.EXTRA.STAGE1"
    block = check_block(raw.get("BLOCK", "BOTTLENECK"), f"{path}.BLOCK")
    blocks = int_list(raw.get("NUM_BLOCKS", [4]), f"{path}.NUM_BLOCKS")
    planes = int_list(raw.get("NUM_CHANNELS", [64]), f"{path}.NUM_CHANNELS")
    if len(blocks) != 1 or len(planes) != 1:
        raise ConfigError(f"{path}.NUM_CHANNELS", "stage 1 has one branch: NUM_BLOCKS and NUM_CHANNELS take one entry")
    return Stage1Config(block=block, blocks=blocks[0], planes=planes[0])


def _first(values: tuple, n: int, path: str) -> tuple:
    """The first ``n`` entries (the official code indexes 0..n-1 and ignores the rest)."""
    if len(values) < n:
        raise ConfigError(path, f"has {len(values)} entries but NUM_DECONVS is {n}")
    return tuple(values[:n])


def _higher(data: Mapping, model: Mapping, extra: Mapping, kernel: int) -> tuple[HeadConfig, str, int]:
    """The HigherHRNet head and input side of a ``pose_higher_hrnet`` file (module docstring)."""
    path = "MODEL.EXTRA.DECONV"
    deconv = section(extra, "DECONV", path, required=True)
    raw_n = deconv.get("NUM_DECONVS")
    if isinstance(raw_n, bool) or not isinstance(raw_n, int) or raw_n < 0:
        raise ConfigError(f"{path}.NUM_DECONVS", f"must be a non-negative integer, got {quote(raw_n)}")
    n = raw_n
    if n > MAX_DECONVS:
        raise ConfigError(f"{path}.NUM_DECONVS", f"{n} exceeds the supported maximum {MAX_DECONVS} "
                          "(predictions up to the input resolution)")
    channels = _first(int_list(deconv.get("NUM_CHANNELS"), f"{path}.NUM_CHANNELS"), n, f"{path}.NUM_CHANNELS") if n else ()
    kernels = _first(int_list(deconv.get("KERNEL_SIZE"), f"{path}.KERNEL_SIZE"), n, f"{path}.KERNEL_SIZE") if n else ()
    cat = _first(bool_list(deconv.get("CAT_OUTPUT"), f"{path}.CAT_OUTPUT"), n, f"{path}.CAT_OUTPUT") if n else ()
    for i, k in enumerate(kernels):
        if k not in (2, 3, 4):
            raise ConfigError(f"{path}.KERNEL_SIZE[{i}]", f"must be 2, 3 or 4 (the official _get_deconv_cfg), got {quote(k)}")
    blocks = deconv.get("NUM_BASIC_BLOCKS", 0 if not n else None)
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 0:
        raise ConfigError(f"{path}.NUM_BASIC_BLOCKS", f"must be a non-negative integer, got {quote(blocks)}")
    loss = section(data, "LOSS", "LOSS")
    with_ae = _first(bool_list(loss.get("WITH_AE_LOSS", [True]), "LOSS.WITH_AE_LOSS"), n + 1, "LOSS.WITH_AE_LOSS")
    dataset = section(data, "DATASET", "DATASET")
    if boolean(dataset.get("WITH_CENTER", False), "DATASET.WITH_CENTER"):
        joints = integer(dataset, "NUM_JOINTS", "DATASET.NUM_JOINTS", 17) + 1
    else:
        joints = integer(model, "NUM_JOINTS", "MODEL.NUM_JOINTS", 17)
    side = dataset.get("INPUT_SIZE", 512)
    if isinstance(side, bool) or not isinstance(side, int):
        raise ConfigError("DATASET.INPUT_SIZE", f"must be one integer (the square input side), got {quote(side)}")
    head = HeadConfig(kind="higher", outputs=joints, final_conv_kernel=kernel,
                      tag_per_joint=boolean(model.get("TAG_PER_JOINT", True), "MODEL.TAG_PER_JOINT"),
                      with_ae=with_ae, deconv_channels=channels, deconv_kernels=kernels,
                      deconv_blocks=blocks, cat_output=cat)
    return head, "DATASET.INPUT_SIZE", side


def parse_official(data: Mapping, name: str = "official") -> HRNetConfig:
    """An ``HRNetConfig`` from a parsed official experiment YAML. Raises ``ConfigError``."""
    model = section(data, "MODEL", "MODEL", required=True)
    model_name = model.get("NAME")
    if isinstance(model_name, str) and model_name.startswith("seg_hrnet_ocr_"):
        raise ConfigError(
            "MODEL.NAME",
            f"{quote(model_name)} names a development-only variant of HRNet-OCR (its own lib/models file, which "
            "differs from seg_hrnet_ocr.py and is not supported here); use seg_hrnet_ocr")
    if not isinstance(model_name, str) or model_name not in MODEL_NAMES:
        raise ConfigError(
            "MODEL.NAME",
            f"{quote(model_name)} is not an HRNet model of the five official repos "
            f"(expected one of {', '.join(MODEL_NAMES)})",
        )
    family = MODEL_NAMES[model_name]
    extra = section(model, "EXTRA", "MODEL.EXTRA", required=True)
    stages = tuple(_stage(extra, k) for k in (2, 3, 4))
    stage1 = _stage1(extra) if family in ("cls", "seg") else FIXED_STAGE1

    if family == "seg":
        train = section(data, "TRAIN", "TRAIN")
        size_path, size_value = "TRAIN.IMAGE_SIZE", train.get("IMAGE_SIZE", DEFAULT_INPUT_WH["seg"])
        outputs = integer(section(data, "DATASET", "DATASET"), "NUM_CLASSES", "DATASET.NUM_CLASSES", 19)
        upsample = UpsampleConfig("bilinear", boolean(model.get("ALIGN_CORNERS", True), "MODEL.ALIGN_CORNERS"))
    else:
        size_path, size_value = "MODEL.IMAGE_SIZE", model.get("IMAGE_SIZE", DEFAULT_INPUT_WH[family])
        key = "NUM_CLASSES" if family == "cls" else "NUM_JOINTS"
        outputs = integer(model, key, f"MODEL.{key}", DEFAULT_OUTPUTS[family])
        upsample = UpsampleConfig("bilinear", False) if family == "face" else UpsampleConfig("nearest", False)

    kernel = check_kernel(extra.get("FINAL_CONV_KERNEL", 1), "MODEL.EXTRA.FINAL_CONV_KERNEL")
    input_hw = hw_pair(size_value, size_path, order="wh")
    head = HeadConfig(kind=DEFAULT_HEAD[family], outputs=outputs, final_conv_kernel=kernel)
    if model_name == "pose_higher_hrnet":
        head, size_path, size_value = _higher(data, model, extra, kernel)
        input_hw = hw_pair(size_value, size_path, order="hw")
    if model_name == "seg_hrnet_ocr":
        ocr = section(model, "OCR", "MODEL.OCR")
        head = HeadConfig(kind="ocr", outputs=outputs, channels=integer(ocr, "MID_CHANNELS", "MODEL.OCR.MID_CHANNELS", 512),
                          key_channels=integer(ocr, "KEY_CHANNELS", "MODEL.OCR.KEY_CHANNELS", 256))
    try:
        return HRNetConfig(
            family=family,
            stages=stages,
            head=head,
            input_hw=input_hw,
            stem=StemConfig(64),
            stage1=stage1,
            upsample=upsample,
            name=name,
        )
    except ConfigError as err:
        if err.field == "input_size":
            raise ConfigError(size_path, err.message) from None
        raise
