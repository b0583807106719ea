"""`dvc repro` reproduces the data stages in a fresh copy; push/pull round-trip."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLANTED_KEY, PLANTED_SECRET = "PLANTED-DVC-KEY-3c9d", "PLANTED-DVC-SECRET-77ab"
OUTS = [
    "data/02_intermediate/ohlcv_clean.parquet",
    "data/04_feature/features.parquet",
    "data/04_feature/labels.parquet",
]


def _project_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    return [
        f
        for f in listed
        if f and (ROOT / f).is_file() and not f.startswith("data/0") and f != "dvc.lock"
    ]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project as a fresh clone would have it (no data, no dvc.lock)."""
    dest = tmp_path_factory.mktemp("clone") / "ai_trade_bot"
    for rel in _project_files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    # a user's exchange keys, where the README says to put them: they must never reach
    # MLflow (parameters, tags, artifacts) or any output
    (dest / "conf" / "local").mkdir(parents=True, exist_ok=True)
    (dest / "conf" / "local" / "credentials.yml").write_text(
        f"exchange:\n  apiKey: {PLANTED_KEY}\n  secret: {PLANTED_SECRET}\n"
    )
    return dest


def _dvc(project: Path, *args: str) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "KEDRO_DISABLE_TELEMETRY": "1",
        "DVC_NO_ANALYTICS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _assert_mlflow_runs(project: Path) -> None:
    """Each `kedro run` became one MLflow run in mlruns/mlflow.db, with params and metrics."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("ai_trade_bot")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["features", "ingestion"]
    assert all(r.info.status == "FINISHED" for r in runs)
    ingestion = next(r for r in runs if r.info.run_name == "ingestion")
    assert ingestion.data.params["ingestion.source"] == "bundled"
    assert ingestion.data.metrics["data_quality_metrics.dq.rows_in"] == 5031
    assert ingestion.info.artifact_uri.startswith(f"file://{project}/mlruns/artifacts")
    artifacts = [a.path for a in client.list_artifacts(ingestion.info.run_id, "data_quality")]
    assert artifacts == ["data_quality/data_quality.json"]
    for run in runs:
        logged = " ".join([*run.data.params.values(), *run.data.tags.values()])
        assert PLANTED_KEY not in logged and PLANTED_SECRET not in logged
    for path in [*(project / "mlruns").rglob("*"), *(project / "data").rglob("*")]:
        if path.is_file():
            content = path.read_bytes()
            assert PLANTED_KEY.encode() not in content and PLANTED_SECRET.encode() not in content


@pytest.mark.slow
def test_dvc_repro_then_nothing_to_do_then_push_pull(project: Path, tmp_path: Path) -> None:
    assert "analytics = false" in (project / ".dvc" / "config").read_text()
    first = _dvc(project, "repro", "features")  # ingestion + features; train is slow
    assert "Running stage 'ingestion'" in first and "Running stage 'features'" in first
    digests = {rel: _md5(project / rel) for rel in OUTS}
    _assert_mlflow_runs(project)

    # running code writes Python and numba caches into the code dependencies: not a change
    cache = project / "src" / "ai_trade_bot" / "features" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "build.cpython-312.pyc").write_bytes(b"compiled")
    (cache / "kernel.py312.nbi").write_bytes(b"numba index")
    second = _dvc(project, "repro", "features")
    assert "Running stage" not in second
    assert "Data and pipelines are up to date" in second

    _dvc(project, "remote", "modify", "--local", "localstore", "url", str(tmp_path / "remote"))
    _dvc(project, "push", "--with-deps", "features")
    for rel in OUTS:
        (project / rel).unlink()
    shutil.rmtree(project / ".dvc" / "cache")
    _dvc(project, "pull", "--with-deps", "features")
    assert {rel: _md5(project / rel) for rel in OUTS} == digests
