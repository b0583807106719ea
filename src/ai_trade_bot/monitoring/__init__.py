"""Watching a deployed model: drift and the performance rules (:mod:`.drift`), and the
scheduled retrain loop (:mod:`.retrain`)."""
