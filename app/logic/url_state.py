"""The model in the page's URL (``st.query_params``), so reload, a new tab and a copied link restore it.

Query parameters (all optional; the page itself is the URL's path):

- ``preset``: the picker label of the origin (a preset in ``configs/`` or ``saved: NAME``);
- ``origin``: instead of ``preset``, an origin that is no file here (a pasted or uploaded YAML): its config
  in the project schema, zlib-compressed and base64url-encoded (``pack``), and ``from``, where it came from;
- ``cfg``: the current model the same way, when it differs from the origin (an edit).

A W32 preset edit packs to about 500 characters. Tokens and unpacked texts are bounded (``MAX_TOKEN_CHARS``,
``MAX_TEXT_BYTES``), so a hostile link costs at most a few milliseconds and a one-line error.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from hrnet_core import HRNetConfig, UserInputError, dump_config

MAX_TOKEN_CHARS = 16_000
MAX_TEXT_BYTES = 256 * 1024
MAX_LABEL_CHARS = 300


class UrlStateError(UserInputError):
    """A link whose model parameters cannot be read."""


def pack(text: str) -> str:
    """``text`` as a URL-safe token: zlib level 9, base64url without padding."""
    return base64.urlsafe_b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii").rstrip("=")


def unpack(token: str, field: str = "cfg") -> str:
    """The text ``pack`` made ``token`` from. Raises ``UrlStateError`` naming the URL parameter ``field``."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise UrlStateError(f"URL parameter {field}: longer than {MAX_TOKEN_CHARS} characters")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        inflater = zlib.decompressobj()
        data = inflater.decompress(raw, MAX_TEXT_BYTES + 1)
        if len(data) > MAX_TEXT_BYTES or inflater.unconsumed_tail:
            raise UrlStateError(f"URL parameter {field}: unpacks to more than {MAX_TEXT_BYTES // 1024} KiB")
        if not inflater.eof:
            raise UrlStateError(f"URL parameter {field}: is cut short (copy the whole link)")
        return data.decode("utf-8")
    except (binascii.Error, zlib.error, UnicodeDecodeError, ValueError) as err:
        if isinstance(err, UrlStateError):
            raise
        raise UrlStateError(f"URL parameter {field}: not a model link, or cut short (copy the whole link)") from None


@dataclass(frozen=True)
class UrlState:
    """What a link asks for: an origin by ``preset`` label or as ``origin_text`` (project-schema YAML, with
    ``origin_label`` saying where it came from), and the edited model ``cfg_text`` (``None``: the origin)."""

    preset: str | None = None
    origin_text: str | None = None
    origin_label: str | None = None
    cfg_text: str | None = None

    @property
    def empty(self) -> bool:
        return self.preset is None and self.origin_text is None and self.cfg_text is None


def encode_state(preset: str | None, origin: HRNetConfig, cfg: HRNetConfig, origin_label: str = "") -> dict[str, str]:
    """The query parameters for the model ``cfg`` edited from ``origin``; ``preset`` is the origin's picker
    label, or ``None`` when the origin is no file (then the origin itself is packed)."""
    params: dict[str, str] = {}
    if preset is not None:
        params["preset"] = preset
    else:
        params["origin"] = pack(dump_config(origin))
        if origin_label:
            params["from"] = origin_label[:MAX_LABEL_CHARS]
    if cfg != origin:
        params["cfg"] = pack(dump_config(cfg))
    return params


def decode_state(params: Mapping[str, str]) -> UrlState:
    """The ``UrlState`` of a page's query parameters (unknown ones are ignored). Raises ``UrlStateError``."""
    preset = params.get("preset")
    if preset is not None and len(preset) > MAX_LABEL_CHARS:
        raise UrlStateError(f"URL parameter preset: longer than {MAX_LABEL_CHARS} characters")
    origin = unpack(params["origin"], "origin") if "origin" in params else None
    label = params.get("from")
    cfg = unpack(params["cfg"], "cfg") if "cfg" in params else None
    return UrlState(preset=preset, origin_text=origin, origin_label=label[:MAX_LABEL_CHARS] if label else None,
                    cfg_text=cfg)
