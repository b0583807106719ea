"""What turns agent outputs into calibrated, scored predictions: the stacking meta-agent
(:mod:`.meta`), calibration toward the class prior (:mod:`.calibration`) and the scores
every prediction is judged by (:mod:`.scoring`: log-loss, Brier, QLIKE, the class prior)."""
