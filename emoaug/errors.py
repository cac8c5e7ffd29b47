"""User-facing errors: ``str(err)`` is one line that names the file or option at fault."""

from __future__ import annotations


class EmoaugError(Exception):
    """An error caused by the user's input (data, flags, config); the CLI prints it as one line."""


class BadAudioError(EmoaugError):
    """A single audio file cannot be used (empty, corrupt, not audio, NaN, silent)."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class LeakageError(EmoaugError):
    """Test or validation data reached something that may only see the training fold."""


class WriteFailed(EmoaugError):
    """A file of the store, a cache or a run folder could not be written (disk full, quota, read-only,
    permissions, I/O error); the message names the file and the free space on its disk."""
