"""Job files (``--config job.yaml``): a whole extraction described once, flags override it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import UsageError

KEYS = {
    "data_root": str,
    "output": str,
    "subjects": (str, list, int),
    "performances": (str, list),
    "cameras": (str, list, int),
    "frames": str,
    "modalities": (str, list),
    "layout": str,
    "workers": int,
    "image_mode": str,
    "preview": bool,
}


def load_config(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read and check a YAML job file; return one settings dict per job.

    Top-level keys apply to every job; an optional ``jobs:`` list holds parts that differ (for
    example speech parts with audio and expression parts with FLAME). Unknown keys and wrong
    types are errors.
    """
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror}") from exc
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
    base = Path(path).parent
    for key in ("data_root", "output"):
        if key in doc and not os.path.isabs(doc[key]):
            doc[key] = str(base / doc[key])
    for key in ("subjects", "performances", "cameras", "modalities"):
        if isinstance(doc.get(key), list):
            doc[key] = ",".join(str(v) for v in doc[key])
        elif isinstance(doc.get(key), int):
            doc[key] = str(doc[key])
    if str(doc.get("subjects", "")).strip().lower() == "all":
        del doc["subjects"]
    if isinstance(doc.get("subjects"), str):
        doc["subjects"] = ",".join(
            s.strip().zfill(4) if s.strip().isdigit() else s.strip()
            for s in doc["subjects"].split(",")
        )
    return doc
