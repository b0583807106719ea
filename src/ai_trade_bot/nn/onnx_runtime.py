"""The networks on ONNX Runtime: exported when a bundle is saved, checked against torch,
and run by the live path (torch stays the fallback).

Export (:func:`export_network`): the agent's network in float32 (the precision it was
trained in) with a dynamic batch axis, through ``torch.onnx.export``. The check runs a
fixed batch of inputs (seeded; the agent's input shape) through ONNX Runtime and through
the torch network the backtest uses (float64); a largest difference above
:data:`TOLERANCE` refuses the export, naming the agent (:class:`OnnxExportError`).

Runtime (:class:`OnnxNetwork`): one single-threaded ``InferenceSession`` per network (the
runner steps one candle at a time; a second thread costs more than it saves). ORT's CPU
kernels have no float64 ``Erf`` (GELU), so the session runs float32: its outputs differ
from the float64 torch path by about 1e-7, inside the checked tolerance.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ai_trade_bot.errors import AiTradeBotError

logger = logging.getLogger(__name__)

ONNX_FILE = "net.onnx"
TOLERANCE = 1e-5  # the largest |onnx - torch| an export may show
CHECK_ROWS = 64
OPSET = 17


class OnnxExportError(AiTradeBotError):
    """A network's ONNX export does not reproduce its torch outputs."""


def _as_tuple(out: Any) -> tuple[np.ndarray, ...]:
    parts = out if isinstance(out, tuple) else (out,)
    return tuple(
        p.detach().numpy() if isinstance(p, torch.Tensor) else np.asarray(p) for p in parts
    )


def export_network(name: str, net: torch.nn.Module, example: np.ndarray, path: Path) -> float:
    """Export ``net`` to ``path`` (``net.onnx``) and check it on ``example`` (a batch of
    inputs); returns the largest absolute difference from torch's float64 outputs."""
    import copy

    model = copy.deepcopy(net).float().eval()
    x = torch.from_numpy(np.asarray(example, dtype=np.float32))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on tracing
        torch.onnx.export(
            model,
            (x,),
            buffer,
            dynamo=False,
            input_names=["x"],
            dynamic_axes={"x": {0: "batch"}},
            opset_version=OPSET,
        )
    data = buffer.getvalue()
    got = OnnxNetwork(data).run(np.asarray(example))
    with torch.inference_mode():  # the backtest's path: the float64 network
        want = _as_tuple(net(torch.from_numpy(np.asarray(example, dtype=np.float64))))
    if len(got) != len(want):
        raise OnnxExportError(f"agent '{name}': the ONNX export has {len(got)} outputs, "
                              f"torch {len(want)}; the bundle is refused")  # fmt: skip
    diff = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want, strict=True))
    if not diff <= TOLERANCE:
        raise OnnxExportError(
            f"agent '{name}': its ONNX export differs from torch by {diff:.3g} (more than "
            f"{TOLERANCE:g}) on {len(example)} checked inputs; the bundle is refused"
        )
    Path(path).mkdir(parents=True, exist_ok=True)
    (Path(path) / ONNX_FILE).write_bytes(data)
    return diff


class OnnxNetwork:
    """One exported network on ONNX Runtime (CPU, one thread)."""

    def __init__(self, model: bytes | str | Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """The network's outputs (float64) for a batch of inputs."""
        outs = self.session.run(None, {self.input: np.asarray(batch, dtype=np.float32)})
        return tuple(o.astype(np.float64) for o in outs)
