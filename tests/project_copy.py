"""A copy of the project as a fresh clone has it, for tests that run its commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def clone(dest: Path) -> Path:
    """Committed and untracked-but-not-ignored files (no data, no dvc.lock, no conf/local),
    in a new git repository with one commit (DVC experiments need one)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    for rel in listed:
        if not (ROOT / rel).is_file() or rel == "dvc.lock":
            continue
        if rel.startswith("data/0") and not rel.endswith(".gitkeep"):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "clone"], cwd=dest, check=True)
    return dest


def write_local_parameters(project: Path, params: dict[str, Any]) -> None:
    """conf/local/parameters.yml: overrides of conf/base (Kedro merges them softly)."""
    (project / "conf" / "local").mkdir(parents=True, exist_ok=True)
    (project / "conf" / "local" / "parameters.yml").write_text(yaml.safe_dump(params))


def command_env() -> dict[str, str]:
    """The test interpreter's venv first on PATH (kedro, dvc), no telemetry."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHON": sys.executable,
        "KEDRO_DISABLE_TELEMETRY": "1",
        "DVC_NO_ANALYTICS": "1",
    }


def run(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        list(args), cwd=project, env=command_env(), capture_output=True, text=True
    )
    if check:
        assert result.returncode == 0, (
            f"{' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def dvc(project: Path, *args: str, check: bool = True) -> str:
    return run(project, sys.executable, "-m", "dvc", *args, check=check).stdout
