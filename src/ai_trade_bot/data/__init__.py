"""Market data: sources, normalisation and validation (no Kedro imports)."""
