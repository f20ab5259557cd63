"""Bad input files → one-line InputError naming file, 1-based row and field (never a json/csv/gzip traceback)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from icm_rm.data.fgrlhf import fgrlhf_source
from icm_rm.data.generic import read_claims, read_pair_source
from icm_rm.data.gsm8k import read_gsm8k_problems
from icm_rm.data.icm_paper import icm_pair_source
from icm_rm.data.preferences import load_preferences
from icm_rm.data.readers import read_rows
from icm_rm.data.spec import load_claimset
from icm_rm.data.tasks import ALPACA
from icm_rm.infra.errors import ConfigError, InputError


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def jsonl(path: Path, rows: list) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in rows))


def error_of(fn, *args, **kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return info.value


def test_missing_field(tmp_path):
    p = jsonl(tmp_path / "c.jsonl", [{"text": "a"}, {"group": "g"}])
    e = error_of(read_claims, str(p))
    assert str(e) == (f"{p}, row 2, field 'text': missing field (give 'text', or 'statement' for task 'claims'; this "
                      "row has group: another column name maps with --fields '{text: COLUMN}')")
    assert (e.row, e.field) == (2, "text")


def test_wrong_type(tmp_path):
    p = jsonl(tmp_path / "c.jsonl", [{"text": 7}])
    assert str(error_of(read_claims, str(p))) == f"{p}, row 1, field 'text': expected a string, got an integer"


def test_empty_text(tmp_path):
    p = jsonl(tmp_path / "c.jsonl", [{"text": "fine"}, {"text": "fine too"}, {"text": "   "}])
    assert str(error_of(read_claims, str(p))) == f"{p}, row 3, field 'text': empty text"


def test_duplicate_id(tmp_path):
    p = jsonl(tmp_path / "c.jsonl", [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}])
    assert str(error_of(read_claims, str(p))) == f"{p}, row 3, field 'id': duplicate id 'a' (first at row 1)"


def test_duplicate_id_between_explicit_and_default_row_number(tmp_path):
    p = jsonl(tmp_path / "c.jsonl", [{"id": 2, "text": "x"}, {"text": "y"}])
    assert str(error_of(read_claims, str(p))) == f"{p}, row 2, field 'id': duplicate id '2' (first at row 1)"


def test_undecodable_bytes_named_by_row_and_field(tmp_path):
    p = write(tmp_path / "c.jsonl", b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    assert str(error_of(read_claims, str(p))) == (f"{p}, row 2, field 'text': undecodable bytes (not UTF-8): "
                                                  "byte 0xe9 at character 3")


def test_undecodable_bytes_in_csv(tmp_path):
    p = write(tmp_path / "c.csv", b"text,label\nok,1\nbad \xff here,0\n")
    assert str(error_of(read_claims, str(p))) == (f"{p}, row 2, field 'text': undecodable bytes (not UTF-8): "
                                                  "byte 0xff at character 4")


def test_truncated_json_names_the_element(tmp_path):
    p = write(tmp_path / "c.json", '[{"text": "a"}, {"text": "b"}, {"text": "c')
    e = error_of(read_claims, str(p))
    assert str(e) == (f"{p}, row 3: invalid JSON at line 1, column 41: Unterminated string "
                      "(truncated file?)")
    assert e.row == 3


def test_truncated_jsonl_line(tmp_path):
    p = write(tmp_path / "c.jsonl", '{"text": "a"}\n{"text": "b"}\n{"text": "c\n')
    assert str(error_of(read_claims, str(p))) == (f"{p}, row 3: invalid JSON at column 10: Unterminated string "
                                                  "(truncated line?)")


def test_truncated_gzip(tmp_path):
    data = gzip.compress(b"".join(json.dumps({"text": f"claim {i}"}).encode() + b"\n" for i in range(200)))
    p = write(tmp_path / "c.jsonl.gz", data[: len(data) // 2])
    assert str(error_of(read_claims, str(p))) == f"{p}: truncated gzip file (compressed data ends early)"


def test_gzip_name_without_gzip_data(tmp_path):
    p = write(tmp_path / "c.jsonl.gz", '{"text": "a"}\n')
    assert str(error_of(read_claims, str(p))) == f"{p}: not gzip data although the name ends in .gz"


def test_empty_file(tmp_path):
    p = write(tmp_path / "c.jsonl", "\n  \n")
    assert str(error_of(read_claims, str(p))) == f"{p}: file is empty"


def test_empty_json_list(tmp_path):
    p = write(tmp_path / "c.json", "[]")
    assert str(error_of(read_claims, str(p))) == f"{p}: no rows in file"


def test_missing_file(tmp_path):
    p = tmp_path / "nope.jsonl"
    assert str(error_of(read_claims, str(p))) == f"{p}: file not found"


def test_nan_margin(tmp_path):
    p = write(tmp_path / "p.jsonl", '{"prompt": "q", "chosen": "a", "rejected": "b", "margin": NaN}\n')
    assert str(error_of(load_preferences, p, "trl")) == f"{p}, row 1, field 'margin': expected a finite number, got nan"


def test_infinite_margin_in_csv(tmp_path):
    p = write(tmp_path / "p.csv", "prompt,chosen,rejected,margin\nq,a,b,0.5\nq,c,d,inf\n")
    assert str(error_of(load_preferences, p, "trl")) == f"{p}, row 2, field 'margin': expected a finite number, got inf"


def test_margin_not_a_number(tmp_path):
    p = jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"}])
    assert str(error_of(load_preferences, p, "trl")) == f"{p}, row 1, field 'margin': expected a number, got 'big'"


def test_identical_responses(tmp_path):
    p = jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "same ", "rejected": " same"}])
    assert str(error_of(read_pair_source, str(p))) == (f"{p}, row 1, field 'rejected': identical to 'chosen': a pair "
                                                       "needs two different responses")


def test_identical_unlabeled_responses(tmp_path):
    p = jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "response_a": "x", "response_b": "x"}])
    assert str(error_of(read_pair_source, str(p))) == (f"{p}, row 1, field 'response_b': identical to 'response_a': "
                                                       "a pair needs two different responses")


def test_group_of_one_for_a_pairwise_task(tmp_path):
    rows = [{"text": "x", "group": "g1", "key": "A>B"}, {"text": "y", "group": "g1", "key": "B>A"},
            {"text": "z", "group": "g2", "key": "A>B"}]
    p = jsonl(tmp_path / "c.jsonl", rows)
    assert str(error_of(read_claims, str(p), ALPACA)) == (
        f"{p}, row 3, field 'group': group 'g2' has keys ['A>B']; task 'alpaca' needs exactly the two orderings of "
        "a pair (keys A>B and B>A)")


def test_bad_label(tmp_path):
    p = jsonl(tmp_path / "c.jsonl", [{"text": "x", "label": "maybe"}])
    assert str(error_of(read_claims, str(p))) == (f"{p}, row 1, field 'label': expected a boolean label (true/false "
                                                  "or 1/0), got 'maybe'")


def test_csv_row_with_wrong_cell_count(tmp_path):
    p = write(tmp_path / "c.csv", "text,label\nok,1\ntoo,many,cells\n")
    assert str(error_of(read_claims, str(p))) == f"{p}, row 2: has 3 cells but the header has 2"


def test_json_top_level_not_a_list(tmp_path):
    p = write(tmp_path / "c.json", '{"rows": []}')
    assert str(error_of(read_claims, str(p))) == (f"{p}: expected a JSON list of objects or {{\"data\": [...]}}, got "
                                                  "an object")


def test_jsonl_row_not_an_object(tmp_path):
    p = write(tmp_path / "c.jsonl", '{"text": "a"}\n["text", "b"]\n')
    assert str(error_of(read_claims, str(p))) == f"{p}, row 2: expected a JSON object, got a list"


def test_bad_message_list(tmp_path):
    p = jsonl(tmp_path / "p.jsonl", [{"prompt": [{"role": "user", "content": "hi"}],
                                      "chosen": [{"role": "assistant"}], "rejected": "b"}])
    assert str(error_of(read_pair_source, str(p))) == (f"{p}, row 1, field 'chosen': message 0 must be an object with "
                                                       "string 'role' and 'content'")


def test_transcripts_without_shared_prefix(tmp_path):
    p = jsonl(tmp_path / "p.jsonl", [{"chosen": "hello", "rejected": "goodbye"}])
    assert str(error_of(read_pair_source, str(p))) == (f"{p}, row 1, field 'prompt': missing field, and 'chosen'/"
                                                       "'rejected' share no dialogue prefix ending in an assistant "
                                                       "turn to take it from")


def test_field_mapping_errors_name_the_users_column(tmp_path):
    p = jsonl(tmp_path / "c.jsonl", [{"sentence": "ok"}, {"sentence": ""}])
    e = error_of(read_claims, str(p), fields={"sentence": "text"})
    assert str(e) == f"{p}, row 2, field 'sentence': empty text"


def test_icm_swapped_copy_with_the_same_label(tmp_path):
    rows = [{"question": "q", "choice": "a", "choice_2": "b", "label": True, "consistency_id": 0},
            {"question": "q", "choice": "b", "choice_2": "a", "label": 1, "consistency_id": 0}]
    p = write(tmp_path / "pref.json", json.dumps(rows))
    assert str(error_of(icm_pair_source, p, "preference_type")) == (
        f"{p}, row 2, field 'label': same label as its swapped copy at row 1; one order must win")


def test_icm_pair_missing_its_swapped_copy(tmp_path):
    rows = [{"question": "q", "choice": "a", "choice_2": "b", "label": True, "consistency_id": 5}]
    p = write(tmp_path / "pref.json", json.dumps(rows))
    assert str(error_of(icm_pair_source, p, "hh_type")) == (
        f"{p}, row 1, field 'consistency_id': consistency_id 5 has 1 row(s); expected a comparison and its swapped "
        "copy")


def test_fgrlhf_preference_of_wrong_length(tmp_path):
    row = {"question": "q", **{f"prediction {k}": f"answer {k}" for k in range(1, 5)}, "preference": [1, 2, 0]}
    p = write(tmp_path / "dev_feedback.json", json.dumps([row]))
    assert str(error_of(fgrlhf_source, p)) == (f"{p}, row 1, field 'preference': expected a list of 6 integers "
                                               "(1v2, 1v3, 1v4, 2v3, 2v4, 3v4), got [1, 2, 0]")


def test_gsm8k_reference_without_final_answer(tmp_path):
    p = jsonl(tmp_path / "train.jsonl", [{"question": "q", "answer": "1 + 1 = 2\n#### 2"},
                                         {"question": "q2", "answer": "no final line"}])
    assert str(error_of(read_gsm8k_problems, p)) == (f"{p}, row 2, field 'answer': no '#### <final answer>' line in "
                                                     "the reference solution")


def test_unknown_file_suffix(tmp_path):
    p = write(tmp_path / "c.parquet", "x")
    assert str(error_of(read_rows, p)) == (f"{p}: cannot tell the file type from its name; use one of .jsonl, .json, "
                                           ".csv (optionally + .gz)")


def test_unknown_format_names_are_config_errors():
    with pytest.raises(ConfigError) as info:
        load_claimset("parquet", "x.parquet")
    assert str(info.value).startswith("key 'format': unknown data format 'parquet'; known: auto, builtin, claims, "
                                      "pairs, trl, icm_truthfulqa,")
    with pytest.raises(ConfigError) as info:
        load_preferences("x.jsonl", format="ultrafeedback")
    assert str(info.value) == ("key 'format': unknown preference format 'ultrafeedback'; known: auto, trl, hh_rlhf, "
                               "icm_alpaca, icm_truthfulqa_preference, fgrlhf")


def test_field_mapping_to_an_unknown_field_is_a_config_error(tmp_path):
    p = jsonl(tmp_path / "c.jsonl", [{"sentence": "ok"}])
    with pytest.raises(ConfigError) as info:
        load_claimset("claims", str(p), fields={"sentence": "txt"})
    assert str(info.value) == ("key 'fields': 'sentence: txt' names none of our fields; known: id, text, statement, "
                               "question, answer, solution, group, key, label")
