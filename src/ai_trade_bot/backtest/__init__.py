"""Backtesting: a numba-compiled engine, costs, sizing, stops, risk limits and metrics."""
