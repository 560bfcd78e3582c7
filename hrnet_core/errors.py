"""The base of every error caused by user input (configs, checkpoints, images, dataset folders), and
``quote``, the one way a message shows a user's value.

The CLI and the UI catch ``UserInputError`` and show its one-line message; anything else is a bug.

Terminal safety: ``quote`` escapes every character that is not printable (ESC, ``\\r``, the C1 CSI
``\\x9b``, NUL, bidi overrides such as U+202E, unpaired surrogates), whatever ``repr`` of the value gave
(a hostile ``__repr__`` included), and shortens the result. As a backstop for text a message shows
whole, such as a file path, ``UserInputError`` itself escapes the same characters in its message
(newlines and tabs are kept: the CLI and the UI join a message's whitespace into one line).
"""

from __future__ import annotations

import reprlib

QUOTE_LIMIT = 80  # characters of a user's value shown in a message
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 2, 6, 6, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = QUOTE_LIMIT, QUOTE_LIMIT, 40
_KEPT_IN_MESSAGES = frozenset("\n\t")


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _escape_unprintable(text: str, keep: frozenset[str] = frozenset()) -> str:
    """``text`` with every character that is not printable (``str.isprintable``) written as ``\\xNN`` /
    ``\\uNNNN`` / ``\\UNNNNNNNN``, except those in ``keep``. Linear in ``len(text)``."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in keep else _escape(ch) for ch in text)


class UserInputError(ValueError):
    """Bad user input; ``str(err)`` is one line naming the file or field, with no raw control characters
    (module docstring)."""

    def __init__(self, *args):
        if args and isinstance(args[0], str):
            args = (_escape_unprintable(args[0], _KEPT_IN_MESSAGES), *args[1:])
        super().__init__(*args)


def quote(value: object, limit: int = QUOTE_LIMIT, bare: bool = False) -> str:
    """``repr(value)`` cut to at most ``limit`` characters, with no character that is not printable (module
    docstring), at a cost bounded whatever ``value`` is (a 10 MB string, a 5000-digit integer, a
    self-referencing list, a hostile ``__repr__``): what error messages show.

    ``bare``: a string without its surrounding quote marks (a checkpoint key in a list of keys), still
    escaped and cut; other values are unaffected."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not replace the real error
        text = f"<{type(value).__name__}>"
    if not isinstance(text, str):  # reprlib hands back whatever a hostile __repr__ returned
        text = f"<{type(value).__name__}>"
    text = text[: 4 * limit] if len(text) > 4 * limit else text  # a __repr__ may return megabytes
    text = _escape_unprintable(" ".join(text.split()))  # one line, nothing a terminal acts on
    if bare and isinstance(value, str) and len(text) > 1 and text[0] in "'\"" and text.endswith(text[0]):
        text = text[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."
