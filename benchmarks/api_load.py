"""The status API under load while the runner replays as fast as possible.

Uses the benchmark bundle of ``benchmarks/live_latency.py`` (every default agent; built
on first use). Two runs of the runner with ``--api`` over the same candles, paper trading,
the replay paced (``--speed``) to last ``--seconds`` plus a margin, so the runner is still
trading when the load ends (checked: the benchmark fails otherwise):

1. without load: the runner's decision latency (arrival to persisted decision);
2. with 50 concurrent clients, each polling ``/status`` and ``/decisions`` every
   ``--interval`` seconds (a busy dashboard each) for ``--seconds``: the API's latency
   (client side, p99), every response's status code and every client error, and the
   runner's decision latency again.

Last line: ``api p99 ms: N (status {200: N}, errors N); runner p99 slowdown: N.N%``. Exits
with status 1 when a request failed or answered anything but 200.
"""

from __future__ import annotations

import argparse
import http.client
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_latency import CACHE, build_bundle

from ai_trade_bot.commands import live_argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def runner_command(state: Path, port: int, candles: int, speed: float) -> list[str]:
    return live_argv(
        replay=CACHE / "eurusd.csv",
        start=-candles,
        speed=speed,
        model=CACHE / "live_bundle",
        state=state,
        api=True,
        api_port=port,
    )


def wait_ready(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/decisions?limit=1")
            response = connection.getresponse()
            body = response.read()
            connection.close()
            if response.status == 200 and body != b"[]":
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("the API did not come up")


def client(
    port: int, interval: float, stop: threading.Event, latencies: list[float], seen: Counter
) -> None:
    """One dashboard: polls until ``stop``; every answer's latency and status code, and
    every error by type, are counted (``seen``: ``200``, ``503``, ``error:TimeoutError``...)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    paths = ("/status", "/decisions?limit=20")
    k = 0
    while not stop.is_set():
        started = time.perf_counter()
        try:
            connection.request("GET", paths[k % 2])
            response = connection.getresponse()
            response.read()
            latencies.append((time.perf_counter() - started) * 1000.0)
            seen[response.status] += 1
        except (OSError, http.client.HTTPException) as exc:
            seen[f"error:{type(exc).__name__}"] += 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        k += 1
        stop.wait(max(0.0, interval - (time.perf_counter() - started)))
    connection.close()


def run(candles: int, speed: float, load: dict | None) -> tuple[float, list[float], Counter]:
    """One runner run; returns its decision p99 (ms), the API latencies under load and the
    status codes and errors seen."""
    port = free_port()
    latencies: list[float] = []
    seen: Counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        process = subprocess.Popen(
            runner_command(Path(tmp) / "state.db", port, candles, speed),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_ready(port)
        stop = threading.Event()
        threads = []
        if load:
            threads = [
                threading.Thread(
                    target=client, args=(port, load["interval"], stop, latencies, seen)
                )
                for _ in range(load["clients"])
            ]
            for thread in threads:
                thread.start()
            time.sleep(load["seconds"])
            still_trading = process.poll() is None
            stop.set()
            for thread in threads:
                thread.join()
            if not still_trading:
                raise SystemExit("the replay ended before the load did: raise --candles")
        output, _ = process.communicate()
    found = re.search(r"decision latency p50 ([\d.]+) ms, p99 ([\d.]+) ms", output)
    if process.returncode != 0 or not found:
        raise SystemExit(output[-3000:])
    return float(found[2]), latencies, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--candles", type=int, default=800)
    args = parser.parse_args()
    if not (CACHE / "live_bundle" / "bundle.json").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        build_bundle(CACHE / "live_bundle")
    # paced so that the replay outlasts the load by a margin (both runs alike)
    speed = args.candles / (args.seconds + 15.0)
    alone, _, _ = run(args.candles, speed, None)
    load = {"clients": args.clients, "seconds": args.seconds, "interval": args.interval}
    loaded, latencies, seen = run(args.candles, speed, load)
    api = np.array(latencies)
    slowdown = (loaded / alone - 1.0) * 100.0
    statuses = {k: v for k, v in sorted(seen.items(), key=str) if isinstance(k, int)}
    errors = {k: v for k, v in seen.items() if not isinstance(k, int)}
    print(
        f"{args.clients} clients polling /status and /decisions every {args.interval}s for "
        f"{args.seconds:.0f}s while the runner trades {speed:.1f} candles/s: {len(api)} "
        f"answers, p50 {np.percentile(api, 50):.1f} ms, p99 {np.percentile(api, 99):.1f} ms; "
        f"status codes {statuses}; errors {errors or 'none'}"
    )
    print(f"runner decision p99: {alone:.1f} ms alone, {loaded:.1f} ms under load")
    print(
        f"api p99 ms: {np.percentile(api, 99):.1f} (status {statuses}, errors "
        f"{sum(errors.values())}); runner p99 slowdown: {slowdown:.1f}%"
    )
    if errors or set(statuses) != {200}:
        sys.exit(1)


if __name__ == "__main__":
    main()
