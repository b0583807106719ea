"""`kedro run --pipeline=universe` (what `make run` runs) on a fresh clone, on a folder of
the user's own files: one file per symbol, one of them broken, a subset picked with
ingestion.symbols; no other edit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import make_ohlcv
from tests.project_copy import clone, run


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_universe_run_on_a_folder_of_user_files_from_a_fresh_clone(tmp_path: Path) -> None:
    project = clone(tmp_path / "ai_trade_bot")
    folder = tmp_path / "my_symbols"
    folder.mkdir()
    for i, symbol in enumerate(["AAA", "BBB", "CCC", "DDD", "EEE"]):
        frame = make_ohlcv(900, seed=10 + i, freq="1D", start="2015-01-01")
        if symbol == "DDD":  # breaks a rule on a third of its rows: dropped, by name
            frame.loc[frame.index[:300], "high"] = frame["low"].iloc[:300] * 0.5
        frame.rename_axis("timestamp").reset_index().to_csv(folder / f"{symbol}.csv", index=False)
    kedro = str(Path(sys.executable).parent / "kedro")
    params = (
        f"ingestion.source=file,ingestion.path={folder},"
        "ingestion.symbols=AAA BBB CCC DDD,ingestion.min_symbols=3"
    )
    result = run(project, kedro, "run", "--pipeline=universe", "--params", params)
    reports = project / "data" / "08_reporting" / "universe"
    quality = json.loads((reports / "data_quality.json").read_text())
    assert quality["symbols"] == ["AAA", "BBB", "CCC"]  # EEE not asked for, DDD dropped
    assert "DDD" in quality["dropped"]
    summary = json.loads((reports / "train_summary.json").read_text())
    gbm = summary["agents"]["gbm"]
    assert {"pooled", "per_symbol", "winner"} <= set(gbm)
    assert "rank_ic" in gbm["pooled"] and "icir" in gbm["per_symbol"]
    assert set(gbm["per_symbol"]["per_symbol"]) == {"AAA", "BBB", "CCC"}
    evaluation = json.loads((reports / "evaluation.json").read_text())
    assert evaluation["span"]["symbols"] == ["AAA", "BBB", "CCC"]
    assert {"gbm:pooled", "gbm:per_symbol", "baseline:buy_and_hold"} <= set(evaluation["baskets"])
    assert "dsr" in evaluation["statistics"]["gbm:pooled"]
    html = (reports / "report.html").read_text()
    assert "Research software" in html and "DDD" in html
    assert "universe basket gbm:pooled" in result.stdout + result.stderr
    # the basket traded as one book, chosen on validation rows, with honest statistics
    book = evaluation["portfolio"]
    assert book["deployed"]["method"] in ("strategy", "topk", "equal", "confidence",
                                          "volatility", "risk")  # fmt: skip
    assert book["n_trials"] == 3 * len(book["trials"])
    assert {"baseline:buy_and_hold", "baseline:sma_20_50"} <= set(book["baselines"])
    assert "the universe as one book" in html
    # the universe bundle is registered and gated; its book on the held-out span is the
    # evaluation's (the same code, from the saved bundle)
    deployed = json.loads((reports / "deploy_report.json").read_text())
    assert deployed["model_name"] == "ai_trade_bot_universe" and deployed["version"] == "1"
    assert deployed["decision"] in ("first_champion", "no_champion") and deployed["reasons"]
    assert deployed["challenger"]["n_trades"] == book["metrics"]["n_trades"]
    assert abs(deployed["challenger"]["sharpe"] - book["metrics"]["sharpe"]) < 1e-9
    assert (project / "data/06_models/universe/bundle/universe_bundle.json").exists()
