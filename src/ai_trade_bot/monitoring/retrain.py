"""The scheduled retrain loop: what ``scripts/retrain.sh`` runs, locally or on any scheduler.

1. ``dvc pull`` when a DVC remote is configured and reachable (unreachable: skipped, said);
2. ingest fresh candles for the configured source (``dvc repro --force --single-item
   ingestion``), then ``dvc repro features`` (a no-op when the candles did not change);
3. ``drift`` against the deployed bundle (skipped when there is none yet);
4. retrain when ``retrain_required.json`` says so, when the champion is older than
   ``retrain.max_age_days``, or when there is no champion: ``train`` → ``evaluate`` →
   ``deploy`` (the champion/challenger gate), then ``drift`` again against the new bundle;
5. ``dvc push`` when the pull reached the remote;
6. one summary line, and ``data/08_reporting/retrain_last.json`` with every figure.

Every stage runs through ``dvc repro`` so ``dvc.lock`` records what was produced; a
stage that fails ends the loop with a non-zero exit and the stage named in the summary.
Nothing here is specific to one CI host.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ai_trade_bot.config import parse_config

BUNDLE = Path("data/06_models/bundle/bundle.json")
CLEAN = Path("data/02_intermediate/ohlcv_clean.parquet")
REPORTS = Path("data/08_reporting")
logger = logging.getLogger("ai_trade_bot.monitoring.retrain")


@dataclass(frozen=True)
class RetrainConfig:
    """``params:retrain`` (conf/base/parameters_retrain.yml)."""

    max_age_days: float | None = 7.0  # retrain a champion older than this (null: never)
    pull: bool = True  # dvc pull / push when a remote is configured
    stage_timeout_s: int = 3600


class StageError(RuntimeError):
    def __init__(self, stage: str, detail: str) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage, self.detail = stage, detail


def _config_loader(project: Path) -> Any:
    from kedro.config import OmegaConfigLoader

    from ai_trade_bot.settings import CONFIG_LOADER_ARGS

    args = dict(CONFIG_LOADER_ARGS)
    args["custom_resolvers"] = {"project_root": lambda: project.as_posix()}
    return OmegaConfigLoader(
        conf_source=str(project / "conf"),
        config_patterns={"mlflow": ["mlflow*", "mlflow*/**"]},
        **args,
    )


def load_settings(project: Path) -> tuple[RetrainConfig, str, str]:
    """The retrain block, the registered model's name and the MLflow tracking URI, from
    the project's configuration (conf/local overrides conf/base; MLFLOW_TRACKING_URI wins)."""
    loader = _config_loader(project)
    params = loader["parameters"]
    config = parse_config(RetrainConfig, params.get("retrain") or {}, name="retrain")
    name = (params.get("deploy") or {}).get("model_name", "ai_trade_bot")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or loader["mlflow"]["server"]["mlflow_tracking_uri"]
    return config, name, uri


class Loop:
    def __init__(self, project: Path, config: RetrainConfig, model_name: str, uri: str) -> None:
        self.project, self.config, self.model_name, self.uri = project, config, model_name, uri
        self.record: dict[str, Any] = {"started": _now(), "stages": {}}

    # -- helpers ---------------------------------------------------------------------
    def _run(self, stage: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            # the venv's dvc and kedro, whichever way the loop was started
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "KEDRO_DISABLE_TELEMETRY": "1",
            "DVC_NO_ANALYTICS": "1",
        }
        started = time.perf_counter()
        logger.info("%s: %s", stage, " ".join(args))
        result = subprocess.run(
            list(args),
            cwd=self.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=self.config.stage_timeout_s,
        )
        seconds = round(time.perf_counter() - started, 1)
        self.record["stages"].setdefault(stage, {"seconds": 0.0})
        self.record["stages"][stage]["seconds"] += seconds
        if check and result.returncode != 0:
            log = REPORTS / f"retrain_{stage}.log"
            (self.project / log).parent.mkdir(parents=True, exist_ok=True)
            (self.project / log).write_text(result.stdout + "\n" + result.stderr)
            lines = [x for x in (result.stderr or result.stdout).splitlines() if x.strip()]
            raise StageError(stage, f"{lines[-1] if lines else 'failed'} (log: {log})")
        return result

    def _dvc(self, stage: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._run(stage, sys.executable, "-m", "dvc", *args, check=check)

    def _json(self, rel: str | Path) -> dict[str, Any] | None:
        path = self.project / rel
        return json.loads(path.read_text()) if path.exists() else None

    def champion(self) -> dict[str, Any] | None:
        import mlflow
        from mlflow.exceptions import MlflowException

        from ai_trade_bot.registry.deploy import current_champion

        client = mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        try:
            version = current_champion(client, self.model_name)
        except MlflowException:  # no registered model yet
            return None
        if version is None:
            return None
        age_days = (time.time() - version.creation_timestamp / 1000.0) / 86400.0
        return {"version": str(version.version), "age_days": round(age_days, 3)}

    def _candles(self) -> dict[str, Any]:
        path = self.project / CLEAN
        if not path.exists():
            return {"rows": 0, "last": None, "md5": None}
        import hashlib

        import pandas as pd

        index = pd.read_parquet(path, columns=["close"]).index
        return {
            "rows": len(index),
            "last": str(index[-1]) if len(index) else None,
            "md5": hashlib.md5(path.read_bytes()).hexdigest(),
        }

    # -- stages ----------------------------------------------------------------------
    def pull(self) -> None:
        remotes = self._dvc("pull", "remote", "list").stdout.strip()
        if not self.config.pull or not remotes:
            self.record["pull"] = "skipped (no DVC remote)" if self.config.pull else "off"
            return
        result = self._dvc("pull", "pull", "--allow-missing", check=False)
        if result.returncode == 0:
            self.record["pull"] = "ok"
        else:
            lines = [x for x in result.stderr.splitlines() if x.strip()]
            self.record["pull"] = f"not done ({lines[-1] if lines else 'dvc pull failed'})"

    def ingest(self) -> None:
        before = self._candles()
        self._dvc("ingest", "repro", "--force", "--single-item", "ingestion")
        self._dvc("features", "repro", "features")
        after = self._candles()
        self.record["candles"] = {
            "rows": after["rows"],
            "last": after["last"],
            "new_rows": after["rows"] - before["rows"] if before["md5"] else after["rows"],
            "changed": before["md5"] != after["md5"],
        }

    def drift(self) -> dict[str, Any] | None:
        if not (self.project / BUNDLE).exists():
            return None
        self._dvc("drift", "repro", "--force", "--single-item", "drift")
        return self._json(REPORTS / "retrain_required.json")

    def reasons(self, champion: dict[str, Any] | None, drift: dict[str, Any] | None) -> list:
        reasons = []
        if champion is None:
            reasons.append({"rule": "no_champion"})
        elif (
            self.config.max_age_days is not None and champion["age_days"] > self.config.max_age_days
        ):
            reasons.append(
                {
                    "rule": "age",
                    "value": champion["age_days"],
                    "threshold": self.config.max_age_days,
                }
            )
        if drift is not None and drift.get("retrain"):
            reasons.extend(drift["reasons"])
        return reasons

    def retrain(self) -> dict[str, Any]:
        for stage in ("train", "evaluate", "deploy"):
            self._dvc(stage, "repro", "--force", "--single-item", stage)
        self._dvc("drift", "repro", "--force", "--single-item", "drift")  # vs the new bundle
        return self._json(REPORTS / "deploy_report.json") or {}

    def push(self) -> None:
        if self.record.get("pull") != "ok":
            self.record["push"] = "skipped (remote not reached)"
            return
        self._dvc("push", "push")
        self.record["push"] = "ok"

    # -- the loop --------------------------------------------------------------------
    def run(self) -> int:
        started = time.perf_counter()
        failed: StageError | None = None
        try:
            self.pull()
            self.ingest()
            drift = self.drift()
            before = self.champion()
            reasons = self.reasons(before, drift)
            self.record["drift"] = (
                None
                if drift is None
                else {
                    "retrain": drift.get("retrain"),
                    "feature_drift_share": drift["drift"]["feature_drift_share"],
                    "feature_share_threshold": drift["drift"].get("feature_share_threshold"),
                    "prediction_drift_share": drift["drift"]["prediction_drift_share"],
                }
            )
            self.record["retrain_reasons"] = reasons
            self.record["champion_before"] = before
            if reasons:
                deploy = self.retrain()
                self.record["deploy"] = {
                    k: deploy.get(k) for k in ("version", "decision", "promoted", "reasons")
                }
            self.record["champion_after"] = self.champion()
            self.push()
        except StageError as exc:
            failed = exc
        except subprocess.TimeoutExpired as exc:
            failed = StageError(
                "timeout", f"{' '.join(map(str, exc.cmd))} ran past {exc.timeout} s"
            )
        self.record["seconds"] = round(time.perf_counter() - started, 1)
        self.record["failed"] = (
            None if failed is None else {"stage": failed.stage, "detail": failed.detail}
        )
        self.record["finished"] = _now()
        out = self.project / REPORTS / "retrain_last.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.record, indent=2, default=str))
        line = summary_line(self.record)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if failed or "deploy" in self.record:
            self.notify(line)
        return 1 if failed else 0

    def notify(self, line: str) -> None:
        """A retrain (or a failed loop) goes to the notification channels
        (:mod:`ai_trade_bot.live.notify`; URLs from conf/local or the environment)."""
        from ai_trade_bot.live.notify import notifier_from

        try:
            block = (_config_loader(self.project)["parameters"].get("live") or {}).get("notify")
            notifier = notifier_from(block, conf_local=self.project / "conf" / "local")
        except Exception as exc:  # a notification never fails the loop
            logger.warning("retrain: notifications not configured: %s", type(exc).__name__)
            return
        if notifier is not None:
            notifier.notify("retrain", None, line)
            notifier.close()


def summary_line(record: dict[str, Any]) -> str:
    """One line for the scheduler's log (the figures are in retrain_last.json)."""
    if record.get("failed"):
        failed = record["failed"]
        return f"retrain: FAILED at {failed['stage']}: {failed['detail']} ({record['seconds']} s)"
    candles = record.get("candles") or {}
    drift = record.get("drift")
    reasons = [r["rule"] for r in record.get("retrain_reasons") or []]
    before, after = record.get("champion_before"), record.get("champion_after")
    if "deploy" in record:
        deploy = record["deploy"]
        outcome = (
            f"retrained ({', '.join(reasons)}): v{deploy.get('version')} {deploy.get('decision')}"
        )
    else:
        outcome = "no retrain"
    champion = "none" if after is None else f"v{after['version']}"
    if before is not None and after is not None and before["version"] == after["version"]:
        champion += " (unchanged)"
    drift_text = (
        "drift: no bundle yet"
        if drift is None
        else f"drift share {drift['feature_drift_share']:.2f}"
        + (
            f" (of {drift['feature_share_threshold']:.2f} allowed)"
            if drift.get("feature_share_threshold") is not None
            else ""
        )
        + (" (retrain)" if drift["retrain"] else "")
    )
    return (
        f"retrain: ok | pull {record.get('pull')} | candles {candles.get('rows')} "
        f"(+{candles.get('new_rows')}, last {candles.get('last')}) | {drift_text} | "
        f"{outcome} | champion {champion} | push {record.get('push')} | {record['seconds']} s"
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The scheduled retrain loop (see module doc).")
    parser.add_argument("--project", default=".", help="the project directory (default: .)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[retrain] %(message)s", stream=sys.stderr)
    project = Path(args.project).resolve()
    config, name, uri = load_settings(project)
    return Loop(project, config, name, uri).run()


if __name__ == "__main__":
    sys.exit(main())
