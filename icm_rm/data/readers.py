"""Generic file readers: JSONL, JSON and CSV (each optionally gzip-compressed) → validated `Row`s.

Every problem becomes an `InputError` naming the file, the 1-based row and the field, never a traceback from json,
csv or gzip. Row numbers: JSONL = the physical line number; JSON = the element's index + 1; CSV = the data row
number (the header is row 0), and an empty CSV cell means the field is not given. A field mapping renames the
user's columns to ours; errors name the user's column.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..infra.errors import InputError
from ..infra.files import read_input_bytes, unreadable_json

FILE_FORMATS = ("jsonl", "json", "csv")
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_TRUE_WORDS = {"true", "1", "yes"}
_FALSE_WORDS = {"false", "0", "no"}


@dataclass(frozen=True)
class Row:
    """One record of an input file with typed, validating accessors whose errors name file, row and field."""

    path: str
    number: int
    data: Mapping[str, Any]
    renamed: Mapping[str, str] = field(default_factory=dict)  # our field name → the user's column name

    def name(self, key: str) -> str:
        """The field's name as it appears in the file (for messages)."""
        return self.renamed.get(key, key)

    def error(self, key: str | None, message: str) -> InputError:
        return InputError(self.path, self.number, self.name(key) if key else None, message)

    def fields_said(self) -> str:
        """The row's field names, for a message about a missing one."""
        return ", ".join(sorted(map(str, self.data))) or "no fields"

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: str) -> Any:
        if key not in self.data:
            raise self.error(key, "missing field")
        return self.data[key]

    def text(self, key: str, *, allow_empty: bool = False) -> str:
        """A required string field; empty or whitespace-only text is an error unless allowed."""
        value = self.raw(key)
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_type_name(value)}")
        _check_decodable(self, key, value)
        if not allow_empty and not value.strip():
            raise self.error(key, "empty text")
        return value

    def content(self, key: str) -> str | list[dict]:
        """A prompt/response: a non-empty string or a list of {role, content} messages (TRL conversational)."""
        value = self.raw(key)
        if isinstance(value, str):
            return self.text(key)
        if isinstance(value, list):
            if not value:
                raise self.error(key, "empty message list")
            for i, m in enumerate(value):
                if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
                    raise self.error(key, f"message {i} must be an object with string 'role' and 'content'")
                _check_decodable(self, key, m["role"] + m["content"])
            if not any(m["content"].strip() for m in value):
                raise self.error(key, "empty text")
            return [dict(m) for m in value]
        raise self.error(key, f"expected a string or a list of messages, got {_type_name(value)}")

    def identifier(self, key: str) -> str:
        """An id field: a non-empty string or an integer."""
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.error(key, f"expected a string or integer id, got {_type_name(value)}")
        value = str(value).strip()
        if not value:
            raise self.error(key, "empty id")
        _check_decodable(self, key, value)
        return value

    def label(self, key: str) -> bool:
        """A gold label: true/false, 1/0 (and their CSV spellings)."""
        value = self.raw(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
            return value.strip().lower() in _TRUE_WORDS
        raise self.error(key, f"expected a boolean label (true/false or 1/0), got {value!r}")

    def numeric(self, key: str) -> float:
        """A finite number (CSV strings are parsed); NaN and ±inf are errors."""
        value = self.raw(key)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.error(key, f"expected a number, got {value!r}") from None
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"expected a number, got {_type_name(value)}")
        if not math.isfinite(value):
            raise self.error(key, f"expected a finite number, got {value}")
        return float(value)

    def optional(self, key: str, getter: str = "text") -> Any:
        """`getter` applied when the field is present and not null/empty-CSV-cell, else None."""
        if not self.has(key) or self.data[key] == "":
            return None
        return getattr(self, getter)(key)


def _check_decodable(row: Row, key: str, value: str) -> None:
    bad = _UNDECODABLE.search(value)
    if bad:
        byte = ord(bad.group()) - 0xDC00
        raise row.error(key, f"undecodable bytes (not UTF-8): byte 0x{byte:02x} at character {bad.start()}")


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", type(None): "null", bool: "a boolean", int: "an integer",
            float: "a number", str: "a string"}.get(type(value), type(value).__name__)


def detect_file_format(path: str | Path) -> str:
    """jsonl / json / csv from the name (a trailing .gz is ignored); unknown suffixes raise InputError."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for fmt in FILE_FORMATS:
        if name.endswith("." + fmt):
            return fmt
    raise InputError(path, None, None, f"cannot tell the file type from its name; use one of "
                                       f"{', '.join('.' + f for f in FILE_FORMATS)} (optionally + .gz)")


def read_text(path: str | Path) -> str:
    """The file's text: checked (`check_input_file`), gunzipped when compressed, UTF-8 (a leading BOM is dropped; bad
    bytes kept as surrogates)."""
    data = read_input_bytes(path)
    # bad bytes become lone surrogates, so the row and field holding them can be named when the field is read
    text = data.decode("utf-8-sig", errors="surrogateescape")
    if not text.strip():
        raise InputError(path, None, None, "file is empty")
    return text


def read_rows(path: str | Path, fields: Mapping[str, str] | None = None, file_format: str | None = None) -> list[Row]:
    """All records of a JSONL/JSON/CSV(.gz) file as `Row`s, with `fields` (user column → our name) applied."""
    fmt = file_format or detect_file_format(path)
    text = read_text(path)
    if fmt == "jsonl":
        records = _jsonl_records(path, text)
    elif fmt == "json":
        records = _json_records(path, text)
    elif fmt == "csv":
        records = _csv_records(path, text)
    else:
        raise InputError(path, None, None, f"unknown file type '{fmt}'; known: {', '.join(FILE_FORMATS)}")
    if not records:
        raise InputError(path, None, None, "no rows in file")
    return [_rename(Row(str(path), n, rec), fields) for n, rec in records]


def _rename(row: Row, fields: Mapping[str, str] | None) -> Row:
    if not fields:
        return row
    data = dict(row.data)
    renamed = {}
    for theirs, ours in fields.items():
        if theirs in data:
            data[ours] = data.pop(theirs)
        renamed[ours] = theirs
    return Row(row.path, row.number, data, renamed)


def _object(path: str | Path, number: int, value: Any) -> dict:
    if not isinstance(value, dict):
        raise InputError(path, number, None, f"expected a JSON object, got {_type_name(value)}")
    return value


def _jsonl_records(path: str | Path, text: str) -> list[tuple[int, dict]]:
    out = []
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 may sit in a string
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(path, number, None, f"invalid JSON at column {e.colno}: {_json_problem(e)}"
                                                 f"{' (truncated line?)' if _truncated(e, line) else ''}") from None
        except (ValueError, RecursionError) as e:
            raise InputError(path, number, None, unreadable_json(e)) from None
        out.append((number, _object(path, number, value)))
    return out


def _json_records(path: str | Path, text: str) -> list[tuple[int, dict]]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        index = _failing_element(text)
        raise InputError(path, index + 1 if index is not None else None, None,
                         f"invalid JSON at line {e.lineno}, column {e.colno}: {_json_problem(e)}"
                         f"{' (truncated file?)' if _truncated(e, text) else ''}") from None
    except (ValueError, RecursionError) as e:
        raise InputError(path, None, None, unreadable_json(e)) from None
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        value = value["data"]
    if not isinstance(value, list):
        raise InputError(path, None, None, f"expected a JSON list of objects or {{\"data\": [...]}}, "
                                           f"got {_type_name(value)}")
    return [(i + 1, _object(path, i + 1, v)) for i, v in enumerate(value)]


def _json_problem(e: json.JSONDecodeError) -> str:
    return e.msg.removesuffix(" starting at")  # json's "Unterminated string starting at" expects a position after


def _truncated(e: json.JSONDecodeError, text: str) -> bool:
    """Whether the parse failed because the text ends early (cut-off download, partial write)."""
    return e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string")


def _failing_element(text: str) -> int | None:
    """0-based index of the first element of a top-level JSON list that does not parse (None if not a list)."""
    decoder = json.JSONDecoder()
    stripped = text.lstrip()
    if not stripped.startswith("["):
        return None
    pos, index = len(text) - len(stripped) + 1, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return index
        try:
            _, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return index
        index += 1


def _csv_records(path: str | Path, text: str) -> list[tuple[int, dict]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        if len(set(header)) != len(header):
            dup = next(h for h in header if header.count(h) > 1)
            raise InputError(path, 0, dup, "duplicate column in the header")
        out = []
        for number, cells in enumerate(reader, start=1):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise InputError(path, number, None, f"has {len(cells)} cells but the header has {len(header)}")
            out.append((number, {h: c for h, c in zip(header, cells) if c != ""}))  # empty cell = field not given
    except csv.Error as e:
        raise InputError(path, reader.line_num, None, f"malformed CSV: {e}") from None
    return out
