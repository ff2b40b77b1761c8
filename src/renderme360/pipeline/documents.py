"""JSON documents of surveys and plans: ``explore --json`` and ``extract --dry-run --json``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .run import Request, Survey


def explore_document(s: Survey) -> dict[str, Any]:
    """What one performance holds, file by file, and what a full extraction would write."""
    files: dict[str, Any] = {}
    plan = s.plan
    for role, path in s.perf.files.items():
        inv = plan.inventories.get(role) if plan else None
        files[role] = inv.summary() if inv else {"source": {"path": str(path)}, "error": s.error}
    return {
        "actor": s.perf.actor,
        "performance": s.perf.performance,
        "files": files,
        "extract_bytes": plan.total_bytes if plan else 0,
        "extract_files": plan.total_files if plan else 0,
        "extract_bytes_by_modality": plan.bytes_by("modality") if plan else {},
        "warnings": plan.warnings if plan else [],
    }


def dry_run_document(surveys: Sequence[Survey], req: Request) -> dict[str, Any]:
    """What an extraction would write, performance by performance (nothing is written)."""
    perfs = []
    for s in surveys:
        plan = s.plan
        perfs.append(
            {
                "performance": s.perf.key,
                "status": "complete" if s.complete else ("failed" if plan is None else "planned"),
                "error": s.error,
                "files": plan.total_files if plan else 0,
                "bytes": plan.total_bytes if plan else 0,
                "remaining_files": s.remaining_files,
                "remaining_bytes": s.remaining_bytes,
                "bytes_by_modality": plan.bytes_by("modality") if plan else {},
                "files_by_modality": plan.files_by_modality() if plan else {},
                "cameras": plan.cameras if plan else None,
                "folders": plan.folders() if plan else [],
                "notes": plan.notes if plan else [],
                "warnings": plan.warnings if plan else [],
                "out_dir": str(Path(req.out_root) / s.perf.key),
            }
        )
    return {
        "dry_run": True,
        "output": str(req.out_root),
        "layout": req.layout,
        "performances": perfs,
        "total_bytes": sum(p["remaining_bytes"] for p in perfs),
    }
