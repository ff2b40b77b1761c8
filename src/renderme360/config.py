"""Job files (``--config job.yaml``): a whole extraction described once, flags override it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import UsageError
from .naming import MAX_FRAME

#: The framings of the video exports (``--crop``): a fixed square box around the face, or the
#: whole image. Here, not in export/video.py, so the command line is built without numpy.
CROPS = ("face", "full")

KEYS: dict[str, type | tuple[type, ...]] = {
    "data_root": str,
    "output": str,
    "subjects": (str, list, int),
    "performances": (str, list, int),
    "cameras": (str, list, int),
    "frames": (str, int),
    "modalities": (str, list),
    "layout": str,
    "workers": int,
    "image_mode": str,
    "preview": bool,
}


MAX_CONFIG_BYTES = 1 << 20  # a job file is a few hundred bytes


class _TypedInt(int):
    """An integer read from a job file that remembers the text typed: YAML 1.1 reads ``0026`` as
    octal 22 and ``10:20`` as 620, but ids and frame ranges mean the digits as written."""

    text: str

    def __new__(cls, value: int, text: str) -> _TypedInt:
        obj = super().__new__(cls, value)
        obj.text = text
        return obj


#: Settings whose values are ids or ranges: kept as the text typed, never as a YAML number.
TEXT_KEYS = ("subjects", "performances", "cameras", "frames", "modalities")


_EXAMPLES = {"performances": "e0", "cameras": "22", "frames": "0:30", "modalities": "images"}


def _as_text(key: str, value: Any, path: str | os.PathLike[str]) -> str:
    """One id (or range) of ``key`` as the user typed it; other scalars are refused, naming the
    quoting fix (``1.5``, ``true``, ``null`` and mappings are no ids)."""
    if isinstance(value, _TypedInt):
        return value.text
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise UsageError(
        f"config {path}: {key} holds {type(value).__name__} {str(value)[:40]!r}, not an id;"
        f" quote ids, e.g. {key}: ['{_EXAMPLES.get(key, '0026')}']"
    )


def _loader() -> type:
    """A SafeLoader that refuses aliases (``*name``): nested aliases expand exponentially (an
    "alias bomb" takes seconds and gigabytes), and a job file never needs them. Integers keep
    the text typed (:class:`_TypedInt`)."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def construct_yaml_int(self, node: Any) -> Any:
            return _TypedInt(super().construct_yaml_int(node), str(node.value))

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, "aliases (*name) are not allowed in job files", event.start_mark
                )
            return super().compose_node(parent, index)

    NoAliasLoader.add_constructor("tag:yaml.org,2002:int", NoAliasLoader.construct_yaml_int)
    return NoAliasLoader


def load_config(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read and check a YAML job file; return one settings dict per job.

    Top-level keys apply to every job; an optional ``jobs:`` list holds parts that differ (for
    example speech parts with audio and expression parts with FLAME). Unknown keys and wrong
    types are errors.
    """
    import yaml

    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise UsageError(f"config {path} is larger than {MAX_CONFIG_BYTES:,} bytes: not a job file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"config {path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        doc = yaml.load(text, Loader=_loader())  # a SafeLoader without aliases
    except yaml.YAMLError as exc:
        raise UsageError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if doc is None:
        return [{}]
    if not isinstance(doc, dict):
        raise UsageError(f"config {path}: expected a mapping of keys to values")
    parts = doc.pop("jobs", None)
    if parts is None:
        return [_check(doc, path)]
    if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) for p in parts):
        raise UsageError(f"config {path}: jobs must be a list of mappings")
    return [_check({**doc, **part}, path) for part in parts]


def _check(doc: dict[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    doc = dict(doc)
    for key, value in doc.items():
        if key not in KEYS:
            raise UsageError(f"config {path}: unknown key {key!r}; known: {', '.join(KEYS)}")
        if not isinstance(value, KEYS[key]) or isinstance(value, bool) != (KEYS[key] is bool):
            raise UsageError(f"config {path}: {key} has the wrong type ({type(value).__name__})")
    if "workers" in doc and doc["workers"] < 1:
        raise UsageError(
            f"config {path}: workers must be a whole number >= 1, got {doc['workers']}"
        )
    base = Path(path).parent
    for key in ("data_root", "output"):
        if key in doc and not os.path.isabs(doc[key]) and "://" not in doc[key]:
            doc[key] = str(base / doc[key])
    for key in TEXT_KEYS:
        if isinstance(doc.get(key), list):
            doc[key] = ",".join(_as_text(key, v, path) for v in doc[key])
        elif key in doc:
            doc[key] = _as_text(key, doc[key], path)
    if "workers" in doc:
        doc["workers"] = int(doc["workers"])  # a plain int, not the typed text
    if str(doc.get("subjects", "")).strip().lower() == "all":
        del doc["subjects"]
    if isinstance(doc.get("subjects"), str):
        doc["subjects"] = ",".join(
            s.strip().zfill(4) if s.strip().isascii() and s.strip().isdigit() else s.strip()
            for s in doc["subjects"].split(",")
        )
    return doc


def positive_int(text: str) -> int:
    """argparse type of counts (``--workers``): a whole number >= 1, refused at parse time."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def frame_index(text: str) -> int:
    """argparse type of ``--frame N``: a frame index 0..MAX_FRAME (the frame-id grammar's
    bound), refused at parse time: a huge number would overflow C integers later."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a frame index") from None
    if not 0 <= value <= MAX_FRAME:
        raise argparse.ArgumentTypeError(f"a frame index is 0..{MAX_FRAME}, got {text[:40]}")
    return value


#: Command-line option name -> settings key (the names of job files).
FLAG_KEYS = {
    "root": "data_root",
    "output": "output",
    "subject": "subjects",
    "performance": "performances",
    "cameras": "cameras",
    "frames": "frames",
    "modalities": "modalities",
    "layout": "layout",
    "workers": "workers",
    "image_mode": "image_mode",
    "preview": "preview",
}


def merge_settings(
    config: str | os.PathLike[str] | None, flags: dict[str, Any], sample: bool = False
) -> list[dict[str, Any]]:
    """One settings dict per job: the jobs of ``config`` (or one empty job) with ``flags`` over
    them (flags given, i.e. not None, win); ``sample`` fills cameras/frames left unset.

    ``flags`` uses the command-line names (see :data:`FLAG_KEYS`).
    """
    jobs = load_config(config) if config else [{}]
    flags = {FLAG_KEYS[k]: v for k, v in flags.items() if k in FLAG_KEYS}
    merged = []
    for job in jobs:
        m = {**job, **{k: v for k, v in flags.items() if v is not None}}
        if sample:
            m.setdefault("cameras", "ring:4")
            m.setdefault("frames", "0:30:10")
        if not m.get("data_root"):
            raise UsageError("no dataset root: give ROOT or data_root in --config")
        m.setdefault("output", "renderme360_out")
        if not str(m["output"]).strip():  # Path("") is the current folder: never meant
            raise UsageError("empty output folder: give -o DIR (default: renderme360_out)")
        merged.append(m)
    return merged
