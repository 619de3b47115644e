"""One error family. Every user mistake raises a subclass of :class:`SamembedError` whose message
is one line saying what is wrong and how to fix it; the CLI prints it without a traceback
(set ``SAMEMBED_DEBUG=1`` to see one)."""


class SamembedError(Exception):
    """Base class: a problem the user can fix; ``str(err)`` is the whole, one-line message."""


class UsageError(SamembedError):
    """A bad argument or combination of arguments (unknown name, value out of range, ...)."""


class DataNotFoundError(SamembedError):
    """A dataset is not where it was looked for and may not be downloaded."""


class CorruptImageError(SamembedError):
    """An image file cannot be decoded."""


class CheckpointError(SamembedError):
    """A checkpoint file is missing, unreadable or not in the expected format."""


class DownloadError(SamembedError):
    """A download failed or its checksum did not match."""


class CacheError(SamembedError):
    """The embedding cache is missing, incomplete, busy or holds something else."""


class SignatureMismatchError(CacheError):
    """The cache was written with other settings than the ones asked for now."""
