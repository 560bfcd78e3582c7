"""The base of every error caused by user input (configs, checkpoints, images, dataset folders).

The CLI and the UI catch ``UserInputError`` and show its one-line message; anything else is a bug.
"""


class UserInputError(ValueError):
    """Bad user input; ``str(err)`` is one line naming the file or field."""
