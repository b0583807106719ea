"""The GPU path: Lightning picks CUDA by itself and trains in bf16 mixed precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ai_trade_bot.agents import make_agent
from tests.agents.conftest import FAST

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("name", ["trend_lstm", "trend_transformer", "pattern"])
def test_gpu_training_uses_cuda_and_bf16(name: str, tiny_xy) -> None:
    X, y = tiny_xy
    window = 16 if name == "pattern" else 8
    agent = make_agent(name, window=window, **FAST).fit(
        X.iloc[:350], y.iloc[:350], val_size=60, gap=3
    )
    assert agent.device_.startswith("cuda")
    assert agent.precision_used_ == "bf16-mixed"
    out = agent.predict_proba(X.iloc[350:])
    np.testing.assert_allclose(out[["down", "flat", "up"]].sum(axis=1), 1.0, atol=1e-5)
