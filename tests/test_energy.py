"""U(D) = α·P(D) − I(D) on hand-worked pools; each consistency rule's count."""

import json

import numpy as np
import pytest

from icm_rm.data.records import Claim
from icm_rm.data.spec import load_claimset
from icm_rm.data.task_registry import get_task
from icm_rm.data.tasks import ConsistencyRules, answer_stance, consistent_assignments, pair_violates
from icm_rm.label.energy import build_structure, inconsistency, predictability, utility, violating_pairs
from icm_rm.label.search import ICMSearch, SearchConfig
from testkit.table_scorer import TableScorer


def six_claim_pool():
    # g1: a swapped pair; g2: three candidate answers to one question; g3: a lone claim.
    spec = [("g1", "A>B"), ("g1", "B>A"), ("g2", "Paris"), ("g2", "Lyon"), ("g2", "Nice"), ("g3", "x")]
    return [Claim(id=f"c{i}", group=g, key=k, text=f"claim {i}") for i, (g, k) in enumerate(spec)]


def test_hand_worked_six_claim_pool():
    """s_i(C) = b_i + 0.1·(#True − #False demos in C). Labels T,T,T,T,F,None.

    Each True claim sees 3 True + 1 False others → +0.2; the False claim sees 4 True → +0.4.
    s = [1.2, −0.3, 2.2, 0.7, −0.6]; signed = [1.2, −0.3, 2.2, 0.7, +0.6] → P = 4.4 / 5 = 0.88.
    I: (c0,c1) comparison both True = 1; (c2,c3) different answers both True = 1 → I = 2.  U = 50·0.88 − 2 = 42.
    """
    claims = six_claim_pool()
    scorer = TableScorer([1.0, -0.5, 2.0, 0.5, -1.0, 3.0], weight=0.1)
    search = ICMSearch(claims, scorer, ConsistencyRules(), SearchConfig(alpha=50.0))
    ev = search.evaluate([True, True, True, True, False, None])
    np.testing.assert_allclose(ev.scores[:5], [1.2, -0.3, 2.2, 0.7, -0.6], atol=1e-12)
    assert np.isnan(ev.scores[5])
    assert ev.p == pytest.approx(0.88, abs=1e-12)
    assert ev.i == 2
    assert ev.u == pytest.approx(42.0, abs=1e-10)


def test_predictability_is_a_mean_over_labeled_only():
    assert predictability(np.array([2.0, -1.0, 5.0]), [True, False, None]) == pytest.approx(1.5)
    assert predictability(np.array([1.0]), [None]) == 0.0
    assert utility(20.0, 0.5, 3) == pytest.approx(7.0)


@pytest.mark.parametrize("labels,expected", [
    ([True, True], 1),    # both orderings True
    ([False, False], 1),  # neither ordering True
    ([True, False], 0),
    ([False, True], 0),
    ([True, None], 0),    # unlabeled claims never count
])
def test_comparison_rule(labels, expected):
    s = build_structure(["g", "g"], ["A>B", "B>A"], ConsistencyRules())
    assert inconsistency(s, labels) == expected


def test_different_answers_rule_counts_every_true_pair():
    s = build_structure(["q"] * 4, ["1", "2", "3", "4"], ConsistencyRules())
    assert inconsistency(s, [True, True, True, False]) == 3  # C(3,2) pairs of True answers
    assert inconsistency(s, [False, False, False, False]) == 0  # "none right" is allowed for answers
    assert violating_pairs(s, [True, False, True, None]) == [(0, 2)]


def test_same_answer_rule():
    s = build_structure(["q"] * 3, ["42", "42", "7"], ConsistencyRules())
    assert inconsistency(s, [True, False, False]) == 1  # same answer 42, different verdicts
    assert inconsistency(s, [True, True, False]) == 0
    assert inconsistency(s, [False, False, True]) == 0


def test_rules_are_switchable():
    off = ConsistencyRules(different_keys_both_true=False, comparison_both_false=False,
                           same_key_different_labels=False)
    s = build_structure(["g", "g", "q", "q", "q"], ["A>B", "B>A", "1", "1", "2"], off)
    assert inconsistency(s, [True, True, True, False, True]) == 0
    only_cmp = ConsistencyRules(different_keys_both_true=False, comparison_both_false=True,
                                same_key_different_labels=False)
    s = build_structure(["g", "g"], ["A>B", "B>A"], only_cmp)
    assert inconsistency(s, [False, False]) == 1 and inconsistency(s, [True, True]) == 0


def test_groups_do_not_interact():
    s = build_structure(["a", "b"], ["1", "2"], ConsistencyRules())
    assert inconsistency(s, [True, True]) == 0


def test_consistent_assignments_match_the_doc():
    r = ConsistencyRules()
    assert consistent_assignments("A>B", "B>A", r) == [(True, False), (False, True)]
    assert consistent_assignments("1", "2", r) == [(True, False), (False, True), (False, False)]
    assert consistent_assignments("1", "1", r) == [(True, True), (False, False)]
    for k1, k2 in [("A>B", "B>A"), ("1", "2"), ("1", "1")]:
        for a, b in consistent_assignments(k1, k2, r):
            assert not pair_violates(k1, a, k2, b, r)


def test_truthfulqa_yes_no_stance_rule_hand_worked(tmp_path):
    """TruthfulQA claims (read by the icm_truthfulqa loader, rules by task name): an answer starting "Yes" and one
    starting "No" to the same question cannot both be True; other different answers may be (I counts by hand)."""
    rows = [("q1", "Yes, it does."), ("q1", "No."), ("q1", "No, never"), ("q1", "Yesterday it did"),
            ("q2", "yes"), ("q2", "It depends"), ("q2", "Nope"), ("q3", "NO!")]
    path = tmp_path / "train_truthfulqa.json"
    path.write_text(json.dumps([{"question": f"Does {g}?", "choice": a, "label": 0, "consistency_id": g}
                                for g, a in rows]))
    pool = load_claimset("icm_truthfulqa", str(path))
    rules = get_task(pool.name).rules
    assert pool.name == "truthfulqa" and rules.opposite_stances_both_true and not rules.different_keys_both_true
    claims = sorted(pool.claims, key=lambda c: int(c.id))  # file order (the loader orders by content)
    assert [answer_stance(c.key) for c in claims] == ["yes", "no", "no", None, "yes", None, None, "no"]
    s = build_structure([c.group for c in claims], [c.key for c in claims], rules)
    everything = [True] * 8
    # q1: Yes–No and Yes–"No, never" (the two Noes and "Yesterday" are free); q2: no "No"; q3 alone → I = 2
    assert violating_pairs(s, everything) == [(0, 1), (0, 2)]
    assert inconsistency(s, [True, False, False, True, True, True, True, True]) == 0
    assert inconsistency(s, [False, True, True, True, True, True, True, True]) == 0
    assert inconsistency(s, [True, True, None, True, True, True, True, True]) == 1
    search = ICMSearch(claims, TableScorer([0.0] * 8), rules, SearchConfig(alpha=50.0))
    assert search.evaluate(everything).i == 2
    assert consistent_assignments("yes it does", "no", rules) == [(True, False), (False, True), (False, False)]
    assert consistent_assignments("no", "no never", rules) == [(True, True), (True, False), (False, True),
                                                               (False, False)]
    # the rule is TruthfulQA's: off by default; with it off, I(D) = 0 on these claims
    assert not ConsistencyRules().opposite_stances_both_true
    off = build_structure([c.group for c in claims], [c.key for c in claims],
                          ConsistencyRules(different_keys_both_true=False))
    assert inconsistency(off, everything) == 0
