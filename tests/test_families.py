"""Test-task families built in code and the dev/test protocol: sizes, gold, the TRL-file round trip, roles."""

import pytest

from icm_rm.data.families import FAMILIES, family_claimset, write_trl
from icm_rm.data.protocol import (DEV, FOURTH_FAMILIES, FRESH_FAMILIES, PROTOCOL, TEST, TEST2, TEST3, TEST4,
                                  THIRD_FAMILIES, load_protocol_task, protocol_task, tasks_of)
from icm_rm.data.spec import load_claimset
from icm_rm.infra.errors import ConfigError


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_is_a_real_preference_set(name):
    rows = FAMILIES[name].rows()
    assert len(rows) >= 20 and len({r["id"] for r in rows}) == len(rows)
    assert len({r["prompt"] for r in rows}) == len(rows)  # one pair per prompt
    assert all(r["chosen"] != r["rejected"] for r in rows)
    assert len({(r["chosen"], r["rejected"]) for r in rows}) == len(rows)  # no pair twice
    cs = family_claimset(name)
    assert len(cs.claims) == 2 * len(rows) and cs.has_gold and cs.is_pairwise
    chosen = {r["id"]: r["chosen"] for r in rows}
    for c in cs.claims:  # gold says True exactly when the claim ranks the chosen response first
        pair = cs.pairs[c.group]
        first = pair.response_a if c.key == "A>B" else pair.response_b
        assert cs.gold[c.id] == (first == chosen[c.group])
    a_first = sum(cs.gold[c.id] for c in cs.claims if c.key == "A>B")
    assert 0.2 * len(rows) <= a_first <= 0.8 * len(rows)  # the better response is not always shown first


@pytest.mark.parametrize("name", ["antonyms", "assistant_answers"])
def test_family_equals_its_trl_file_read_by_the_label_stage(tmp_path, name):
    path = write_trl(name, tmp_path / f"{name}.jsonl")
    from_file = load_claimset("trl", str(path))
    built = family_claimset(name)
    assert [(c.id, c.key, c.text) for c in from_file.claims] == [(c.id, c.key, c.text) for c in built.claims]
    assert dict(from_file.gold) == dict(built.gold) and from_file.name == built.name == "alpaca"


def test_protocol_splits_tasks_into_disjoint_dev_test_and_unseen_test():
    assert {t.role for t in PROTOCOL} == {DEV, TEST, TEST2, TEST3, TEST4}
    dev, test, fresh, third, fourth = (tasks_of(r) for r in (DEV, TEST, TEST2, TEST3, TEST4))
    roles = [set(dev), set(test), set(fresh), set(third), set(fourth)]
    assert all(not (a & b) for k, a in enumerate(roles) for b in roles[k + 1:])
    assert len(dev) + len(test) + len(fresh) + len(third) + len(fourth) == len(PROTOCOL)
    assert set(FAMILIES) == {t for t in test + fresh + third + fourth if protocol_task(t).source == "family"}
    assert fresh == list(FRESH_FAMILIES) and len(fresh) >= 6
    assert third == list(THIRD_FAMILIES) and len(third) >= 6
    assert fourth == list(FOURTH_FAMILIES) and len(fourth) >= 6
    assert len([t for t in test if protocol_task(t).source == "family"]) >= 6
    assert "capitals" in dev  # the defaults were tuned on the fact tables
    with pytest.raises(ConfigError, match="not a protocol task"):
        protocol_task("nope")


def test_protocol_loads_every_task(shared_data):
    for t in PROTOCOL:
        cs = load_protocol_task(t.name, shared_data)
        assert cs is not None and cs.has_gold and len(cs.claims) >= 40, t.name
