"""Universe ingestion, one time axis, cross-sectional features and the Dask fan-out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.data.ingest import parse_ingestion_config
from ai_trade_bot.errors import DataValidationError
from ai_trade_bot.features.cross_section import (
    CROSS_COLUMNS,
    CrossSectionConfig,
    cross_section_features,
    cross_section_labels,
    cross_section_last,
)
from ai_trade_bot.training.fanout import ExecutorConfig
from ai_trade_bot.training.folds import WalkForwardConfig
from ai_trade_bot.training.pooled import stack, train_universe
from ai_trade_bot.universe.ingest import load_universe
from ai_trade_bot.universe.panel import align
from tests.conftest import make_ohlcv
from tests.synthetic import make_market


def _write(frame: pd.DataFrame, path) -> None:
    frame.rename_axis("timestamp").reset_index().to_csv(path, index=False)


def test_universe_folder_drops_the_broken_symbol_by_name(tmp_path):
    for i, symbol in enumerate(["AAA", "BBB", "CCC"]):
        _write(make_ohlcv(300, seed=i, freq="1D"), tmp_path / f"{symbol}.csv")
    broken = make_ohlcv(300, seed=9, freq="1D")
    broken.loc[broken.index[:60], "high"] = broken["low"].iloc[:60] * 0.5  # high below low
    _write(broken, tmp_path / "BAD.csv")
    block = {"source": "file", "path": str(tmp_path), "min_symbols": 3}
    universe = load_universe(parse_ingestion_config(block))
    assert universe.summary["symbols"] == ["AAA", "BBB", "CCC"]
    assert "BAD" in universe.summary["dropped"]
    assert "high" in universe.summary["dropped"]["BAD"]  # the rule it broke
    for stats in universe.summary["per_symbol"].values():
        assert stats["rows_in"] == stats["rows_kept"] + stats["rows_rejected"]
    with pytest.raises(DataValidationError, match=r"min_symbols=4.*BAD"):
        load_universe(parse_ingestion_config(block | {"min_symbols": 4}))


def test_universe_calendar_24_7_coin_beside_weekday_stock_is_never_filled():
    coin = make_market("crypto", "1d", 200, seed=1)
    stock = make_market("equity", "1d", 140, seed=2)
    panel = align({"COIN": coin, "STOCK": stock})
    calendar = panel["close"].index
    assert calendar.equals(coin.index.union(stock.index))
    weekend = calendar.dayofweek >= 5
    assert panel["missing"]["STOCK"][weekend].all()
    assert panel["close"]["STOCK"][panel["missing"]["STOCK"]].isna().all()  # no forward fill
    assert not panel["missing"]["COIN"].any()
    cs = cross_section_features(panel, CrossSectionConfig(min_symbols=2, beta_window=20))
    coin_cs = cs["COIN"]
    assert len(coin_cs) == len(coin) and len(cs["STOCK"]) == len(stock)  # each on its own bars
    alone = coin_cs.index.isin(calendar[panel["missing"]["STOCK"]])
    assert coin_cs.loc[alone].isna().all().all()  # one closed bar: no cross-section
    assert coin_cs.loc[~alone, "cs_ret_rank"].notna().mean() > 0.9


def _random_panel(seed: int = 0, n: int = 260, k: int = 5) -> dict[str, pd.DataFrame]:
    frames = {f"S{i}": make_ohlcv(n, seed=seed + i, freq="1D") for i in range(k)}
    rng = np.random.default_rng(seed)
    for symbol in ("S1", "S3"):  # a few missing bars
        drop = rng.choice(n, 15, replace=False)
        frames[symbol] = frames[symbol].drop(frames[symbol].index[drop])
    return frames


def test_lookahead_cross_section_columns_cut_at_random_times():
    frames = _random_panel()
    config = CrossSectionConfig(min_symbols=3, beta_window=30)
    full = cross_section_features(align(frames), config)
    rng = np.random.default_rng(7)
    calendar = align(frames)["close"].index
    for cut in rng.choice(np.arange(80, len(calendar)), 6, replace=False):
        end = calendar[cut]
        past = cross_section_features(
            align({s: f[f.index <= end] for s, f in frames.items()}), config
        )
        for symbol, frame in past.items():
            assert list(frame.columns) == list(CROSS_COLUMNS)
            expected = full[symbol].loc[frame.index]
            pd.testing.assert_frame_equal(
                frame, expected, check_exact=True, obj=f"{symbol} @ {end}"
            )
            assert frame.notna().any().all()  # every column is covered by the comparison


def test_cross_section_last_row_is_the_full_computations_on_a_trailing_window():
    """The live book's path: the last time's row per symbol, from a trailing window of
    the panel, equals the full history's row there bit for bit; a symbol without a bar
    at that time has none."""
    frames = _random_panel(seed=3)
    config = CrossSectionConfig(min_symbols=3, beta_window=30)
    panel = align(frames)
    full = cross_section_features(panel, config)
    calendar = panel["close"].index
    rows = 2 * config.warmup + 2
    checked = 0
    for cut in range(150, len(calendar)):
        window = {k: v.iloc[cut + 1 - rows : cut + 1] for k, v in panel.items()}
        last = cross_section_last(window, config)
        have = [s for s in frames if calendar[cut] in frames[s].index]
        assert sorted(last) == sorted(have)
        for symbol, values in last.items():
            np.testing.assert_array_equal(values, full[symbol].loc[calendar[cut]].to_numpy())
            checked += np.isfinite(values).all()
    assert checked > 100


def test_cross_section_labels_rank_the_next_return_against_the_basket():
    frames = _random_panel(k=4)
    panel = align(frames)
    nxt = {s: np.log(f["close"]).diff().shift(-1) for s, f in frames.items()}
    labels = cross_section_labels(nxt, panel, CrossSectionConfig(min_symbols=3))
    t = panel["close"].index[100]
    have = [s for s in frames if t in nxt[s].index and np.isfinite(nxt[s].get(t, np.nan))]
    basket = np.mean([nxt[s][t] for s in have])
    for s in have:
        assert labels[s].loc[t, "excess_return"] == pytest.approx(nxt[s][t] - basket)


def _pooled_problem(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2020-01-01", periods=400, freq="1D", tz="UTC")
    inputs, labels = {}, {}
    for symbol in ["A", "B", "C"]:
        signal = rng.normal(size=len(times))
        nxt = 0.01 * signal + rng.normal(0, 0.01, len(times))
        inputs[symbol] = pd.DataFrame(
            {
                "f_signal": signal,
                "f_noise": rng.normal(size=len(times)),
                "bar_open": 1.0,
                "bar_high": 1.0,
                "bar_low": 1.0,
                "bar_close": 1.0,
                "bar_volume": 1.0,
            },
            index=times,
        )
        direction = np.where(nxt > 0.004, 2.0, np.where(nxt < -0.004, 0.0, 1.0))
        labels[symbol] = pd.DataFrame({"direction": direction, "next_return": nxt}, index=times)
    X = stack(inputs)
    X["symbol_id"] = X.index.get_level_values("symbol").map({"A": 0, "B": 1, "C": 2}).astype(float)
    return X, stack(labels).reindex(X.index)


@pytest.mark.timeout(900)
def test_dask_fanout_oof_is_byte_identical_to_sequential_and_loky(dask_cluster):
    X, y = _pooled_problem()
    agents = {"gbm": {"n_estimators": 40, "min_child_samples": 10, "early_stopping_rounds": 10}}
    wf = WalkForwardConfig(
        n_folds=3, min_train_fraction=0.4, val_fraction=0.15, purge=1, embargo=1, test_fraction=0.2
    )
    runs = {}
    for name, executor in {
        "sequential": ExecutorConfig(address=None, n_workers=1),
        "loky": ExecutorConfig(address=None, n_workers=2),
        "dask": ExecutorConfig(address=dask_cluster.scheduler_address),
    }.items():
        runs[name] = train_universe(
            X,
            y,
            agents,
            pooling="both",
            walk_forward=wf,
            executor=executor,
            seed=3,
            min_symbols=3,
        )
    reference = runs["sequential"].oof
    assert runs["sequential"].summary["executor"]["backend"] == "sequential"
    assert runs["dask"].summary["executor"]["backend"].startswith("dask")
    for name in ("loky", "dask"):
        oof = runs[name].oof
        assert oof.index.equals(reference.index)
        numeric = ["down", "flat", "up", "confidence", "fold"]
        assert oof[numeric].to_numpy().tobytes() == reference[numeric].to_numpy().tobytes(), name
    assert len(runs["dask"].pids) >= 2  # both worker processes did work
    summary = runs["dask"].summary["agents"]["gbm"]
    assert {"pooled", "per_symbol", "winner"} <= set(summary)
    # the planted signal is found cross-sectionally: scores rank the next returns
    assert summary["pooled"]["rank_ic"] > 0.1


def test_stack_places_every_symbol_in_time_order_like_concat_and_sort():
    frames = _random_panel(k=4)
    frames = {
        s: f.iloc[np.sort(np.random.default_rng(1).choice(len(f), 150, replace=False))]
        for s, f in frames.items()
    }  # rows missing as after warm-up and label cuts
    expected = pd.concat(frames, names=["symbol", "timestamp"]).swaplevel(0, 1).sort_index()
    got = stack(dict(frames))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got.index.get_level_values("timestamp").tz is not None


@pytest.mark.parametrize("agent", ["trend_lstm", "volatility", "regime"])
def test_pooling_refuses_agents_that_read_more_than_their_own_row(agent):
    """A window of rows (the LSTM) or a filter over all rows (volatility's GARCH, the
    HMM) over stacked symbols would mix them: pooling them is refused by name, and a
    row-local agent (LightGBM) is accepted."""
    from ai_trade_bot.agents import get_agent_class
    from ai_trade_bot.errors import ConfigError
    from ai_trade_bot.training.pooled import plan_tasks

    frames = _random_panel(k=4)
    X = stack({s: f[["close"]] for s, f in frames.items()})
    config = WalkForwardConfig(n_folds=2)
    assert not get_agent_class(agent)().row_local
    with pytest.raises(ConfigError, match=f"agent '{agent}' reads windows of rows or filters"):
        plan_tasks(X, {agent: {}}, "pooled", config, seed=1)
    assert get_agent_class("gbm")().row_local
    tasks, _, _ = plan_tasks(X, {"gbm": {}}, "pooled", config, seed=1)
    assert tasks


def test_universe_rows_bar_columns_are_the_agents():
    from ai_trade_bot.agents.base import BAR_COLUMNS
    from ai_trade_bot.features.frame import BAR_COLUMNS as ROWS_BAR_COLUMNS

    assert ROWS_BAR_COLUMNS == BAR_COLUMNS


def test_universe_meta_agent_per_symbol_and_pooled_beats_the_prior_on_a_real_signal():
    from ai_trade_bot.modeling.meta import parse_meta_config
    from ai_trade_bot.training.universe_meta import fit_universe_meta

    X, y = _pooled_problem()
    agents = {"gbm": {"n_estimators": 40, "min_child_samples": 10, "early_stopping_rounds": 10}}
    wf = WalkForwardConfig(
        n_folds=3, min_train_fraction=0.4, val_fraction=0.15, purge=1, embargo=1, test_fraction=0.2
    )
    one = ExecutorConfig(address=None, n_workers=1)
    fit = train_universe(
        X, y, agents, pooling="both", walk_forward=wf, executor=one, seed=3, min_symbols=3
    )
    config = parse_meta_config(
        {
            "methods": ["best_agent", "logistic"],
            "walk_forward": {
                "n_folds": 2,
                "min_train_fraction": 0.4,
                "val_fraction": 0.0,
                "purge": 2,
                "embargo": 2,
                "test_fraction": 0.0,
            },
        }
    )
    metas, summary, outputs = fit_universe_meta(fit.oof, y, config, one)
    assert set(metas) == {"pooled", "A", "B", "C"}
    for kind in ("pooled", "per_symbol"):  # the planted signal survives the stacking
        assert summary[kind]["beats_prior"], summary[kind]
        assert "prior" not in summary[kind]["methods"].values()
    assert set(outputs["scope"]) == {"pooled", "A", "B", "C"}
    assert outputs[["down", "flat", "up"]].notna().all().all()


def test_universe_meta_pooled_folds_never_split_a_time_between_train_and_test():
    from ai_trade_bot.modeling.meta import parse_meta_config
    from ai_trade_bot.training.folds import walk_forward_folds
    from ai_trade_bot.training.universe_meta import widened

    X, _ = _pooled_problem()  # 3 symbols: 3 stacked rows per time
    config = parse_meta_config(
        {
            "walk_forward": {
                "n_folds": 4,
                "min_train_fraction": 0.3,
                "val_fraction": 0.0,
                "purge": 1,
                "embargo": 1,
                "test_fraction": 0.0,
            }
        }
    )
    wf = WalkForwardConfig(**widened(config, 3).walk_forward)
    times = X.index.get_level_values("timestamp")
    for fold in walk_forward_folds(len(X), wf):
        seen = set(times[np.concatenate([fold.train, fold.val])])
        tested = set(times[fold.test])
        assert not seen & tested
        # at least purge + embargo whole times between the last training and first test row
        gap = tested and seen and (min(tested) - max(seen)) / pd.Timedelta("1D")
        assert gap > 2
