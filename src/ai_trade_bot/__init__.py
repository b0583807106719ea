"""ai_trade_bot"""

import os

__version__ = "0.1"

# MLflow prints "View run ... at: <tracking URI>" to stdout after every run, and a tracking
# URI may carry a password (http://user:password@host): it must never reach a log. Every
# entry point (kedro, the ai-trade-bot command, the retrain loop) imports this package.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
