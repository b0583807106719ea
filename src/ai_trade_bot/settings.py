"""Project settings: hooks, config loader and the project-root resolver."""

from __future__ import annotations

import os
from pathlib import Path

from kedro.config import OmegaConfigLoader

# Kedro telemetry must never make a run wait on the network.
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[2]

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # `${project_root:}` makes paths in mlflow.yml absolute, wherever kedro is started from.
    "custom_resolvers": {"project_root": lambda: PROJECT_ROOT.as_posix()},
    # conf/local and --params change only the keys they name (Kedro's default replaces a
    # whole top-level block, so one override in conf/local dropped the rest of `features`).
    "merge_strategy": {"parameters": "soft"},
}
