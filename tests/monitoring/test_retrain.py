"""The scheduled retrain loop end to end (scripts/retrain.sh on a fresh copy of the project,
bundled EURUSD hours, tiny agents): a first run makes a champion; a second run with no new
candles and no drift changes nothing; new candles that drifted are retrained on and gated.
Then the notebooks execute against what the loop produced."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from tests.pipelines.test_default_config import tiny
from tests.project_copy import clone, dvc, run, write_local_parameters
from tests.synthetic import drifted_candles

NOTEBOOKS = ["01_explore_data.ipynb", "02_compare_runs.ipynb"]


def tiny_loop_parameters(extra: dict | None = None) -> dict:
    """Tiny agents on the bundled EURUSD hours, the drift settings and rules as they ship."""
    params = tiny({"ingestion": {"bundled": "eurusd"}})
    # Tiny agents on these hours lose after costs, so the gate's "any champion must beat
    # doing nothing" rule would (rightly) refuse every version; this test is about the
    # loop's mechanics, and tests/test_controls.py holds that rule to a trained model.
    params["deploy"] = {"min_champion_sharpe": -1.0e9, "min_champion_trades": 0}
    return params | (extra or {})


def retrain(project: Path) -> tuple[str, dict]:
    result = run(project, "bash", "scripts/retrain.sh")
    summary = result.stdout.strip().splitlines()[-1]
    record = json.loads((project / "data/08_reporting/retrain_last.json").read_text())
    return summary, record


def training_runs(client: mlflow.MlflowClient) -> int:
    experiment = client.get_experiment_by_name("ai_trade_bot")
    runs = client.search_runs([experiment.experiment_id], "attributes.run_name = 'train'")
    return len(runs)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = clone(tmp_path_factory.mktemp("retrain") / "ai_trade_bot")
    write_local_parameters(project, tiny_loop_parameters())
    remote = tmp_path_factory.mktemp("dvc-remote")
    dvc(project, "remote", "modify", "--local", "localstore", "url", str(remote))
    return project


@pytest.mark.slow
def test_retrain_loop_first_run_noop_run_then_drift_retrains_and_gates(project: Path) -> None:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlruns/mlflow.db")

    # 1. a fresh clone: no champion yet -> train, evaluate, deploy; pushed to the remote
    summary, first = retrain(project)
    assert summary.startswith("retrain: ok"), summary
    assert "retrained (no_champion)" in summary
    assert first["pull"] == "ok" and first["push"] == "ok"
    champion = client.get_model_version_by_alias("ai_trade_bot", "champion")
    assert first["champion_after"]["version"] == str(champion.version)
    assert training_runs(client) == 1
    # dvc.lock records everything the loop produced: a plain repro has nothing to do
    assert "Data and pipelines are up to date" in dvc(project, "repro")

    # 2. no new candles, no drift: nothing changes
    summary, second = retrain(project)
    assert "no retrain" in summary and f"champion v{champion.version} (unchanged)" in summary
    assert second["candles"]["new_rows"] == 0 and not second["candles"]["changed"]
    # the default drift decision on the bundled hours: nothing changed, nothing flagged
    assert second["drift"]["feature_drift_share"] <= second["drift"]["feature_share_threshold"]
    assert second["retrain_reasons"] == []
    assert training_runs(client) == 1
    assert client.get_model_version_by_alias("ai_trade_bot", "champion").version == (
        champion.version
    )

    # 3. new candles from a different market arrive: drift -> retrain -> the gate decides
    from backtesting.test import EURUSD

    path = project / "new_candles.csv"
    drifted_candles(EURUSD).to_csv(path)
    write_local_parameters(
        project, tiny_loop_parameters({"ingestion": {"source": "file", "path": str(path)}})
    )
    summary, third = retrain(project)
    assert "retrained (data_drift)" in summary, summary
    assert third["candles"]["new_rows"] == 600
    assert third["drift"]["feature_drift_share"] > third["drift"]["feature_share_threshold"]
    assert training_runs(client) == 2
    deploy = third["deploy"]
    version = client.get_model_version("ai_trade_bot", deploy["version"])
    assert version.tags["gate.decision"] == deploy["decision"]  # the gate's decision, recorded
    assert deploy["decision"] in {"promoted", "kept_champion"}
    after = client.get_model_version_by_alias("ai_trade_bot", "champion").version
    assert (after == deploy["version"]) == deploy["promoted"]


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_executes(project: Path, notebook: str) -> None:
    """The committed notebooks have no outputs and run top to bottom on the loop's data."""
    import nbformat
    from nbclient import NotebookClient

    source = project / "notebooks" / notebook
    nb = nbformat.read(source, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")
    if not (project / "data/06_models/bundle/bundle.json").exists():
        pytest.skip("needs the retrain loop's outputs (run the whole module)")
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(project / "notebooks")}},
    ).execute()
    errors = [
        out for cell in nb.cells for out in cell.get("outputs", []) if out.output_type == "error"
    ]
    assert not errors
    images = [
        out
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]
    assert images, "the notebook draws its figures"


def test_the_age_rule_retrains_a_champion_older_than_max_age_days(registry, tmp_path) -> None:
    """The champion's age comes from the registry (its version's creation time); past
    ``retrain.max_age_days`` the loop retrains, before it does not, and ``null`` never."""
    from ai_trade_bot.monitoring.retrain import Loop, RetrainConfig

    client = mlflow.MlflowClient(tracking_uri=registry, registry_uri=registry)
    client.create_registered_model("aged")
    with mlflow.start_run() as run:
        mlflow.log_text("x", "model/x.txt")
    version = client.create_model_version("aged", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias("aged", "champion", version.version)

    loop = Loop(tmp_path, RetrainConfig(max_age_days=7.0), "aged", registry)
    champion = loop.champion()
    assert champion["version"] == str(version.version) and 0 <= champion["age_days"] < 0.01
    assert loop.reasons(champion, None) == []
    old = champion | {"age_days": 7.5}
    assert loop.reasons(old, None) == [{"rule": "age", "value": 7.5, "threshold": 7.0}]
    never = Loop(tmp_path, RetrainConfig(max_age_days=None), "aged", registry)
    assert never.reasons(champion | {"age_days": 400.0}, None) == []
    # drift's own reasons join the age's
    drift = {"retrain": True, "reasons": [{"rule": "data_drift", "value": 0.6}]}
    assert [r["rule"] for r in loop.reasons(old, drift)] == ["age", "data_drift"]
    assert Loop(tmp_path, RetrainConfig(), "nobody", registry).champion() is None
