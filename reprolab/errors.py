"""Errors the kit raises on bad input.

Every error is one line that says what went wrong *and names the fix*, so a student never has to read a traceback
to know what to do next. All derive from :class:`ReprolabError`, so ``except ReprolabError`` catches the kit's
own complaints and nothing else.
"""


class ReprolabError(Exception):
    """Base class: a one-line message that names the fix."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # force a single line


class MissingWeightsError(ReprolabError):
    """Pretrained weights cannot be found or fetched (e.g. offline without a local checkpoint)."""


class DatasetNotFoundError(ReprolabError):
    """A dataset is not on disk and cannot be downloaded."""


class CorruptFileError(ReprolabError):
    """An image, checkpoint or results file is unreadable or truncated."""


class ConfigError(ReprolabError):
    """A config has an unknown key, a wrong type or a value out of range."""


class CheckpointError(ReprolabError):
    """A checkpoint is missing, corrupt or does not match the model it is loaded into."""


class NonFiniteLossError(ReprolabError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""


class ShapeError(ReprolabError):
    """A tensor has the wrong shape or range for the call it was passed to."""
