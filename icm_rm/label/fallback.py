"""The likelihood fallback (issue 16): on a pair pool, when the gold-free diagnostics say the searched labels cannot
be trusted over the model's own preference, a batch returns that preference — the likelihood verdict's labeling
after ConsistencyFix — instead, and the report keeps the searched labeling next to it.

Modes: `uncertain` (default) falls back when the searched labels depart from the likelihood verdict on more than
DEPART of the pairs (the `departs_from_likelihood` / `against_likelihood` warnings) or when replicas or chains
disagree (`seeds_disagree` / `chains_disagree`); `departs` on the departure alone; `off` never. Offline tables on
the dev/test/test2 runs and the unseen test3 families: BENCHMARKS.md §2a.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .candidates import verdict_labels
from .diagnostics import agreement, warnings
from .search_state import encode_labels

FALLBACK_MODES = ("uncertain", "departs", "off")
_DEPARTS = ("against_likelihood", "departs_from_likelihood")
TRIGGERS: dict[str, tuple[str, ...]] = {"uncertain": (*_DEPARTS, "seeds_disagree", "chains_disagree"),
                                        "departs": _DEPARTS, "off": ()}
SOURCE = "likelihood verdict after ConsistencyFix"


def fallback_reasons(diag: Mapping, mode: str) -> list[str]:
    """The warning codes of one batch's diagnostics that send it to the likelihood verdict under `mode` (none when
    the batch has no likelihood verdict, i.e. is not a pair pool with the LM's response likelihoods)."""
    if (diag.get("verdict_agreement") or {}).get("likelihood") is None:
        return []
    return [w.code for w in warnings(diag, pairwise=True) if w.code in TRIGGERS[mode]]


def likelihood_fallback(search: Any, labels: list, scores: np.ndarray, diag: Mapping,
                        verdicts: Mapping[str, np.ndarray], mode: str) -> tuple[list, Any, dict] | None:
    """(labels, evaluation, record) of the likelihood verdict's labeling after ConsistencyFix when `mode` sends this
    batch there, else None. `search`: the batch's ICMSearch; `labels`, `scores`: the searched result; the record
    (for report.json) keeps the searched labeling, its U and why it was not returned."""
    reasons = fallback_reasons(diag, mode)
    if not reasons or "likelihood" not in verdicts:
        return None
    start = verdict_labels(verdicts["likelihood"])
    fixed, ev = search.consistency_fix(start, search.evaluate(start))
    record = {"reasons": reasons, "mode": mode, "source": SOURCE, "u": ev.u, "searched_u": diag["u"],
              "agreement_with_searched": agreement(fixed, labels), "searched_labels": encode_labels(labels),
              "searched_scores": [None if not np.isfinite(x) else float(x) for x in scores]}
    return fixed, ev, record
