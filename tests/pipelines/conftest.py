"""Run a pipeline slice on an in-memory catalog."""

from __future__ import annotations

from typing import Any

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner


class KeptMemoryDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so tests can read intermediates too."""

    def _release(self) -> None:
        return None


def run_pipeline(pipeline: Pipeline, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run ``pipeline`` with ``inputs`` in memory; return every dataset it produced."""
    catalog = DataCatalog({name: MemoryDataset(value) for name, value in inputs.items()})
    produced = pipeline.all_outputs()
    for name in produced:
        catalog[name] = KeptMemoryDataset()
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in produced}


@pytest.fixture
def run() -> Any:
    return run_pipeline
