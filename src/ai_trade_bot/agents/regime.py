"""Regime agent: a Gaussian HMM on returns and volatility, then a small NN on its posteriors."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ai_trade_bot.agents.base import feature_columns
from ai_trade_bot.agents.torch_agent import TorchAgent
from ai_trade_bot.features._numba_kernels import hmm_forward_filter
from ai_trade_bot.nn.networks import MLP

REGIMES = ("trending_up", "trending_down", "ranging", "high_vol")
HMM_INPUTS = ("log_return", "rv_20")


def name_states(means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Map 4 HMM states to regimes: most volatile -> high_vol; of the rest, the highest
    mean return -> trending_up, the lowest -> trending_down, the middle one -> ranging."""
    order = np.argsort(variances)
    high_vol = order[-1]
    rest = sorted(order[:-1], key=lambda s: means[s])
    mapping = np.empty(4, dtype=np.int64)
    mapping[rest[-1]] = REGIMES.index("trending_up")
    mapping[rest[0]] = REGIMES.index("trending_down")
    mapping[rest[1]] = REGIMES.index("ranging")
    mapping[high_vol] = REGIMES.index("high_vol")
    return mapping


class RegimeAgent(TorchAgent):
    """Regime probabilities for the next bar (trending up/down, ranging, high volatility).

    The HMM is fit on the training rows only. Its posteriors are computed by the forward
    filter alone (hmmlearn's ``predict_proba`` smooths with future rows, which would leak),
    and a small NN maps them plus the features onto the regime of the next bar, whose
    targets come from the HMM's Viterbi path over the rows given to ``fit``.
    """

    training_defaults = {**TorchAgent.training_defaults, "batch_size": 256}

    name = "regime"
    output_kind = "regime"
    output_columns = (*(f"p_{r}" for r in REGIMES), "regime")
    task = "regime"
    squeeze = True

    def __init__(
        self,
        n_iter: int = 100,
        hidden: int = 32,
        dropout: float = 0.1,
        **training: Any,
    ) -> None:
        self.n_iter, self.hidden, self.dropout = n_iter, hidden, dropout
        self._init_training(1, training)

    def _select_columns(self, X: pd.DataFrame) -> list[str]:
        missing = [c for c in HMM_INPUTS if c not in X.columns]
        if missing:
            raise ValueError(f"agent '{self.name}' needs feature columns {missing}")
        return feature_columns(X)

    @staticmethod
    def _observations(X: pd.DataFrame) -> np.ndarray:
        return RegimeAgent._observed(*(X[c].to_numpy(dtype=np.float64) for c in HMM_INPUTS))

    @staticmethod
    def _observed(log_return: np.ndarray, rv: np.ndarray) -> np.ndarray:
        """The HMM's observations: the log return and the log realised volatility."""
        return np.column_stack([log_return, np.log(np.maximum(rv, 1e-12))])

    def _prepare(self, X: pd.DataFrame, y: pd.DataFrame, fit_rows: int) -> None:
        from hmmlearn.hmm import GaussianHMM  # imported to fit only (start-up time)

        obs = self._observations(X)
        self.obs_mean_ = obs[:fit_rows].mean(axis=0)
        self.obs_scale_ = obs[:fit_rows].std(axis=0) + 1e-12
        z = (obs - self.obs_mean_) / self.obs_scale_
        hmm = GaussianHMM(
            n_components=4, covariance_type="full", n_iter=self.n_iter, random_state=self.seed
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hmm.fit(z[:fit_rows])
        self.startprob_, self.transmat_ = hmm.startprob_.copy(), hmm.transmat_.copy()
        self.means_, self.covars_ = hmm.means_.copy(), hmm.covars_.copy()
        # regimes named on the raw return mean and the volatility level of each state
        self.state_regime_ = name_states(self.means_[:, 0], self.means_[:, 1])
        self.path_ = self.state_regime_[hmm.predict(z)]

    def _filtered(
        self, X: pd.DataFrame, previous: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Forward-filtered log P(state_t | obs up to t): causal. The filter starts at X's
        first row (from the start probabilities) or after ``previous``, the log posterior
        of the row before. Returns every row's log posterior."""
        return self._filter((self._observations(X) - self.obs_mean_) / self.obs_scale_, previous)

    def _filter(self, z: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        """:meth:`_filtered` of the standardised observations ``z``."""
        means, whiten, log_norm = self._emissions()
        start = np.zeros(len(self.startprob_)) if previous is None else previous
        return hmm_forward_filter(
            np.ascontiguousarray(z, dtype=np.float64),
            means,
            whiten,
            log_norm,
            np.log(self.transmat_ + 1e-300),
            np.log(self.startprob_ + 1e-300),
            np.asarray(start, dtype=np.float64),
            previous is not None,
        )

    def _emissions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each state's Gaussian as its mean, a whitening matrix and its log normaliser
        (from the covariance's eigen-decomposition), built once per fitted state.
        hmmlearn adds ``min_covar`` to every covariance's diagonal, so they are positive
        definite; one that is not is refused rather than given a density."""
        cached = getattr(self, "_emission_cache", None)
        if cached is None or cached[0] is not self.means_ or cached[1] is not self.covars_:
            states, dim = self.means_.shape
            whiten = np.empty((states, dim, dim))
            log_norm = np.empty(states)
            for k in range(states):
                variances, vectors = np.linalg.eigh(self.covars_[k])
                if variances.min() <= 1e6 * np.finfo(np.float64).eps * np.abs(variances).max():
                    raise ValueError(
                        f"agent 'regime': HMM state {k} has a singular covariance "
                        f"(eigenvalues {variances.tolist()}); refit the agent"
                    )
                whiten[k] = vectors / np.sqrt(variances)
                log_norm[k] = -0.5 * (dim * np.log(2 * np.pi) + np.log(variances).sum())
            means = np.ascontiguousarray(self.means_, dtype=np.float64)
            cached = self._emission_cache = (self.means_, self.covars_, (means, whiten, log_norm))
        return cached[2]

    def _filtered_posteriors(self, X: pd.DataFrame) -> np.ndarray:
        return np.exp(self._filtered(X))

    def _inputs(self, X: pd.DataFrame) -> np.ndarray:
        return self._with_posteriors(X, self._filtered_posteriors(X))

    def _with_posteriors(self, X: pd.DataFrame, posteriors: np.ndarray) -> np.ndarray:
        return self._posterior_inputs(self._selected(X), posteriors)

    def _posterior_inputs(self, selected: np.ndarray, posteriors: np.ndarray) -> np.ndarray:
        """The scaled features and the posteriors summed by regime (the net's inputs)."""
        by_regime = np.zeros_like(posteriors)
        for state, regime in enumerate(self.state_regime_):
            by_regime[:, regime] += posteriors[:, state]
        return np.concatenate([self._input_array(selected), by_regime.astype(np.float32)], axis=1)

    def start_stream(self, context: pd.DataFrame) -> dict[str, Any]:
        """The forward filter starts at the first streamed row, as in ``predict``."""
        return {"log_posterior": None}

    def predict_next_values(
        self, values: np.ndarray, columns: pd.Index, index: pd.Index, state: dict[str, Any]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        selected = self._stream_rows(values, columns, index, 1)
        observed = self._observed(*(selected[:, self.columns_.index(c)] for c in HMM_INPUTS))
        z = (observed - self.obs_mean_) / self.obs_scale_
        previous = state["log_posterior"]
        log_post = self._filter(z, None if previous is None else np.asarray(previous))
        raw = self._forward_last(self._posterior_inputs(selected, np.exp(log_post)))
        return self._regime_values(raw)[-1], {"log_posterior": log_post[-1].tolist()}

    def _targets(self, X: pd.DataFrame, y: pd.DataFrame) -> np.ndarray:
        nxt = np.append(self.path_[1:], self.path_[-1])  # the next bar's regime
        return nxt.astype(np.int64)

    def _build_net(self, n_inputs: int) -> nn.Module:
        return MLP(n_inputs, self.hidden, len(REGIMES), self.dropout)

    def _outputs(self, raw: Any, X: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(self._regime_values(raw), columns=list(self.output_columns))

    @staticmethod
    def _regime_values(raw: np.ndarray) -> np.ndarray:
        """(n, 5): the regime probabilities and the most likely regime's number."""
        probs = torch.from_numpy(raw).double().softmax(-1).numpy()
        return np.column_stack([probs, probs.argmax(axis=1).astype(np.float64)])

    def _extra_state(self) -> dict[str, np.ndarray]:
        return {
            "startprob": self.startprob_,
            "transmat": self.transmat_,
            "means": self.means_,
            "covars": self.covars_,
            "state_regime": self.state_regime_,
            "obs_mean": self.obs_mean_,
            "obs_scale": self.obs_scale_,
        }

    def _set_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.startprob_, self.transmat_ = arrays["startprob"], arrays["transmat"]
        self.means_, self.covars_ = arrays["means"], arrays["covars"]
        self.state_regime_ = arrays["state_regime"]
        self.obs_mean_, self.obs_scale_ = arrays["obs_mean"], arrays["obs_scale"]
