"""The held-out evaluation: strategies backtested from model outputs and the baselines
(:mod:`.strategies`), the meta method chosen on validation rows (:mod:`.selection`), the
honest statistics and classification against the prior (:mod:`.honesty`), and the HTML
report (:mod:`.report`)."""
