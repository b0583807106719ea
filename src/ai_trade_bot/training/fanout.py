"""Training tasks fanned out on an existing engine: joblib with loky, or Dask distributed.

There is no scheduler here. The caller builds pure tasks (each with everything it needs and
its own seed); :func:`run_tasks` hands them to ``joblib.Parallel`` and returns their results
in task order, whatever ran where. MLflow is logged by the caller afterwards, from the
driver: kedro-mlflow's datasets do not pickle, and nested runs logged from workers race.

- ``address: null``: joblib's loky backend on this machine (the default);
- ``address: local``: a Dask ``LocalCluster`` of ``n_workers`` processes, one thread each;
- ``address: tcp://host:8786``: an existing Dask scheduler (``dask scheduler`` on one
  machine, ``dask worker tcp://host:8786 --nthreads 1`` on each of the others).

Each task runs torch and LightGBM on one thread: parallelism comes from the fan-out (two
intra-op threads per process on a busy 2-core machine spent most of their time waiting on
each other).
"""

from __future__ import annotations

import contextlib
import logging
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ai_trade_bot.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecutorConfig:
    """``params:train.executor``."""

    address: str | None = None  # None: loky | "local": a LocalCluster | a scheduler address
    n_workers: int | str = "auto"  # auto: the CPUs this process may use, less their load

    def __post_init__(self) -> None:
        if self.n_workers != "auto" and (not isinstance(self.n_workers, int) or self.n_workers < 1):
            raise ValueError(f"n_workers must be 'auto' or an integer >= 1, got {self.n_workers!r}")


def available_workers() -> int:
    """Worker processes this machine can take now: the CPUs this process may run on
    (its affinity, not the core count) less the ones already busy (the 1-minute load)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        busy = os.getloadavg()[0]
    except OSError:  # no load average on this platform
        busy = 0.0
    return max(1, min(int(cpus or 1), int(np.floor((cpus or 1) - busy + 0.5))))


def task_seed(global_seed: int, *parts: object) -> int:
    """A seed for one task from the global seed and the task's identity (stable across
    runs, machines and task order)."""
    words = [int(global_seed)] + [zlib.crc32(str(p).encode()) for p in parts]
    return int(np.random.SeedSequence(words).generate_state(1)[0] % (2**31 - 1))


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run a task's numerics on one thread: torch's intra-op pool (when torch is loaded)
    and the OpenMP and BLAS pools of scikit-learn, LightGBM and numpy (threadpoolctl).

    Restored afterwards, so a task run in the driver (one worker) leaves the rest of the
    run as it was. Measured: scikit-learn's HistGradientBoosting meta-agent on 475 rows took
    10 s to 80 s instead of under 1 s when its OpenMP threads shared two busy cores.
    """
    import sys

    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None and before != 1:
        torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        if torch is not None and before is not None and torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def _backend(config: ExecutorConfig, n_tasks: int) -> Iterator[tuple[str, int]]:
    import joblib

    workers = available_workers() if config.n_workers == "auto" else int(config.n_workers)
    workers = max(1, min(workers, n_tasks))
    if config.address is None:
        with joblib.parallel_config(backend="loky", inner_max_num_threads=1):
            yield "loky", workers
        return
    from distributed import Client, LocalCluster

    if config.address == "local":
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        client = Client(cluster)
    else:
        cluster = None
        try:
            client = Client(config.address, timeout=30)
        except OSError as exc:
            raise ConfigError(
                f"train.executor.address={config.address!r}: no Dask scheduler answers there "
                f"({exc}); start one with `dask scheduler`, or set address: null (loky) or "
                "local"
            ) from exc
        workers = max(1, len(client.scheduler_info().get("workers", {})))
    try:
        with joblib.parallel_config(backend="dask"):
            yield f"dask:{config.address}", workers
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def iter_tasks(
    func: Callable[..., Any],
    tasks: Sequence[Any],
    config: ExecutorConfig,
    *,
    shared: Sequence[Any] = (),
    ran: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """``func(task, *shared)`` for every task, yielded in task order as they finish (so a
    caller can place each large result and drop it before the next arrives).

    ``ran``, when given, is filled with how they ran (backend, workers, tasks).
    """
    import joblib

    with _backend(config, len(tasks)) as (backend, workers):
        logger.info("fan-out: %d tasks on %s with %d workers", len(tasks), backend, workers)
        if workers == 1 and config.address is None:
            backend = "sequential"  # no worker process to start
            results: Iterator[Any] = (func(task, *shared) for task in tasks)
        else:
            n_jobs = -1 if backend.startswith("dask") else workers
            results = joblib.Parallel(n_jobs=n_jobs, return_as="generator")(
                joblib.delayed(func)(task, *shared) for task in tasks
            )
        if ran is not None:
            ran.update({"backend": backend, "workers": workers, "tasks": len(tasks)})
        yield from results


def run_tasks(
    func: Callable[..., Any],
    tasks: Sequence[Any],
    config: ExecutorConfig,
    *,
    shared: Sequence[Any] = (),
) -> tuple[list[Any], dict[str, Any]]:
    """``func(task, *shared)`` for every task, in task order, on the configured engine.

    Returns:
        The results, and how they ran (backend, workers).
    """
    ran: dict[str, Any] = {}
    results = list(iter_tasks(func, tasks, config, shared=shared, ran=ran))
    return results, ran
