"""Number formatting the reports share."""

from __future__ import annotations


def pct(x: float | None, se: float | None = None) -> str:
    """A fraction as a percentage with one decimal ("n/a" for None), with ± its standard error when given."""
    if x is None:
        return "n/a"
    return f"{100 * x:.1f}%" + (f" ± {100 * se:.1f}" if se is not None else "")
