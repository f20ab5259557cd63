"""`load_claimset`: every format through the one entry point, generic claims/pairs, limit_groups, builtin delegation."""

from __future__ import annotations

import collections
import json

import pytest

from icm_rm.data import builtin
from icm_rm.data.records import Claim, ClaimSet, GoldLabels
from icm_rm.data.spec import CLAIM_FORMATS, detect_claim_format, load_claimset
from icm_rm.data.task_registry import get_task
from icm_rm.infra.errors import ConfigError

ICM = "icm_unsupervised_elicitation"


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("rel, fmt, task, claims, groups, pairs", [
    (f"{ICM}/train_truthfulqa.json", "icm_truthfulqa", "truthfulqa", 2608, 652, 0),
    (f"{ICM}/test_truthfulqa_preference.json", "icm_truthfulqa_preference", "truthfulqa_preference", 5882, 2941,
     2941),
    (f"{ICM}/test_gsm8k.json", "icm_gsm8k", "gsm8k", 2972, 743, 0),
    (f"{ICM}/test_alpaca.json", "icm_alpaca", "alpaca", 934, 467, 467),
    ("truthfulqa/TruthfulQA.csv", "truthfulqa_csv", "truthfulqa", 6022, 790, 0),
    ("gsm8k/example_model_solutions.jsonl", "gsm8k_solutions", "gsm8k", 5276, 1319, 0),
    ("hh_rlhf/harmless-base/test.jsonl.gz", "hh_rlhf", "hh_rlhf", 4616, 2308, 2308),
    ("fine_grained_rlhf_qa_feedback/dev_feedback.json", "fgrlhf", "qa_feedback", 5232, 2616, 2616),
])
def test_every_real_format_through_the_entry_point(shared_data, rel, fmt, task, claims, groups, pairs):
    assert detect_claim_format(shared_data / rel) == fmt
    cs = load_claimset(fmt, str(shared_data / rel))
    assert cs.name == task and get_task(task).name == task  # the label stage finds the rules by this name
    assert (len(cs.claims), len(cs.groups()), len(cs.pairs)) == (claims, groups, pairs)
    assert cs.has_gold and all(c.text.endswith("I think this claim is") for c in cs.claims)
    if pairs:
        assert collections.Counter(c.key for c in cs.claims) == {"A>B": pairs, "B>A": pairs}
        assert all(len(m) == 2 for m in cs.groups().values())


def test_pair_task_override_renders_with_that_template(shared_data):
    cs = load_claimset("hh_rlhf", str(shared_data / "hh_rlhf/harmless-base/test.jsonl.gz"), task="alpaca")
    assert cs.claims[0].text.startswith("Human: \n\nHuman: what are some pranks with a pen i can do?")
    with pytest.raises(ConfigError, match="format 'icm_gsm8k' is rendered with task 'gsm8k'"):
        load_claimset("icm_gsm8k", str(shared_data / ICM / "test_gsm8k.json"), task="truthfulqa")
    with pytest.raises(ConfigError, match="task 'truthfulqa' is for claims, but this format yields pairs"):
        load_claimset("icm_alpaca", str(shared_data / ICM / "test_alpaca.json"), task="truthfulqa")


def test_limit_groups_keeps_whole_groups_by_seed(shared_data):
    path = str(shared_data / ICM / "test_truthfulqa.json")
    full = load_claimset("icm_truthfulqa", path)
    sizes = {g: len(m) for g, m in full.groups().items()}
    a = load_claimset("icm_truthfulqa", path, limit_groups=10, seed=1)
    b = load_claimset("icm_truthfulqa", path, limit_groups=10, seed=1)
    c = load_claimset("icm_truthfulqa", path, limit_groups=10, seed=2)
    assert len(a.groups()) == 10 and a.claims == b.claims and a.claims != c.claims
    assert all(len(m) == sizes[g] for g, m in a.groups().items())
    assert set(a.gold) == {x.id for x in a.claims}
    order = [x.id for x in full.claims]
    assert [x.id for x in a.claims] == sorted((x.id for x in a.claims), key=order.index)
    assert load_claimset("icm_truthfulqa", path, limit_groups=10_000).claims == full.claims
    pairs = load_claimset("icm_alpaca", str(shared_data / ICM / "test_alpaca.json"), limit_groups=5, seed=0)
    assert len(pairs.pairs) == 5 and len(pairs.claims) == 10 and set(pairs.pairs) == set(pairs.groups())


def test_generic_claims_templates_keys_groups_and_gold(tmp_path):
    path = jsonl(tmp_path / "c.jsonl", [
        {"id": "q1-a", "question": "Capital of France?", "answer": "Paris", "group": "q1", "label": True},
        {"id": "q1-b", "question": "Capital of France?", "answer": " paris.", "group": "q1", "label": 1},
        {"id": "q1-c", "question": "Capital of France?", "answer": "Lyon", "group": "q1", "label": "false"},
        {"question": "2+2?", "answer": "$4.00"},
    ])
    cs = load_claimset("claims", path, task="truthfulqa")
    assert [(c.id, c.group, c.key) for c in cs.claims] == [("q1-a", "q1", "paris"), ("q1-b", "q1", "paris"),
                                                           ("q1-c", "q1", "lyon"), ("4", "4", "4")]
    assert cs.claims[0].text == "Question: Capital of France?\nClaim: Paris\nI think this claim is"
    assert dict(cs.gold) == {"q1-a": True, "q1-b": True, "q1-c": False}
    assert not cs.has_gold  # one row has no label


def test_generic_claims_from_text_or_statement_csv(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("text,statement,label\nThe sky is green.,,0\n,Water is wet.,TRUE\n"
                    "Already asked. I think this claim is,,1\n")
    cs = load_claimset("claims", str(path))
    assert [c.text for c in cs.claims] == ["The sky is green.\nI think this claim is",
                                           "Claim: Water is wet.\nI think this claim is",
                                           "Already asked. I think this claim is"]
    assert [c.key for c in cs.claims] == ["the sky is green", "water is wet", "already asked"]
    assert [cs.gold[c.id] for c in cs.claims] == [False, True, True] and cs.has_gold


def test_generic_claims_ignore_labels(tmp_path):
    rows = [{"statement": f"fact {i}", "group": f"g{i % 3}", "label": i % 2 == 0} for i in range(9)]
    a = load_claimset("claims", jsonl(tmp_path / "a.jsonl", rows))
    b = load_claimset("claims", jsonl(tmp_path / "b.jsonl", [{**r, "label": not r["label"]} for r in rows]))
    assert a.claims == b.claims and [c.key for c in a.claims] == [c.key for c in b.claims]


def test_generic_pairs_with_a_field_mapping(tmp_path):
    rows = [{"instruction": f"question {i}", "good": f"right {i}", "bad": f"wrong {i}"} for i in range(400)]
    cs = load_claimset("pairs", jsonl(tmp_path / "p.jsonl", rows),
                       fields={"instruction": "prompt", "good": "chosen", "bad": "rejected"})
    reverse = load_claimset("trl", jsonl(tmp_path / "p.jsonl", rows),  # {ours: theirs} is understood too
                            fields={"prompt": "instruction", "chosen": "good", "rejected": "bad"})
    assert reverse.claims == cs.claims and dict(reverse.gold) == dict(cs.gold)
    assert (len(cs.pairs), len(cs.claims), len(cs.gold)) == (400, 800, 800)
    for pid, pair in cs.pairs.items():
        better = pair.response_a if cs.gold[f"{pid}:A>B"] else pair.response_b
        assert better == f"right {int(pid) - 1}" and pair.prompt == f"question {int(pid) - 1}"
    a_better = sum(cs.gold[f"{pid}:A>B"] for pid in cs.pairs)
    assert 170 < a_better < 230  # gold position from a hash of the id, not always A
    claim = cs.claims[0]
    assert claim.key == "A>B" and claim.group == "1" and claim.text.startswith("Human: question 0\n\nResponse 1: ")


def test_generic_unlabeled_pairs_keep_their_order_and_have_no_gold(tmp_path):
    path = jsonl(tmp_path / "p.jsonl", [{"id": "x", "prompt": "q", "response_a": "one", "response_b": "two"},
                                        {"id": "y", "prompt": "q", "response_a": "three", "response_b": "four",
                                         "label": False}])
    cs = load_claimset("pairs", path)
    assert cs.pairs["x"].response_a == "one" and dict(cs.gold) == {"y:A>B": False, "y:B>A": True}
    assert [c.id for c in cs.claims] == ["x:A>B", "x:B>A", "y:A>B", "y:B>A"]


def test_builtin_is_delegated_lazily(monkeypatch):
    calls = []

    def fake(name, *, n_groups=None, seed=0):  # the real one picks its own subjects; we trim only if it does not
        calls.append((name, n_groups, seed))
        claims = [Claim(id=f"{g}:{k}", group=str(g), key=str(k), text="t I think this claim is")
                  for g in range(6) for k in range(3)]
        return ClaimSet(claims=claims, gold=GoldLabels({c.id: True for c in claims}), name=name)

    monkeypatch.setattr(builtin, "builtin_claimset", fake, raising=False)
    cs = load_claimset("builtin", None, task="capitals", limit_groups=2, seed=5)
    assert calls == [("capitals", 2, 5)] and len(cs.groups()) == 2 and len(cs.claims) == 6
    assert load_claimset("builtin", "capitals").name == "capitals"  # whatever builtin names it
    with pytest.raises(ConfigError, match="the builtin format needs a task name"):
        load_claimset("builtin", None)


def test_config_errors():
    assert "auto" not in CLAIM_FORMATS and {"builtin", "claims", "pairs", "hh_rlhf"} <= set(CLAIM_FORMATS)
    with pytest.raises(ConfigError) as info:
        load_claimset("claims", None)
    assert str(info.value) == "key 'path': the 'claims' format reads a file: set the data path"
    with pytest.raises(ConfigError, match="key 'fields': a field mapping applies to the 'claims' and 'pairs'"):
        load_claimset("icm_gsm8k", "x.json", fields={"a": "text"})
    with pytest.raises(ConfigError, match="key 'limit_groups': expected a positive integer or null, got 0"):
        load_claimset("claims", "x.jsonl", limit_groups=0)


@pytest.mark.parametrize("name", ["c.jsonl", "c.jsonl.gz", "c.json", "c.json.gz", "c.csv", "c.csv.gz"])
def test_every_file_type_reads_the_same_claims(tmp_path, name):
    import gzip

    rows = [{"id": "a", "statement": "Ice is cold.", "group": "g", "label": "true"},
            {"id": "b", "statement": "Ice is hot \u2028 today.", "group": "g", "label": "false"}]
    if ".jsonl" in name:
        text = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n"
    elif ".json" in name:
        text = json.dumps({"data": rows}, ensure_ascii=False)
    else:
        text = "id,statement,group,label\r\n" + "".join(f"{r['id']},{r['statement']},g,{r['label']}\r\n" for r in rows)
    data = text.encode("utf-8")
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    cs = load_claimset("claims", str(tmp_path / name))
    assert [(c.id, c.group, c.key) for c in cs.claims] == [("a", "g", "ice is cold"), ("b", "g", "ice is hot today")]
    assert cs.claims[1].text == "Claim: Ice is hot \u2028 today.\nI think this claim is"
    assert dict(cs.gold) == {"a": True, "b": False}
