#!/usr/bin/env bash
# The scheduled retrain loop, the same on a laptop, cron or any CI host:
#   dvc pull -> ingest -> drift -> (train -> evaluate -> deploy gate) when needed -> dvc push
# Prints one summary line; exits non-zero when a stage fails. Figures:
# data/08_reporting/retrain_last.json. Settings: conf/base/parameters_retrain.yml.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
else
  PY=${PYTHON:-python}
fi
exec "$PY" -m ai_trade_bot.monitoring.retrain --project "$(pwd)" "$@"
