"""The meta-agent's voting rules, disagreement and interval by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ai_trade_bot.errors import ConfigError, DataValidationError, ModelNotFittedError
from ai_trade_bot.modeling.meta import ABS_PER_SIGMA, MetaAgent
from ai_trade_bot.modeling.scoring import log_loss


def _oof() -> pd.DataFrame:
    idx = pd.date_range("2024-01-01", periods=2, freq="1D", tz="UTC")
    return pd.DataFrame(
        {
            "a.down": [0.6, 0.2],
            "a.flat": [0.2, 0.2],
            "a.up": [0.2, 0.6],
            "a.confidence": [0.9, 0.5],
            "b.down": [0.2, 0.2],
            "b.flat": [0.2, 0.2],
            "b.up": [0.6, 0.6],
            "b.confidence": [0.1, 0.5],
            "volatility.pred_vol": [0.01, 0.02],
            "regime.p_trending_up": [0.7, 0.1],
            "regime.p_trending_down": [0.1, 0.1],
            "regime.p_ranging": [0.1, 0.7],
            "regime.p_high_vol": [0.1, 0.1],
        },
        index=idx,
    )


def test_votes_disagreement_interval_and_regime_by_hand() -> None:
    oof = _oof()
    labels = pd.Series([0.0, 2.0], index=oof.index)
    vote = MetaAgent(method="confidence_vote").fit(oof, labels).predict(oof)
    # row 0: weights 0.9 / 0.1 -> up = 0.9 * 0.2 + 0.1 * 0.6
    assert vote["up"].iloc[0] == pytest.approx(0.24)
    # disagreement: mean TV distance from the average, 0.5 * (0.2 + 0 + 0.2) per agent
    assert vote["disagreement"].iloc[0] == pytest.approx(0.2)
    assert vote["disagreement"].iloc[1] == pytest.approx(0.0)
    assert vote["confidence"].iloc[0] == pytest.approx(0.56 * (1 - 0.2))
    assert vote["magnitude"].iloc[1] == pytest.approx(0.02 * ABS_PER_SIGMA)
    assert vote["upper"].iloc[1] - vote["lower"].iloc[1] == pytest.approx(2 * 1.96 * 0.02)
    assert vote["regime"].tolist() == [0.0, 2.0]
    majority = MetaAgent(method="majority_vote").fit(oof, labels).predict(oof)
    # row 0: one vote down, one up -> (1 + 0.5) / 3.5 each
    assert majority["down"].iloc[0] == pytest.approx(1.5 / 3.5)
    assert majority["up"].iloc[1] == pytest.approx(2.5 / 3.5)


def test_meta_errors() -> None:
    with pytest.raises(ConfigError, match="meta method 'vote' unknown"):
        MetaAgent(method="vote")
    with pytest.raises(ModelNotFittedError, match="meta-agent is not fitted"):
        MetaAgent().predict(_oof())
    with pytest.raises(DataValidationError, match="no direction agent outputs"):
        MetaAgent().fit(_oof()[["volatility.pred_vol"]], pd.Series([0.0, 1.0]))
    bad = _oof().drop(columns="b.confidence")
    with pytest.raises(DataValidationError, match=r"missing columns \['b.confidence'\]"):
        MetaAgent(agents=("a", "b")).fit(bad, pd.Series([0.0, 2.0], index=bad.index))
    assert np.isfinite(
        MetaAgent(method="logistic")
        .fit(pd.concat([_oof()] * 10).reset_index(drop=True), pd.Series([0.0, 2.0] * 10))
        .predict(_oof().reset_index(drop=True))["up"]
    ).all()


def _signal_oof(n: int, seed: int, *, signal: bool) -> tuple[pd.DataFrame, pd.Series]:
    """Two agents' outputs; with ``signal`` agent a's probabilities follow the labels."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2020-01-01", periods=n, freq="1D", tz="UTC")
    y = rng.choice(3, size=n, p=[0.3, 0.3, 0.4])
    frame = {}
    for agent in ("a", "b"):
        probs = rng.dirichlet([2, 2, 2], size=n)
        if signal and agent == "a":
            probs = 0.5 * probs + 0.5 * np.eye(3)[y]
        for k, c in enumerate(("down", "flat", "up")):
            frame[f"{agent}.{c}"] = probs[:, k]
        frame[f"{agent}.confidence"] = probs.max(axis=1)
    return pd.DataFrame(frame, index=idx), pd.Series(y.astype(float), index=idx)


def test_prior_method_outputs_the_training_class_shares_and_never_informs() -> None:
    oof, labels = _signal_oof(200, seed=0, signal=True)
    out = MetaAgent(method="prior").fit(oof, labels).predict(oof)
    shares = np.bincount(labels.astype(int), minlength=3) / len(labels)
    np.testing.assert_allclose(out[["down", "flat", "up"]].to_numpy()[0], shares)
    assert (out["informative"] == 0.0).all()
    average = MetaAgent(method="plain_average").fit(oof, labels).predict(oof)
    np.testing.assert_allclose(average["up"], (oof["a.up"] + oof["b.up"]) / 2)
    assert (average["informative"] == 1.0).all()


@pytest.mark.parametrize("method", ["logistic", "mlp", "gbm", "confidence_vote", "best_agent"])
def test_stackers_keep_a_real_edge_and_drop_noise(method: str) -> None:
    oof, labels = _signal_oof(600, seed=1, signal=True)
    meta = MetaAgent(method=method).fit(oof, labels)
    assert meta.informative and not meta.calibration_.collapsed
    if method in ("logistic", "mlp", "gbm"):
        assert meta.params_  # a regularisation strength chosen on the inner validation tail
    if method == "best_agent":
        assert meta.params_ == {"agent": "a"}  # the agent whose outputs follow the labels
    fresh, fresh_labels = _signal_oof(600, seed=2, signal=True)
    probs = meta.predict(fresh)[["down", "flat", "up"]].to_numpy()
    y = fresh_labels.to_numpy().astype(int)
    prior = np.tile(meta.prior_, (len(y), 1))
    assert log_loss(y, probs) < log_loss(y, prior)

    noise, noise_labels = _signal_oof(600, seed=3, signal=False)
    meta = MetaAgent(method=method).fit(noise, noise_labels)
    out = meta.predict(noise)
    assert meta.calibration_.collapsed and (out["informative"] == 0.0).all()
    np.testing.assert_allclose(out["up"], meta.prior_[2])


def test_an_average_of_agents_that_output_their_prior_is_not_traded() -> None:
    """A method that only combines agents carries no edge when every agent it reads
    outputs its own prior (``<agent>.informative`` 0); one informative agent is enough."""
    oof = _oof()
    labels = pd.Series([0.0, 2.0], index=oof.index)
    flags = oof.assign(**{"a.informative": [0.0, 0.0], "b.informative": [0.0, 1.0]})
    average = MetaAgent(method="plain_average").fit(flags, labels)
    assert average.predict(flags)["informative"].tolist() == [0.0, 1.0]
    alone = MetaAgent(method="plain_average", agents=("a",)).fit(flags, labels)
    assert alone.predict(flags)["informative"].tolist() == [0.0, 0.0]
    # without the flags (outputs written before they existed) nothing changes
    assert average.predict(oof)["informative"].tolist() == [1.0, 1.0]
    assert MetaAgent(method="prior").fit(flags, labels).predict(flags)["informative"].sum() == 0


def test_the_logistic_stacker_scores_a_row_alone_as_in_a_batch_and_as_scikit_learn() -> None:
    """The live runner scores one row, the backtest a span: the same row must get the same
    bits either way (a BLAS product rounds by batch size), and the same numbers as
    scikit-learn's own predict_proba up to rounding."""
    from ai_trade_bot.modeling.meta import _rowwise_softmax

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 13))
    y = (X[:, 0] + rng.normal(size=3000) > 0).astype(int) + (X[:, 1] > 1)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    batch = _rowwise_softmax(model, X)
    alone = np.vstack([_rowwise_softmax(model, X[i : i + 1]) for i in range(len(X))])
    np.testing.assert_array_equal(alone, batch)
    np.testing.assert_allclose(batch, model.predict_proba(X), rtol=1e-12, atol=1e-15)


def test_the_mlp_net_scores_a_row_alone_as_in_a_batch() -> None:
    import torch

    from ai_trade_bot.nn.networks import MLP

    torch.manual_seed(0)
    net = MLP(40, hidden=32, out=5).double().eval()
    x = torch.randn(3000, 40, dtype=torch.float64)
    with torch.inference_mode():
        batch = net(x)
        alone = torch.cat([net(x[i : i + 1]) for i in range(len(x))])
        np.testing.assert_array_equal(alone.numpy(), batch.numpy())
        np.testing.assert_allclose(batch.numpy(), net.body(x).numpy(), rtol=1e-12, atol=1e-14)
