"""Feature maps of a model on an image (loaded by ``analysis.imaging``): capture per branch (``capture``),
rendering to PNGs (``render``, ``colormaps``), the weights to load (``weights``) and predictions on validation
persons (``val_pose``).

Public API: ``capture``, ``write_feature_maps``, ``build_weights``.
"""

from analysis.features.capture import capture
from analysis.features.render import write_feature_maps
from analysis.features.weights import build_weights

__all__ = ["build_weights", "capture", "write_feature_maps"]
