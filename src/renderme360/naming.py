"""File-name grammar of SMC files and validation of every id that becomes part of a path.

Names read from files (attributes, HDF5 keys) are untrusted: they pass through these functions
before they reach the filesystem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidIdError, UnsafeNameError

ACTOR_RE = re.compile(r"^[0-9]{4}$")
# e0..e11, s1_all, h0, wig takes h1_2bk; a kind letter, an index, an optional alnum suffix.
PERFORMANCE_RE = re.compile(r"^[a-z][0-9]{1,3}(?:_[a-z0-9]{1,16})?$")
CAMERA_RE = re.compile(r"^[0-9]{2}$")
FRAME_RE = re.compile(r"^(?:0|[1-9][0-9]{0,8})$")
SMC_NAME_RE = re.compile(
    r"^(?P<actor>[0-9]{4})_(?P<perf>[a-z][0-9]{1,3}(?:_(?!(?:anno|raw)\.smc$)[a-z0-9]{1,16})?)"
    r"(?:_(?P<role>anno|raw))?\.smc$"
)

#: The frontal cameras (within about 40 degrees of the face): the only ones with 2-D keypoints.
FRONTAL_CAMERAS: tuple[str, ...] = tuple(f"{i:02d}" for i in range(18, 33))

KIND_NAMES = {"e": "expression", "s": "speech", "h": "head"}
MAX_FRAME = 999_999_999


@dataclass(frozen=True)
class SMCName:
    """The parts of an SMC file name: ``{actor}_{performance}[_anno|_raw].smc``."""

    actor: str
    performance: str
    role: str  # "anno", "raw" or "smc" (a file with neither suffix)

    @property
    def kind(self) -> str:
        """Performance kind: expression, speech, head, or other."""
        return performance_kind(self.performance)


def parse_smc_name(filename: str) -> SMCName | None:
    """Parse an SMC file name; return None when it does not follow the grammar."""
    m = SMC_NAME_RE.fullmatch(filename)
    if not m:
        return None
    return SMCName(m["actor"], m["perf"], m["role"] or "smc")


def performance_kind(performance: str) -> str:
    """Map a performance name to its kind (``e0`` -> expression, ``s1_all`` -> speech)."""
    return KIND_NAMES.get(performance[:1], "other")


def validate_actor(value: object, source: str = "") -> str:
    """Return ``value`` if it is a 4-digit actor id, else raise UnsafeNameError."""
    return _check(ACTOR_RE, value, "actor id", "4 digits like 0026", source)


def validate_performance(value: object, source: str = "") -> str:
    """Return ``value`` if it is a performance name like ``e0``, ``s1_all``, ``h1_2bk``."""
    return _check(PERFORMANCE_RE, value, "performance name", "like e0, s1_all, h1_2bk", source)


def camera_key(cam: object) -> str:
    """Normalise a camera given as int or string (``3``, ``"3"``, ``"03"``) to ``"03"``;
    anything else (an untrusted value of any type) is an InvalidIdError."""
    if isinstance(cam, (int,)) and not isinstance(cam, bool):
        if 0 <= cam <= 99:
            return f"{cam:02d}"
    elif isinstance(cam, (str, bytes)):
        s = cam.decode("ascii", "replace") if isinstance(cam, bytes) else cam
        if s.isascii() and s.isdigit() and len(s) <= 2:
            return f"{int(s):02d}"
    raise InvalidIdError(f"invalid camera id {cam!r}: expected 0..99")


def _check(pattern: re.Pattern[str], value: object, what: str, form: str, source: str) -> str:
    """``value`` if it is a ``str`` matching ``pattern`` in full, else UnsafeNameError.

    The message starts with the file it came from, so a batch report names the culprit.
    """
    if not isinstance(value, str) or not pattern.fullmatch(value):
        where = f"{source}: " if source else ""
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise UnsafeNameError(
            f"{where}refusing {what} {shown}: not of the documented form ({form})"
        )
    return value
