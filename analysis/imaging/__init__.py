"""Image input shared by the feature maps and the ablation: loading a user or bundled image (``images``) and the
official top-down person crop (``topdown``: box -> centre and scale, affine transform, warp).

Public API: ``load_image``, ``bundled_box``, ``prepare``, ``IMAGENET_MEAN`` / ``IMAGENET_STD`` (``images``);
``box_to_center_scale``, ``get_affine_transform``, ``affine_points``, ``warp`` (``topdown``).
"""

from analysis.imaging.images import IMAGENET_MEAN, IMAGENET_STD, bundled_box, load_image, prepare
from analysis.imaging.topdown import affine_points, box_to_center_scale, get_affine_transform, warp

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "affine_points", "box_to_center_scale", "bundled_box",
           "get_affine_transform", "load_image", "prepare", "warp"]
