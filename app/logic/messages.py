"""Error messages that name what the user sees: an uploaded file by its own name, not the temporary file the
server wrote it to (a checkpoint) or the ``<upload>`` placeholder the loaders use for bytes (an image)."""

from __future__ import annotations

from hrnet_core import UserInputError


class UploadError(UserInputError):
    """A user error about an uploaded file, worded with the file's own name."""


def name_upload(err: UserInputError, stand_ins: dict[str, str]) -> UserInputError:
    """``err`` with each stand-in (a stash path, ``<upload>``) replaced by the upload's own name (the value);
    ``err`` itself when it names none of them."""
    text = " ".join(str(err).split())
    renamed = text
    for stand_in, name in stand_ins.items():
        if stand_in and name:
            renamed = renamed.replace(stand_in, name)
    return err if renamed == text else UploadError(renamed)
