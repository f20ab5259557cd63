"""HFScorer == NaiveScorer on the real default models (run with `-m slow`; skipped when the model is not local)."""

from pathlib import Path

import numpy as np
import pytest

from icm_rm.data.records import Claim
from icm_rm.infra.lm import load_causal_lm
from icm_rm.infra.model_registry import is_cached
from icm_rm.infra.models import resolve_model
from icm_rm.scoring.hf import HFScorer
from icm_rm.scoring.naive import NaiveScorer
from icm_rm.scoring.order import loo_orders

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

FACTS = [("France", "Paris", "Lyon"), ("Japan", "Tokyo", "Osaka"), ("Italy", "Rome", "Milan"),
         ("Canada", "Ottawa", "Toronto"), ("Egypt", "Cairo", "Alexandria"), ("Peru", "Lima", "Cusco")]


def local_model(name: str, fallback: str) -> str:
    """A local dir for a registry model without downloading: the icm_rm cache, else a converted fallback dir."""
    if is_cached(name):
        return resolve_model(name)
    if Path(fallback).is_dir():
        return fallback
    pytest.skip(f"{name} is not cached (run `icm-rm models fetch {name}`) and {fallback} does not exist")


def pool(n: int, filler: str = "") -> tuple[list[Claim], list]:
    claims, labels = [], []
    for i in range(n):
        country, right, wrong = FACTS[i // 2 % len(FACTS)]
        city = right if i % 2 == 0 else wrong
        claims.append(Claim(id=f"c{i}", group=f"g{i // 2}", key="A>B" if i % 2 == 0 else "B>A",
                            text=f"Claim: The capital of {country} is {city}.{filler}\nI think this claim is"))
        labels.append(None if i % 5 == 4 else i % 2 == 0)
    return claims, labels


def check_fast_equals_naive(path: str, claims, labels, tol: float = 1e-4):
    model, tok = load_causal_lm(path, "float32", "cpu", set_pad_token=False, attn_implementation="sdpa")
    queries = list(range(len(claims)))
    reference = NaiveScorer(model, tok)
    fast = HFScorer(model, tok).loo_scores(claims, labels, queries)
    naive = reference.loo_scores(claims, labels, queries)
    np.testing.assert_allclose(fast, naive, atol=tol, rtol=0)
    assert np.ptp(naive) > 0.1  # the real model's scores depend on the claim
    orders = loo_orders([c.group for c in claims], labels, queries)
    longest = max(len(reference.context_ids(claims, labels, q, orders[q])) for q in queries)
    return model, longest


def test_smollm2_fast_equals_naive():
    claims, labels = pool(10)
    check_fast_equals_naive(local_model("smollm2-135m", "/tmp/wheels/smol_hf"), claims, labels)


def test_gemma3_fast_equals_naive_past_its_sliding_window():
    filler = " This sentence is here only to make the claim longer than it needs to be, on purpose." * 2
    claims, labels = pool(12, filler)
    model, longest = check_fast_equals_naive(local_model("gemma3-270m", "/tmp/wheels/gemma_hf"), claims, labels)
    assert longest > model.config.sliding_window  # the test crosses the window
