"""Windowed datasets over one shared tensor: a sample is a slice (a view), never a copy."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset


class WindowDataset(Dataset):
    """Sample i is ``inputs[end_i - window + 1 : end_i + 1]`` and ``targets[end_i]``.

    Args:
        inputs: (T, F) float tensor shared by every sample, or (T, H, W) images when
            ``window == 1`` and ``squeeze`` is set.
        targets: (T,) or (T, k) tensor, or None for prediction.
        ends: Row positions whose window ends there (all >= window - 1).
        window: Rows per sample.
        squeeze: Return ``inputs[end]`` instead of a (1, ...) window.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor | None,
        ends: np.ndarray,
        window: int,
        *,
        squeeze: bool = False,
    ) -> None:
        if len(ends) and int(np.min(ends)) < window - 1:
            raise ValueError(f"window {window} needs ends >= {window - 1}, got {np.min(ends)}")
        self.inputs = inputs
        self.targets = targets
        self.ends = torch.as_tensor(np.asarray(ends, dtype=np.int64))
        self.window = window
        self.squeeze = squeeze

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        end = int(self.ends[i])
        x = self.inputs[end] if self.squeeze else self.inputs[end - self.window + 1 : end + 1]
        if self.targets is None:
            return (x,)
        return x, self.targets[end]


class WindowDataModule(pl.LightningDataModule):
    """Train / val / predict loaders over :class:`WindowDataset` views of one tensor."""

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor | None,
        *,
        window: int,
        train_ends: np.ndarray | None = None,
        val_ends: np.ndarray | None = None,
        predict_ends: np.ndarray | None = None,
        batch_size: int = 256,
        squeeze: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.inputs, self.targets, self.window = inputs, targets, window
        self.train_ends, self.val_ends, self.predict_ends = train_ends, val_ends, predict_ends
        self.batch_size, self.squeeze, self.seed = batch_size, squeeze, seed

    def _loader(self, ends: np.ndarray, *, shuffle: bool, targets: bool = True) -> DataLoader:
        dataset = WindowDataset(
            self.inputs, self.targets if targets else None, ends, self.window, squeeze=self.squeeze
        )
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_ends, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_ends, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_ends, shuffle=False, targets=False)
