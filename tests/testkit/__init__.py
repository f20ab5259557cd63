"""Helpers for the tests and benchmarks: tiny random-weight models, a table scorer, an example plug-in scorer."""
