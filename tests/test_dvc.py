"""`dvc repro` reproduces the data stages in a fresh copy and a second one does nothing; a
changed feature parameter re-runs `features` only (what follows becomes stale); DVC
experiments with `-S`; push/pull round-trip. (The whole chain through deploy and drift is
reproduced by the retrain loop's test, tests/test_retrain.py.)"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.project_copy import clone, dvc

PLANTED_KEY, PLANTED_SECRET = "PLANTED-DVC-KEY-3c9d", "PLANTED-DVC-SECRET-77ab"
OUTS = [
    "data/02_intermediate/ohlcv_clean.parquet",
    "data/04_feature/features.parquet",
    "data/04_feature/labels.parquet",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project as a fresh clone would have it (no data, no dvc.lock)."""
    dest = clone(tmp_path_factory.mktemp("clone") / "ai_trade_bot")
    # a user's exchange keys, where the README says to put them: they must never reach
    # MLflow (parameters, tags, artifacts) or any output
    (dest / "conf" / "local").mkdir(parents=True, exist_ok=True)
    (dest / "conf" / "local" / "credentials.yml").write_text(
        f"exchange:\n  apiKey: {PLANTED_KEY}\n  secret: {PLANTED_SECRET}\n"
    )
    return dest


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _dvc(project: Path, *args: str) -> str:
    return dvc(project, *args)


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


@pytest.mark.slow
def test_a_feature_parameter_reruns_features_only_and_experiments_compare(
    project: Path,
) -> None:
    _dvc(project, "repro", "features")  # (a no-op after the test above)
    clean = _md5(project / "data/02_intermediate/ohlcv_clean.parquet")
    features = _md5(project / "data/04_feature/features.parquet")

    # an experiment that changes one feature parameter: ingestion is not re-run
    override = "conf/base/parameters_features.yml:features.rank_window=50"
    out = _dvc(project, "exp", "run", "-n", "rank50", "-S", override, "features")
    assert "Running stage 'features'" in out and "Running stage 'ingestion'" not in out
    assert _md5(project / "data/02_intermediate/ohlcv_clean.parquet") == clean
    assert _md5(project / "data/04_feature/features.parquet") != features
    # what follows `features` is stale now, and nothing before it
    status = _dvc(project, "status", "--json")
    stale = set(json.loads(status))
    assert {"train", "evaluate"} <= stale and not stale & {"ingestion", "features"}

    shown = json.loads(_dvc(project, "exp", "show", "--json", "--no-fetch"))
    names = {
        exp.get("name")
        for commit in shown
        for exp in [commit, *[e for r in commit.get("experiments") or [] for e in r["revs"]]]
    }
    assert "rank50" in names
    diff = json.loads(_dvc(project, "params", "diff", "--json"))
    # the workspace holds the experiment: its parameters against the commit's
    assert diff["conf/base/parameters_features.yml"]["features.rank_window"] == {
        "old": 100,
        "new": 50,
        "diff": -50,
    }
