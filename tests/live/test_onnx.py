"""The networks on ONNX Runtime: exported with the bundle and checked against torch (else
refused by name), run by the live path with torch as the fallback."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ai_trade_bot.nn import onnx_runtime
from ai_trade_bot.registry.bundle import Bundle
from tests.live.conftest import ScriptedFeed, make_runner, split

NETWORKS = {"trend_lstm", "trend_transformer", "volatility", "pattern", "regime"}


def test_onnx_every_network_is_exported_and_checked(tiny_run) -> None:
    path = tiny_run["bundle_path"]
    record = json.loads((path / "bundle.json").read_text())
    networks = set(record["onnx"])
    assert networks == NETWORKS & set(record["agents"])
    for name in networks:
        assert (path / "agents" / name / "net.onnx").stat().st_size > 1000
        assert 0 <= record["onnx"][name]["max_abs_diff"] <= onnx_runtime.TOLERANCE


def test_onnx_export_outside_the_tolerance_is_refused_by_name(tiny_run, tmp_path, monkeypatch):
    bundle = Bundle.load(tiny_run["bundle_path"])
    monkeypatch.setattr(onnx_runtime, "TOLERANCE", 1e-15)  # float32 cannot meet it
    with pytest.raises(onnx_runtime.OnnxExportError, match=r"agent '\w+'.*refused"):
        bundle.save(tmp_path / "bundle")


def _run(tiny_run, path, bundle, **config):
    history, candles = split(tiny_run, 60)
    runner, store = make_runner(path, ScriptedFeed(history, candles), str(bundle), **config)
    runner.start()
    runner.run()
    return runner, store.decisions("EURUSD", 1000)


def test_onnx_runner_decides_as_the_torch_path(tiny_run, tmp_path) -> None:
    runner, onnx = _run(tiny_run, tmp_path / "onnx.db", tiny_run["bundle_path"], inference="onnx")
    assert {n for n, r in runner.model.stream.runtimes.items() if r == "onnx"} == NETWORKS & set(
        runner.bundle.agents
    )
    _, torch = _run(tiny_run, tmp_path / "torch.db", tiny_run["bundle_path"], inference="torch")
    assert list(onnx["reason"]) == list(torch["reason"])
    for column in ("down", "flat", "up", "confidence"):
        np.testing.assert_allclose(onnx[column], torch[column], rtol=0, atol=1e-5)
    votes_onnx = [json.loads(v) for v in onnx["votes"]]
    votes_torch = [json.loads(v) for v in torch["votes"]]
    for a, b in zip(votes_onnx, votes_torch, strict=True):
        for agent in NETWORKS & set(a):
            for key, value in a[agent].items():
                if value is not None:
                    assert value == pytest.approx(b[agent][key], abs=1e-5), (agent, key)
    assert any(  # ONNX ran: float32 outputs are not the float64 ones bit for bit
        a[n] != b[n]
        for a, b in zip(votes_onnx, votes_torch, strict=True)
        for n in NETWORKS & set(a)
    )


def test_onnx_a_broken_export_falls_back_to_torch(tiny_run, tmp_path, caplog) -> None:
    broken = tmp_path / "bundle"
    shutil.copytree(tiny_run["bundle_path"], broken)
    (broken / "agents" / "trend_lstm" / "net.onnx").write_bytes(b"not an onnx model")
    runner, decisions = _run(tiny_run, tmp_path / "s.db", broken, inference="onnx")
    assert runner.model.stream.runtimes["trend_lstm"] == "torch"
    assert runner.model.stream.runtimes["trend_transformer"] == "onnx"
    assert decisions["up"].notna().all()
    assert "ONNX Runtime refused" in caplog.text
