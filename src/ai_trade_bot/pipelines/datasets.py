"""Kedro datasets of the project (I/O for things Kedro has no dataset for)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from kedro.io import AbstractDataset

if TYPE_CHECKING:  # imported where used: the catalog must not import torch for ingestion
    from ai_trade_bot.agents import Agent
    from ai_trade_bot.registry.bundle import Bundle
    from ai_trade_bot.registry.universe_bundle import UniverseBundle


class AgentDataset(AbstractDataset["Agent", "Agent"]):
    """A fitted agent saved as a directory with ``Agent.save`` / ``Agent.load``."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self) -> Agent:
        from ai_trade_bot.agents import Agent

        return Agent.load(Path(self._filepath))

    def save(self, data: Agent) -> None:
        path = Path(self._filepath)
        if path.exists():
            shutil.rmtree(path)
        data.save(path)

    def _exists(self) -> bool:
        return (Path(self._filepath) / "agent.json").exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class BundleDataset(AbstractDataset["Bundle", "Bundle"]):
    """A deployable bundle saved as a directory with ``Bundle.save`` / ``Bundle.load``."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self) -> Bundle:
        from ai_trade_bot.registry.bundle import Bundle

        return Bundle.load(Path(self._filepath))

    def save(self, data: Bundle) -> None:
        data.save(Path(self._filepath))

    def _exists(self) -> bool:
        return (Path(self._filepath) / "bundle.json").exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class OptionalJSONDataset(AbstractDataset[dict, dict]):
    """JSON that loads as ``{}`` when the file does not exist yet (e.g. tuned parameters)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self) -> dict:
        path = Path(self._filepath)
        return json.loads(path.read_text()) if path.exists() else {}

    def save(self, data: dict) -> None:
        path = Path(self._filepath)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, default=str))

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class JSONDirectoryDataset(AbstractDataset[dict, dict]):
    """Every ``*.json`` in a folder as ``{stem: content}`` (``{}`` if the folder is absent)."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = PurePosixPath(path)
        self.metadata = metadata

    def load(self) -> dict:
        folder = Path(self._path)
        if not folder.exists():
            return {}
        return {f.stem: json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))}

    def save(self, data: dict) -> None:
        raise NotImplementedError("JSONDirectoryDataset is read-only")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class UniverseBundleDataset(AbstractDataset["UniverseBundle", "UniverseBundle"]):
    """A universe bundle saved as a directory (``UniverseBundle.save`` / ``load``)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self) -> UniverseBundle:
        from ai_trade_bot.registry.universe_bundle import UniverseBundle

        return UniverseBundle.load(Path(self._filepath))

    def save(self, data: UniverseBundle) -> None:
        data.save(Path(self._filepath))

    def _exists(self) -> bool:
        return (Path(self._filepath) / "universe_bundle.json").exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
