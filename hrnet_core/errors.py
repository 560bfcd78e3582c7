"""The base of every error caused by user input (configs, checkpoints, images, dataset folders), and
``quote``, the one way a message shows a user's value.

The CLI and the UI catch ``UserInputError`` and show its one-line message; anything else is a bug.
"""

from __future__ import annotations

import reprlib

QUOTE_LIMIT = 80  # characters of a user's value shown in a message
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 2, 6, 6, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = QUOTE_LIMIT, QUOTE_LIMIT, 40


class UserInputError(ValueError):
    """Bad user input; ``str(err)`` is one line naming the file or field."""


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to at most ``limit`` characters, at a cost bounded whatever ``value`` is
    (a 10 MB string, a 5000-digit integer, a self-referencing list): what error messages show."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not replace the real error
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())  # one line
    return text if len(text) <= limit else text[: limit - 3] + "..."
