"""The thin adapter that maps an agent's inputs onto the shared LightningModule."""

from __future__ import annotations

import logging
import warnings
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from ai_trade_bot.agents.base import Agent, check_hyperparameter

logger = logging.getLogger(__name__)


def resolve_precision(precision: str) -> str:
    """``auto`` means bf16-mixed on a CUDA GPU and 32-true on the CPU."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if torch.cuda.is_available() else "32-true"


class TorchAgent(Agent):
    """Shared fit/predict/save for agents whose model is an ``nn.Module``.

    Subclasses provide the network, the task, the targets and the inputs; this class owns
    scaling (fit on the fit rows only), the Lightning ``Trainer`` (``accelerator="auto"``),
    early stopping on ``val/loss`` and exact save/load.
    """

    task: str = "direction"
    squeeze: bool = False  # True when one sample is one row (tabular MLP, images)

    # Training settings every torch agent takes as keyword arguments (stored and reported
    # like any other hyperparameter); subclasses change defaults by overriding this dict.
    training_defaults: ClassVar[dict[str, Any]] = {
        "max_epochs": 30,
        "batch_size": 128,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "patience": 5,
        "precision": "auto",
        "devices": 1,  # GPUs (or CPU processes) per fit; >1 with strategy ddp_spawn
        "strategy": "auto",  # Lightning strategy, e.g. ddp_spawn across several GPUs
        "seed": 42,
        "progress_bar": True,
        "extra_callbacks": None,
    }

    def _init_training(self, window: int, training: dict[str, Any]) -> None:
        unknown = sorted(set(training) - set(self.training_defaults))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got an unexpected keyword argument '{unknown[0]}'"
            )
        self.window = window
        for name, default in self.training_defaults.items():
            setattr(self, name, training.get(name, default))
        for name, ok, rule in [
            ("window", self.window >= 1, "must be >= 1"),
            ("max_epochs", self.max_epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("lr", self.lr > 0, "must be > 0"),
        ]:
            check_hyperparameter(self.name, name, getattr(self, name), ok, rule)

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        params.update({k: getattr(self, k) for k in self.training_defaults})
        params.pop("extra_callbacks")
        return params

    @property
    def min_history(self) -> int:
        return self.window

    # -- what subclasses provide -----------------------------------------------------
    @abstractmethod
    def _build_net(self, n_inputs: int) -> nn.Module:
        """The plain network for ``n_inputs`` input features."""

    def _module_kwargs(self) -> dict[str, Any]:
        return {}

    @abstractmethod
    def _targets(self, X: pd.DataFrame, y: pd.DataFrame) -> np.ndarray:
        """Per-row training targets, aligned with X."""

    def _inputs(self, X: pd.DataFrame) -> np.ndarray:
        """Per-row model inputs (T, F), scaled with the fitted scaler."""
        return self._input_array(self._selected(X))

    def _input_array(self, selected: np.ndarray) -> np.ndarray:
        """:meth:`_inputs` of the selected columns' values (the streaming path's too)."""
        values = selected.astype(np.float32)
        return np.clip((values - self.mean_) / self.scale_, -10.0, 10.0).astype(np.float32)

    def _fit_scaler(self, X: pd.DataFrame) -> None:
        values = X[self.columns_].to_numpy(dtype=np.float64)
        self.mean_ = values.mean(axis=0).astype(np.float32)
        std = values.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0).astype(np.float32)

    @abstractmethod
    def _select_columns(self, X: pd.DataFrame) -> list[str]:
        """Input columns this agent reads."""

    @abstractmethod
    def _outputs(self, raw: Any, X: pd.DataFrame) -> pd.DataFrame:
        """Turn network outputs for X's prediction rows into the typed output frame."""

    def _prepare(self, X: pd.DataFrame, y: pd.DataFrame, fit_rows: int) -> None:
        """Fit any non-neural state (GARCH, HMM, ...) on the first ``fit_rows`` rows."""

    # -- fit / predict ------------------------------------------------------------------
    def _fit(self, X: pd.DataFrame, y: pd.DataFrame, *, val_size: int, gap: int) -> None:
        """Train with early stopping on the last ``val_size`` rows.

        Lightning is imported here, not at module level: it takes about 11 s to import
        (torch._dynamo, torchmetrics), and predicting (the live runner) never needs it.
        """
        import pytorch_lightning as pl

        from ai_trade_bot.nn.callbacks import BestWeights
        from ai_trade_bot.nn.data import WindowDataModule
        from ai_trade_bot.nn.module import AgentModule

        self.columns_ = self._select_columns(X)
        self._check_input(X, needed=self.window + max(val_size, 1) + gap)
        n_fit = len(X) - val_size - gap
        self._prepare(X, y, n_fit)
        self._fit_scaler(X.iloc[:n_fit])
        inputs = torch.from_numpy(self._inputs(X))
        targets = torch.from_numpy(self._targets(X, y))
        first = self.window - 1
        train_ends = np.arange(first, n_fit)
        val_ends = np.arange(max(first, len(X) - val_size), len(X)) if val_size else train_ends
        pl.seed_everything(self.seed, workers=True, verbose=False)
        self.n_inputs_ = int(inputs.shape[-1]) if inputs.ndim == 2 else 0
        self.net_ = self._build_net(self.n_inputs_)
        module = AgentModule(
            self.net_,
            task=self.task,
            lr=self.lr,
            weight_decay=self.weight_decay,
            **self._module_kwargs(),
        )
        data = WindowDataModule(
            inputs,
            targets,
            window=1 if self.squeeze else self.window,
            train_ends=train_ends,
            val_ends=val_ends,
            batch_size=self.batch_size,
            squeeze=self.squeeze,
            seed=self.seed,
        )
        best = BestWeights()
        callbacks: list[pl.Callback] = [
            pl.callbacks.EarlyStopping("val/loss", patience=self.patience, mode="min"),
            best,
            *(self.extra_callbacks or []),
        ]
        trainer = pl.Trainer(
            max_epochs=self.max_epochs,
            accelerator="auto",
            devices=self.devices,
            strategy=self.strategy,
            precision=resolve_precision(self.precision),
            callbacks=callbacks,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=self.progress_bar,
            deterministic=not torch.cuda.is_available(),
            num_sanity_val_steps=0,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            warnings.filterwarnings("ignore", ".*number of training batches.*")
            warnings.filterwarnings("ignore", ".*LeafSpec.*")
            trainer.fit(module, datamodule=data)
        self.device_ = str(trainer.strategy.root_device)
        self.precision_used_ = trainer.precision
        if best.state is not None:
            self.net_.load_state_dict(best.state)
        self.net_.cpu().double().eval()  # predictions in float64: see _forward_windows
        self.best_val_loss_ = best.best
        self.best_epoch_ = best.epoch
        self.epochs_trained_ = trainer.current_epoch

    def _forward_windows(self, inputs: np.ndarray, ends: np.ndarray) -> Any:
        """Run the net over every window ending at ``ends`` (no copies of the inputs).

        The net predicts in float64 (it trains in float32 or lower): a matrix product's
        rounding depends on how many rows it multiplies at once, and in float32 one row
        streamed live differed from the same row in a batch by 1e-7 relative (the regime
        agent, 5e-8 absolute); in float64 the difference is at 1e-16, so the runner and
        the backtest see the same outputs. The weights are float32 values, held exactly."""
        tensor = torch.from_numpy(inputs).to(torch.float64)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(ends), 4096):
                chunk = ends[start : start + 4096]
                if self.squeeze:
                    batch = tensor[torch.as_tensor(chunk)]
                else:
                    views = tensor.unfold(0, self.window, 1)  # (T-w+1, F, w), a view
                    batch = views[torch.as_tensor(chunk - self.window + 1)].transpose(1, 2)
                outputs.append(self.net_(batch))
        if isinstance(outputs[0], tuple):
            return tuple(torch.cat(parts).numpy() for parts in zip(*outputs, strict=True))
        return torch.cat(outputs).numpy()

    # -- ONNX Runtime (the live path; ai_trade_bot.nn.onnx_runtime) -------------------------
    def onnx_example(self, n: int) -> np.ndarray:
        """A fixed batch of ``n`` inputs of the network's shape (seeded) for the export
        check: scaled features are about standard normal."""
        rng = np.random.default_rng(20_240_601)
        shape = (n, self.n_inputs_) if self.squeeze else (n, self.window, self.n_inputs_)
        return rng.standard_normal(shape)

    def export_onnx(self, path: str | Path) -> float:
        """Export the network next to the saved agent and check it (see
        :func:`ai_trade_bot.nn.onnx_runtime.export_network`); the largest difference."""
        from ai_trade_bot.nn.onnx_runtime import CHECK_ROWS, export_network

        return export_network(self.name, self.net_, self.onnx_example(CHECK_ROWS), Path(path))

    def use_runtime(self, runtime: str) -> str:
        """Run the streaming path (one window a candle) on ``onnx`` when the saved agent
        has an export, else on torch; returns the runtime in use."""
        self._onnx = None
        path = getattr(self, "_onnx_path", None)
        if runtime == "onnx" and path is not None and Path(path).exists():
            from ai_trade_bot.nn.onnx_runtime import OnnxNetwork

            try:
                self._onnx = OnnxNetwork(path)
            except Exception as exc:  # torch is the fallback
                logger.warning("agent %s: ONNX Runtime refused %s (%s); torch runs it",
                               self.name, path, exc)  # fmt: skip
        return "onnx" if self._onnx is not None else "torch"

    @property
    def runtime(self) -> str:
        return "onnx" if getattr(self, "_onnx", None) is not None else "torch"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_onnx", None)  # a session does not pickle (the fan-out pickles agents)
        return state

    def _stream_inputs(self, selected: np.ndarray) -> np.ndarray:
        """The inputs of the streaming path's window (the last row's are all it reads)."""
        return self._input_array(selected)

    def _forward_last(self, inputs: np.ndarray) -> Any:
        """The net on the one window ending at the last row of ``inputs`` (streaming): on
        ONNX Runtime when :meth:`use_runtime` chose it (torch if a run fails)."""
        session = getattr(self, "_onnx", None)
        if session is not None:
            batch = inputs[-1:] if self.squeeze else inputs[None, len(inputs) - self.window :]
            try:
                out = session.run(batch)
            except Exception as exc:
                logger.warning("agent %s: ONNX Runtime failed (%s); torch from now on",
                               self.name, exc)  # fmt: skip
                self._onnx = None
            else:
                return out if len(out) > 1 else out[0]
        return self._forward_windows(inputs, np.array([len(inputs) - 1]))

    def _predict(self, X: pd.DataFrame) -> pd.DataFrame:
        inputs = self._inputs(X)
        ends = np.arange(self.window - 1, len(X))
        return self._outputs(self._forward_windows(inputs, ends), X)

    # -- persistence -------------------------------------------------------------------
    def _extra_state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        return None

    def _save_state(self, path: Path) -> dict[str, Any]:
        # float32 on disk: the weights were trained in float32 (or lower), so nothing is lost
        state = {
            k: v.float() if v.is_floating_point() else v for k, v in self.net_.state_dict().items()
        }
        torch.save(state, path / "net.pt")
        np.savez(path / "arrays.npz", mean=self.mean_, scale=self.scale_, **self._extra_state())
        return {
            "n_inputs": self.n_inputs_,
            "best_val_loss": self.best_val_loss_,
            "best_epoch": self.best_epoch_,
            "epochs_trained": self.epochs_trained_,
        }

    def _load_state(self, path: Path, meta: dict[str, Any]) -> None:
        arrays = dict(np.load(path / "arrays.npz"))
        self.mean_, self.scale_ = arrays.pop("mean"), arrays.pop("scale")
        self._set_extra_state(arrays)
        self.n_inputs_ = meta["n_inputs"]
        self.net_ = self._build_net(self.n_inputs_).double()
        self.net_.load_state_dict(torch.load(path / "net.pt", weights_only=True))
        self.net_.eval()
        onnx = path / "net.onnx"
        self._onnx_path = onnx if onnx.exists() else None
        self.best_val_loss_ = meta["best_val_loss"]
        self.best_epoch_ = meta["best_epoch"]
        self.epochs_trained_ = meta["epochs_trained"]
