"""One exception hierarchy: every failure the tool reports to a user is a ``Renderme360Error``.

The CLI turns these into a single line on stderr and an exit code; anything else is a bug.
"""

from __future__ import annotations


class Renderme360Error(Exception):
    """Base class of every error this package raises on purpose."""

    exit_code = 1
    #: The message as command-line users should read it (flags, not keyword arguments), when
    #: it differs from the Python one; the CLI prints it instead of ``str(exc)``.
    cli_message: str | None = None


class SMCFormatError(Renderme360Error):
    """An SMC file is not HDF5, is truncated, or holds data of the wrong shape or type."""


class SMCOpenError(SMCFormatError, OSError):
    """HDF5 cannot open or read an SMC file (missing, not HDF5, truncated, corrupt).

    Also an ``OSError``, which is what ``h5py`` (and so the published reader) raises there.
    """

    def __str__(self) -> str:  # OSError would print its errno fields when given several args
        return str(self.args[0]) if self.args else ""


class SMCNotFoundError(SMCOpenError, FileNotFoundError):
    """The SMC file does not exist (a ``FileNotFoundError``, as from ``h5py.File``)."""


class _PlainKeyMessage(KeyError):
    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class InvalidIdError(Renderme360Error, _PlainKeyMessage):
    """A camera, frame, actor or performance id is malformed or not present in a file.

    Subclasses ``KeyError`` so code written against the published reader keeps working.
    """


class MissingDataError(Renderme360Error, _PlainKeyMessage):
    """A group, dataset or attribute that the published reader indexes directly is absent.

    A ``KeyError``, as the published reader raises there (e.g. ``get_scanmesh()`` of a file
    without ``/Scan``); the project's own extraction API answers None or ``[]`` instead.
    """


class InvalidArgumentError(Renderme360Error, AssertionError):
    """A published-API argument names nothing the file holds, or has a type the call refuses.

    An ``AssertionError`` because that is what the published reader raises (through ``assert``)
    and what code written for it catches; deliberately not a ``KeyError``.
    """


class UnsafeNameError(Renderme360Error):
    """A name read from a file would escape the output folder or is not of the documented form."""


class NotRegularFileError(UnsafeNameError):
    """A file the tool reads from a folder it does not trust is a symlink, FIFO, device or
    folder: it is never opened for reading (a symlink could point anywhere, a FIFO blocks)."""


class BudgetError(Renderme360Error):
    """A file declares more pixels or bytes than its reader allows (a decompression bomb):
    refused from its header, before anything is allocated."""


class NotFoundError(Renderme360Error):
    """A subject, performance or SMC file the user asked for does not exist."""

    exit_code = 2


class UsageError(Renderme360Error):
    """The user's selection or options cannot be satisfied (bad range, unknown modality, ...)."""

    exit_code = 2


class EmptySelectionError(Renderme360Error):
    """A performance holds nothing the selection asks for (frames or cameras it does not have)."""

    exit_code = 6


class InsufficientSpaceError(Renderme360Error):
    """The planned extraction does not fit in the free space of the output filesystem."""

    exit_code = 3


class DiskFullError(Renderme360Error):
    """The disk filled up while writing; no partial file was left under a final name."""

    exit_code = 3


class LockedError(Renderme360Error):
    """Another process is extracting the same performance into the same place."""

    exit_code = 4


class VerifyError(Renderme360Error):
    """Output files do not match their manifest or their source."""

    exit_code = 5


class CorruptOutputError(Renderme360Error):
    """A file of an output folder read back (file list, journal) is not in a form the tool
    writes, e.g. a line far longer than any line it writes."""


class ExtractionFailed(Renderme360Error):
    """One or more performances of a batch failed; the others were extracted."""

    exit_code = 6


class IncompleteError(Renderme360Error):
    """An extracted folder has no completion marker (interrupted, or still being written)."""

    exit_code = 6


class Interrupted(Renderme360Error):
    """The user interrupted the run; completed files are kept and a re-run resumes."""

    exit_code = 130
    message = "interrupted; finished files are kept: run the same command again to resume"


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (a KeyError without its quotes)."""
    raw = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    lines = str(raw).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def is_disk_full(exc: BaseException) -> bool:
    """Whether an OS error means the disk or the quota is full."""
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class Terminated(KeyboardInterrupt):
    """SIGTERM (SLURM, systemd, ``kill``): stop like Ctrl-C, then exit 143 (128 + 15)."""

    exit_code = 143
