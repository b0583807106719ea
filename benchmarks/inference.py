"""Each network of the live benchmark bundle on torch (the backtest's float64 path) and on
ONNX Runtime (the live path's default), batch 1 and batch 10, one thread each.

The bundle is ``benchmarks/live_latency.py``'s (every default agent, trained once on the
bundled EURUSD hours, kept in ``data/benchmarks/live_bundle``; built here when absent).
Inputs are the export check's (seeded, the network's input shape). Per network and batch:
the median of 300 calls after 30 warm-up calls, torch's over ONNX Runtime's.

Last line: ``inference onnx speed-up, median over networks, batch 1: X``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from live_latency import CACHE, build_bundle  # noqa: E402

CALLS, WARM = 300, 30


def _median_us(fn) -> float:
    for _ in range(WARM):
        fn()
    times = []
    for _ in range(CALLS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1e6


def main() -> None:
    from ai_trade_bot.nn.onnx_runtime import OnnxNetwork
    from ai_trade_bot.registry.bundle import Bundle

    torch.set_num_threads(1)
    path = CACHE / "live_bundle"
    if not (path / "agents").exists() or not any((path / "agents").glob("*/net.onnx")):
        CACHE.mkdir(parents=True, exist_ok=True)
        build_bundle(path)
    bundle = Bundle.load(path)
    ratios: dict[int, list[float]] = {1: [], 10: []}
    print(f"{'network':18s} {'batch':>5s} {'torch us':>10s} {'onnx us':>10s} {'ratio':>7s}")
    for name, agent in bundle.agents.items():
        onnx_file = path / "agents" / name / "net.onnx"
        if not onnx_file.exists():
            continue
        session = OnnxNetwork(onnx_file)
        for batch in (1, 10):
            x = agent.onnx_example(batch)
            tensor = torch.from_numpy(np.asarray(x, dtype=np.float64))

            def on_torch(tensor=tensor, net=agent.net_) -> None:
                with torch.inference_mode():
                    net(tensor)

            t = _median_us(on_torch)
            o = _median_us(lambda x=x, session=session: session.run(x))
            ratios[batch].append(t / o)
            print(f"{name:18s} {batch:5d} {t:10.1f} {o:10.1f} {t / o:7.2f}")
    print(f"inference onnx speed-up, median over networks, batch 10: {np.median(ratios[10]):.2f}")
    print(f"inference onnx speed-up, median over networks, batch 1: {np.median(ratios[1]):.2f}")


if __name__ == "__main__":
    main()
