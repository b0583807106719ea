"""Many symbols: a universe of candles on one time axis (see :mod:`.ingest`, :mod:`.panel`)."""
