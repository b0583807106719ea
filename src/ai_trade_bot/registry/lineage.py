"""Lineage of a deployed version: the git commit, the DVC hash of the candles it learned
from, and report hashes (tags on the registered version)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import yaml


def git_commit(root: Path) -> str:
    """The checked-out commit (with ``-dirty`` when the tree has changes), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def dvc_hash(root: Path, output: str = "data/02_intermediate/ohlcv_clean.parquet") -> str:
    """The md5 DVC recorded for ``output`` in dvc.lock, or ``untracked``."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return "untracked"
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    for stage in stages.values():
        for out in stage.get("outs", []):
            if out.get("path") == output:
                return str(out.get("md5", "untracked"))
    return "untracked"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
