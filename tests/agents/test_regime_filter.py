"""The regime agent's forward filter against scipy's Gaussian densities and logsumexp."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from ai_trade_bot.agents.regime import RegimeAgent


def _reference(agent: RegimeAgent, z: np.ndarray) -> np.ndarray:
    gaussians = [
        multivariate_normal(agent.means_[k], agent.covars_[k], allow_singular=True)
        for k in range(len(agent.means_))
    ]
    log_b = np.column_stack([g.logpdf(z) for g in gaussians])
    log_a = np.log(agent.transmat_ + 1e-300)
    out = np.empty_like(log_b)
    for t in range(len(z)):
        if t == 0:
            alpha = np.log(agent.startprob_ + 1e-300) + log_b[0]
        else:
            alpha = logsumexp(out[t - 1][:, None] + log_a, axis=0) + log_b[t]
        out[t] = alpha - logsumexp(alpha)
    return out


def test_the_forward_filter_equals_scipy_and_streams_exactly() -> None:
    rng = np.random.default_rng(3)
    agent = RegimeAgent()
    agent.means_ = rng.normal(size=(4, 2))
    factors = rng.normal(size=(4, 2, 2))
    agent.covars_ = factors @ factors.transpose(0, 2, 1) + 0.1 * np.eye(2)
    agent.transmat_ = rng.dirichlet(np.ones(4), size=4)
    agent.transmat_[0] = [1.0, 0.0, 0.0, 0.0]  # a state that never leaves: log 0 terms
    agent.startprob_ = np.array([0.4, 0.3, 0.2, 0.1])
    z = rng.normal(scale=2.0, size=(500, 2))

    batch = agent._filter(z, None)
    np.testing.assert_allclose(np.exp(batch), np.exp(_reference(agent, z)), atol=1e-12)
    previous, streamed = None, []
    for t in range(len(z)):
        previous = agent._filter(z[t : t + 1], previous)[-1]
        streamed.append(previous)
    np.testing.assert_array_equal(np.array(streamed), batch)

    agent.covars_ = agent.covars_.copy()
    agent.covars_[3] = [[1.0, 1.0], [1.0, 1.0]]
    with pytest.raises(ValueError, match="HMM state 3 has a singular covariance"):
        agent._filter(z, None)
