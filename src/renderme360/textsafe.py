"""Text that always encodes: paths with undecodable bytes printed and written without errors.

Python hands a file name holding bytes that are not UTF-8 back as lone surrogates
(``surrogateescape``), which no UTF-8 writer accepts. Everything the tool prints or writes as
text goes through the ``renderme360-printable`` error handler: an escaped byte becomes ``\\xff``,
any other lone surrogate ``\\udXXX``. JSON keeps them as ``\\udcff`` escapes (``json.dumps``
default), from which ``os.fsencode`` recovers the exact name.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import math
from typing import Any

ERRORS = "renderme360-printable"


def _printable(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = []
    for ch in exc.object[exc.start : exc.end]:
        code = ord(ch)
        out.append(f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}")
    return "".join(out), exc.end


codecs.register_error(ERRORS, _printable)


def printable(text: str) -> str:
    """``text`` with every character UTF-8 cannot hold (an undecodable byte) spelled out."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", ERRORS).decode("utf-8")
    return text


def encode_text(text: str) -> bytes:
    """UTF-8 bytes of ``text``; undecodable bytes of file names are spelled out, never an error."""
    return text.encode("utf-8", ERRORS)


def printable_streams(*streams: Any) -> None:
    """Make text streams (stdout, stderr) spell out undecodable bytes instead of failing."""
    for stream in streams:
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # a closed or special stream
                reconfigure(errors=ERRORS)


def finite_json(value: Any) -> Any:
    """``value`` (dicts, lists, tuples, scalars) with every NaN or infinite float as None.

    For documents where a non-finite number is a legitimate answer (an infinite reprojection
    error): strict JSON has no NaN/Infinity, and every document is dumped with
    ``allow_nan=False``, so such a value becomes ``null`` here rather than invalid JSON.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def strict_json(doc: Any, indent: int | None = 1) -> str:
    """``doc`` as strict JSON text (a NaN or infinite number is null, never a bare ``NaN``;
    unknown objects as text): what every ``--json`` document prints."""
    return json.dumps(finite_json(doc), indent=indent, default=str, allow_nan=False)
