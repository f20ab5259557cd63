"""Built-in fact tasks: splits, determinism, content-only keys, pair-position balance, gold_check, registration."""

from __future__ import annotations

import pytest

from icm_rm.data import builtin
from icm_rm.data.builtin import (BUILTIN_TASKS, DEFAULT_TASK, builtin_claimset, builtin_prompts, gold_check,
                                 split_subjects)
from icm_rm.data.fact_tables import TABLES
from icm_rm.data.task_registry import get_task, task_names
from icm_rm.data.tasks import pair_violates
from icm_rm.infra.errors import ConfigError


@pytest.mark.parametrize("name", list(TABLES))
def test_tables_are_clean(name):
    table = TABLES[name]
    subjects = [s for s, _ in table.rows]
    assert len(subjects) == len(set(subjects)), "duplicate subject"
    assert len(table.rows) >= 50
    assert len(table.objects()) >= 5  # enough distinct objects for distractors


@pytest.mark.parametrize("name", list(TABLES))
def test_splits_disjoint_deterministic_and_complete(name):
    table = TABLES[name]
    train, test = split_subjects(table, "train"), split_subjects(table, "test")
    assert not set(train) & set(test)
    assert sorted(train + test) == sorted(split_subjects(table, "all"))
    assert abs(len(test) - round(len(table.rows) * builtin.TEST_FRACTION)) == 0
    assert builtin_prompts(name, "test") == builtin_prompts(name, "test")
    a = builtin_claimset(name, split="train", n_groups=10, seed=3)
    b = builtin_claimset(name, split="train", n_groups=10, seed=3)
    assert [(c.id, c.text) for c in a.claims] == [(c.id, c.text) for c in b.claims] and dict(a.gold) == dict(b.gold)
    test_groups = {c.group for c in builtin_claimset(name, split="test").claims}
    assert not test_groups & {c.group for c in builtin_claimset(name, split="train").claims}


def test_seed_changes_subset_not_split():
    a = {c.group for c in builtin_claimset("capitals", n_groups=20, seed=0).claims}
    b = {c.group for c in builtin_claimset("capitals", n_groups=20, seed=1).claims}
    train = {c.group for c in builtin_claimset("capitals").claims}
    assert a != b and a <= train and b <= train


@pytest.mark.parametrize("name", list(TABLES))
def test_pairs_form(name):
    cs = builtin_claimset(name, form="pairs", split="all")
    table = TABLES[name]
    assert len(cs.pairs) == len(table.rows) and len(cs.claims) == 2 * len(table.rows)
    assert cs.has_gold and cs.is_pairwise and cs.name == name
    truth = dict(table.rows)
    for gid, members in cs.groups().items():
        c1, c2 = (cs.claims[i] for i in members)
        assert {c1.key, c2.key} == {"A>B", "B>A"}
        assert cs.gold[c1.id] != cs.gold[c2.id]  # exactly one ordering is right
        pair = cs.pairs[gid]
        good = pair.response_a if cs.gold[f"{gid}:A>B"] else pair.response_b
        bad = pair.response_b if cs.gold[f"{gid}:A>B"] else pair.response_a
        subject = pair.meta["subject"]
        assert good == table.state(subject, truth[subject]) and bad != good
        assert gold_check(name, pair.prompt, good) is True
        assert gold_check(name, pair.prompt, bad) is False
        assert c1.text.endswith("I think this claim is") and "accurate" in c1.text


@pytest.mark.parametrize("name", list(TABLES))
def test_good_answer_position_is_balanced(name):
    cs = builtin_claimset(name, form="pairs", split="all")
    a_first = [cs.gold[f"{pid}:A>B"] for pid in cs.pairs]
    assert 0.35 <= sum(a_first) / len(a_first) <= 0.65
    assert len(set(a_first)) == 2


@pytest.mark.parametrize("name", list(TABLES))
def test_claims_form_keys_come_from_content(name):
    cs = builtin_claimset(f"{name}_claims", form="claims", split="all", n_candidates=3)
    table = TABLES[name]
    truth = dict(table.rows)
    rules = get_task(f"{name}_claims").rules
    for members in cs.groups().values():
        claims = [cs.claims[i] for i in members]
        assert len(claims) == 3 and len({c.key for c in claims}) == 3
        assert sum(cs.gold[c.id] for c in claims) == 1
        for c in claims:
            subject = c.meta["subject"]
            assert c.text == f"Claim: {table.state(subject, c.key)}\nI think this claim is"  # key = stated object
            assert cs.gold[c.id] == (c.key == truth[subject])
        trues = [c for c in claims if cs.gold[c.id]]
        other = next(c for c in claims if not cs.gold[c.id])
        assert pair_violates(trues[0].key, True, other.key, True, rules)  # two answers cannot both be right
    positions = [next(k for k, i in enumerate(m) if cs.gold[cs.claims[i].id]) for m in cs.groups().values()]
    assert len(set(positions)) == 3  # the true candidate is not always in the same slot


def test_registered_tasks_and_default():
    names = task_names()
    for name in BUILTIN_TASKS:
        assert name in names and f"{name}_claims" in names
        assert get_task(name).kind == "pairs" and get_task(f"{name}_claims").kind == "claims"
    assert DEFAULT_TASK in BUILTIN_TASKS


def test_gold_check_hand_examples():
    q = "What is the capital of France?"
    assert gold_check("capitals", q, "The capital of France is Paris.") is True
    assert gold_check("capitals", q, "paris") is True
    assert gold_check("capitals", q, "It is Lyon.") is False  # right one missing
    assert gold_check("capitals", q, "Paris or maybe Berlin.") is False  # a wrong one stated
    assert gold_check("capitals", q, "Parisian cafés are nice.") is False  # word boundaries
    assert gold_check("capitals", "What is the capital of Peru?", "Lima") is True
    assert gold_check("capitals", "What is the capital of Colombia?", "Bogota, of course") is True  # accents ignored
    assert gold_check("capitals", "What is the capital of Ukraine?", "Kiev") is True  # alias
    us = "What is the capital of the United States?"
    assert gold_check("capitals", us, "Washington, D.C. is the capital.") is True
    chat = f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
    assert gold_check("capitals", chat, "Paris.") is True  # the question inside a chat template
    assert gold_check("capitals", "Write a poem.", "Paris") is None
    sym = "What is the chemical symbol for iron?"
    assert gold_check("element_symbols", sym, "The chemical symbol for iron is Fe.") is True
    assert gold_check("element_symbols", sym, "It is FE.") is False  # symbols are case-sensitive
    assert gold_check("element_symbols", sym, "Fe, not Cu.") is False
    animal = builtin_prompts("animal_classes", "all")[0]
    assert animal.startswith("Is a dog a mammal")
    assert gold_check("animal_classes", animal, "Dogs are mammals.") is True  # plural accepted
    assert gold_check("animal_classes", animal, "A dog is a bird.") is False
    assert gold_check("continents", "Which continent is Brazil in?", "Brazil is in South America.") is True
    assert gold_check("continents", "Which continent is Brazil in?", "Brazil is in North America.") is False


def test_counts_and_errors():
    assert len(builtin_claimset("capitals", n_groups=7).claims) == 14
    assert len(builtin_claimset("capitals_claims", form="claims", n_groups=5, n_candidates=4).claims) == 20
    assert len(builtin_prompts("us_state_capitals", "all")) == 50
    with pytest.raises(ConfigError, match="unknown built-in task 'nope'"):
        builtin_claimset("nope")
    assert len(builtin_claimset("capitals", n_groups=10_000).pairs) == len(split_subjects(TABLES["capitals"], "train"))
    with pytest.raises(ConfigError, match="n_groups must be ≥ 1"):
        builtin_claimset("capitals", n_groups=0)
    with pytest.raises(ConfigError, match="unknown split"):
        builtin_prompts("capitals", "dev")
    with pytest.raises(ConfigError, match="unknown form"):
        builtin_claimset("capitals", form="triples")


def test_constants_match_the_task_selection_results():
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "task_selection.json"
    selection = json.loads(path.read_text())["selection"]
    assert selection["default"] == DEFAULT_TASK
    assert sorted(selection["kept"]) == sorted(BUILTIN_TASKS)


def test_the_rl_task_rejects_non_answers_in_half_its_pairs():
    from icm_rm.data.builtin import RL_TASKS, split_subjects

    table = TABLES["animal_answers"]
    assert "animal_answers" in RL_TASKS and "animal_answers" not in BUILTIN_TASKS
    train, test = split_subjects(table, "train"), split_subjects(table, "test")
    assert len(test) >= 50 and not set(train) & set(test) and len(train) + len(test) == len(table.rows)
    assert set(table.rows) >= set(TABLES["animal_classes"].rows)
    pool = builtin_claimset("animal_answers", split="all")
    truth = dict(table.rows)
    evasive = 0
    for pid, pair in pool.pairs.items():
        a_better = pool.gold[f"{pid}:A>B"]
        good, bad = (pair.response_a, pair.response_b) if a_better else (pair.response_b, pair.response_a)
        subject = pair.meta["subject"]
        assert good == table.state(subject, truth[subject]) and gold_check("animal_answers", pair.prompt, good)
        assert gold_check("animal_answers", pair.prompt, bad) is False
        evasive += bad in table.evasions
    assert 0.4 < evasive / len(pool.pairs) < 0.6
    # an evasion names no class at all: the pairs reward answering, not a particular wrong class
    assert all(gold_check("animal_answers", table.ask("dog"), e) is False for e in table.evasions)
    assert not any(o in e.lower() for e in table.evasions for o in table.objects())


def test_the_quiz_task_shares_the_animal_split_and_rejects_a_wrong_class_or_a_non_answer():
    from icm_rm.data.builtin import RL_TASKS, split_subjects

    table, answers = TABLES["animal_quiz"], TABLES["animal_answers"]
    assert "animal_quiz" in RL_TASKS and "animal_quiz" not in BUILTIN_TASKS
    assert table.rows == answers.rows
    train, test = split_subjects(table, "train"), split_subjects(table, "test")
    assert (train, test) == (split_subjects(answers, "train"), split_subjects(answers, "test"))
    assert len(test) >= 50 and not set(train) & set(test) and len(train) + len(test) == len(table.rows)
    assert set(builtin_prompts("animal_quiz", "train")).isdisjoint(builtin_prompts("animal_quiz", "test"))
    pool = builtin_claimset("animal_quiz", split="all")
    truth = dict(table.rows)
    wrong, non_answers = set(), 0
    for pid, pair in pool.pairs.items():
        a_better = pool.gold[f"{pid}:A>B"]
        good, bad = (pair.response_a, pair.response_b) if a_better else (pair.response_b, pair.response_a)
        subject = pair.meta["subject"]
        assert pair.prompt == table.ask(subject) and good == table.state(subject, truth[subject])
        assert gold_check("animal_quiz", pair.prompt, good) and gold_check("animal_quiz", pair.prompt, bad) is False
        # the same sentence with another class, or the subject with no class ("A fox." / "A fox is an animal.")
        others = [o for o in table.objects() if o != truth[subject] and bad == table.state(subject, o)]
        if others:
            wrong.add(*others)
        else:
            non_answers += 1
            assert bad in {e.format(**table.fields(subject)) for e in table.evasions}
            assert not any(o in bad.lower().replace(subject.lower(), "") for o in table.objects())  # "A swordfish."
    assert wrong == set(table.objects())
    assert 0.4 < non_answers / len(pool.pairs) < 0.6


def test_no_constant_quiz_answer_scores_above_the_largest_class_share():
    """A policy that names one class for every animal scores that class's share of the test split, at most 0.31
    (mammal): far below the reference policy's ~0.45 (BENCHMARKS.md §5), so a constant answer cannot fake the gain."""
    from icm_rm.data.builtin import split_subjects

    table = TABLES["animal_quiz"]
    test = split_subjects(table, "test")
    truth = dict(table.rows)
    for cls in table.objects():
        share = sum(truth[s] == cls for s in test) / len(test)
        score = sum(bool(gold_check("animal_quiz", table.ask(s), f"It is {'an' if cls[0] in 'aeiou' else 'a'} {cls}."))
                    for s in test) / len(test)
        assert score == share
    best = max(sum(truth[s] == c for s in test) for c in table.objects()) / len(test)
    assert best == 17 / 56 < 0.31


def test_an_evasion_may_name_the_subject():
    """`{A_subject}.` as an evasion rejects the subject alone ("A fox."): formatted per pair, gold still right."""
    import dataclasses

    from icm_rm.data.builtin import table_claimset

    table = dataclasses.replace(TABLES["animal_quiz"], evasions=("{A_subject}.",))
    pool = table_claimset(table, split="train")
    truth, bare = dict(table.rows), 0
    for pid, pair in pool.pairs.items():
        a_better = pool.gold[f"{pid}:A>B"]
        good, bad = (pair.response_a, pair.response_b) if a_better else (pair.response_b, pair.response_a)
        subject = pair.meta["subject"]
        assert good == table.state(subject, truth[subject])
        if bad == table.fields(subject)["A_subject"] + ".":
            bare += 1
            assert "{" not in bad and gold_check("animal_quiz", pair.prompt, bad) is False
    assert 0.3 < bare / len(pool.pairs) < 0.7


def test_frequency_distractors_make_the_object_word_uninformative():
    """distractors_by="frequency" draws a wrong object as often as it is right elsewhere: over a table's pairs each
    object's share on the rejected side comes closer to its share on the chosen side than uniform draws leave it
    ('mammal', right for 60 of 187 animals, is rejected 52 times, not 29); draws stay wrong, distinct, deterministic."""
    import dataclasses
    from collections import Counter

    base = dataclasses.replace(TABLES["animal_quiz"], evasions=())
    truth = dict(base.rows)
    chosen = Counter(truth.values())
    table = {how: dataclasses.replace(base, distractors_by=how) for how in ("uniform", "frequency")}
    rejected = {how: Counter(builtin.distractors(t, s, 1)[0] for s in truth) for how, t in table.items()}
    worst = {how: max(abs(chosen[o] - r[o]) / len(truth) for o in base.objects()) for how, r in rejected.items()}
    assert rejected["frequency"]["mammal"] > 1.5 * rejected["uniform"]["mammal"]
    assert worst["frequency"] < worst["uniform"] - 0.05
    for s in list(truth)[:40]:
        three = builtin.distractors(table["frequency"], s, 3, seed=1)
        assert three == builtin.distractors(table["frequency"], s, 3, seed=1)
        assert len(set(three)) == 3 and truth[s] not in three
    with pytest.raises(ConfigError, match="distractors_by"):
        builtin.distractors(dataclasses.replace(base, distractors_by="often"), "fox", 1)


def test_hedges_reject_the_right_class_named_beside_a_wrong_one():
    """A table with hedges rejects, in a third of its pairs each, a wrong class, a non-answer, or a hedge naming the
    right class and the pair's wrong one ("A fox is a mammal, but it is also a fish."), which the gold checker fails;
    a table without hedges keeps the half/half rule (the wrong class is the subject's first distractor)."""
    import dataclasses
    from collections import Counter

    from icm_rm.data.builtin import table_claimset
    from icm_rm.data.fact_tables import HEDGES, with_article

    for hedges in (HEDGES, ()):
        table = dataclasses.replace(TABLES["animal_quiz"], hedges=hedges)
        pool = table_claimset(table, split="all")
        truth, kinds = dict(table.rows), Counter()
        for pid, pair in pool.pairs.items():
            a_better = pool.gold[f"{pid}:A>B"]
            good, bad = (pair.response_a, pair.response_b) if a_better else (pair.response_b, pair.response_a)
            subject = pair.meta["subject"]
            wrong = builtin.distractors(table, subject, 1)[0]
            assert good == table.state(subject, truth[subject])
            assert gold_check("animal_quiz", pair.prompt, bad) is False
            evasions = {e.format(**table.fields(subject)) for e in table.evasions}
            hedged = {h.format(**table.fields(subject, truth[subject]), a_other=with_article(wrong)) for h in hedges}
            kind = ("wrong" if bad == table.state(subject, wrong) else "evasion" if bad in evasions
                    else "hedge" if bad in hedged else "other")
            assert kind != "other", bad
            kinds[kind] += 1
        shares = {k: n / len(pool.pairs) for k, n in kinds.items()}
        if hedges:
            assert set(shares) == {"wrong", "evasion", "hedge"} and all(0.22 < v < 0.45 for v in shares.values())
        else:
            assert set(shares) == {"wrong", "evasion"} and 0.4 < shares["evasion"] < 0.6
