"""What the Feature maps page says about a checkpoint beyond loading it, free of Streamlit.

- ``inferred_offer``: a checkpoint that does not fit the current model is often one of another config; its weights
  say which (``hrnet_core.config_from_checkpoint``), so the page offers that config instead of "825 missing keys";
- ``quality_note``: a checkpoint whose recorded validation AP is near zero (a smoke run, a few steps) gives maps
  that are close to noise: the page says so rather than letting them pass for learned features.
"""

from __future__ import annotations

from dataclasses import dataclass

import hrnet_core as hc
from hrnet_core.networks.model_config import network_label

# Below this recorded val AP (a fraction) a checkpoint has learned too little for its maps to mean much.
NOISE_AP = 0.05


@dataclass(frozen=True)
class InferredOffer:
    """The config ``cfg`` a checkpoint's weights describe, and the one line that offers it."""

    cfg: object
    line: str


def inferred_offer(path: str, current) -> InferredOffer | None:
    """The config of checkpoint ``path`` read from its tensor names and shapes, when it differs from ``current``
    (the model it failed to load into); None when the weights describe no model this project builds, or the same
    one (then the failure is not a config mismatch)."""
    try:
        cfg, _ = hc.config_from_checkpoint(path)
    except hc.UserInputError:
        return None
    if hc.dump_config(cfg) == hc.dump_config(current):
        return None
    params = hc.count_params(cfg)
    line = (f"Its weights are those of another model: {network_label(cfg)}, {cfg.family}, {params / 1e6:.2f}M params "
            f"(read from the tensor names and shapes; the input size is the family's default).")
    return InferredOffer(cfg, line)


def quality_note(meta: dict) -> str | None:
    """One line when the checkpoint's recorded validation AP (``analysis.features.weights.checkpoint_meta``) is
    below ``NOISE_AP``; None when it is higher or not recorded."""
    ap = meta.get("metrics", {}).get("AP")
    if not isinstance(ap, (int, float)) or ap >= NOISE_AP:
        return None
    epoch = f" after {meta['epoch']} epoch{'s' if meta['epoch'] != 1 else ''}" if "epoch" in meta else ""
    return (f"This checkpoint reached a validation AP of {100 * ap:.1f} %{epoch}: it has learned little, so its maps "
            "are close to noise (a smoke run trains for seconds); a longer run's checkpoint shows learned features.")


__all__ = ["NOISE_AP", "InferredOffer", "inferred_offer", "quality_note"]
