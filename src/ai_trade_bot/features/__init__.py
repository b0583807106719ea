"""Look-ahead-safe features and labels (no Kedro imports).

Every feature at bar t uses only candles that had closed by the close of bar t.
"""
