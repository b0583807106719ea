"""Start-up time of an everyday command: `kedro run --pipeline=ingestion` on a 200-row CSV.

Runs in a throw-away copy of the project (the user's data/ and mlruns/ stay untouched),
three times, and prints for each run the wall time to the first node and to the end.
Last line: ``ingestion startup s: N`` (median wall time of the whole command; target 5 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.project_copy import clone  # noqa: E402  (a fresh-clone copy of the project)


def one_run(project: Path, csv: Path) -> tuple[float, float]:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        str(Path(sys.executable).parent / "kedro"),
        "run",
        "--pipeline=ingestion",
        "--params",
        f"ingestion.source=file,ingestion.path={csv}",
    ]
    started = time.perf_counter()
    first_node = None
    process = subprocess.Popen(
        command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if first_node is None and "Running node" in line:
            first_node = time.perf_counter() - started
    if process.wait() != 0:
        raise SystemExit("".join(lines[-40:]))
    return first_node or float("nan"), time.perf_counter() - started


def main() -> None:
    from backtesting.test import EURUSD

    with tempfile.TemporaryDirectory() as tmp:
        project = clone(Path(tmp) / "project")
        csv = Path(tmp) / "candles.csv"
        EURUSD.head(200).to_csv(csv)  # a to_csv() file, as a user has it
        one_run(project, csv)  # creates the MLflow database once, as a first run does
        runs = [one_run(project, csv) for _ in range(3)]
    for k, (first, total) in enumerate(runs, 1):
        print(f"run {k}: first node after {first:.2f} s, finished after {total:.2f} s")
    print(f"ingestion startup s: {np.median([total for _, total in runs]):.1f}")


if __name__ == "__main__":
    main()
