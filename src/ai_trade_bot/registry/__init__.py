"""Deployment: the bundle (:mod:`.bundle`), MLflow tracking (:mod:`.tracking`), and the
registry with its champion/challenger gate, lineage and rollback (:mod:`.deploy`)."""
