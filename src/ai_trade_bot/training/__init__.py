"""How agents are trained honestly: walk-forward folds with a purge and an embargo
(:mod:`.folds`), the per-fold fit and out-of-fold prediction (:mod:`.walk_forward`) and
Optuna tuning on those folds only (:mod:`.tuning`)."""
