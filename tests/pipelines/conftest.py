"""Run a pipeline slice on an in-memory catalog."""

from __future__ import annotations

from typing import Any

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner


def run_pipeline(pipeline: Pipeline, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run ``pipeline`` with ``inputs`` in memory and return every output's data."""
    catalog = DataCatalog({name: MemoryDataset(value) for name, value in inputs.items()})
    outputs = SequentialRunner().run(pipeline, catalog)
    return {name: dataset.load() for name, dataset in outputs.items()}


@pytest.fixture
def run() -> Any:
    return run_pipeline
