"""The one checker of input files every reader uses (a regular, readable file of a sane size — never a directory,
FIFO or device, whose read would hang or never end), bounded gunzip, and an iterative JSON depth limit."""

from __future__ import annotations

import json
import os
import re
import stat
import zlib
from pathlib import Path
from typing import Any

from .errors import InputError

MAX_INPUT_MB_ENV = "ICM_RM_MAX_INPUT_MB"
MAX_CONFIG_BYTES = 1 << 20  # a config or flag file: 1 MiB is far more than any real one
MAX_JSON_DEPTH = 64
_GZIP_MAGIC = b"\x1f\x8b"
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def max_input_bytes() -> int:
    """Largest data file (after gunzip) a reader loads: $ICM_RM_MAX_INPUT_MB MiB, default 4096."""
    try:
        return int(float(os.environ.get(MAX_INPUT_MB_ENV, "4096")) * 2**20)
    except ValueError:
        return 4096 * 2**20


def check_input_file(path: str | Path, *, max_bytes: int | None = None) -> Path:
    """`path` as a Path when it is a regular, readable file of at most `max_bytes` (default: `max_input_bytes()`);
    else an InputError naming it and what is wrong."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(p, None, None, "file not found") from None
    except OSError as e:
        raise InputError(p, None, None, f"cannot read file ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(p, None, None, "is a directory, not a file")
    for test, kind in _KINDS:
        if test(st.st_mode):
            raise InputError(p, None, None, f"is {kind}, not a regular file; save the data to a file first")
    if not os.access(p, os.R_OK):
        raise InputError(p, None, None, "cannot read file (permission denied)")
    limit = max_input_bytes() if max_bytes is None else max_bytes
    if st.st_size > limit:
        raise InputError(p, None, None, f"is {_size(st.st_size)}, more than the {_size(limit)} allowed"
                                        f"{' (raise $' + MAX_INPUT_MB_ENV + ')' if max_bytes is None else ''}")
    return p


def read_input_bytes(path: str | Path, *, max_bytes: int | None = None) -> bytes:
    """The checked file's bytes, gunzipped when they start with the gzip magic (bounded: a gzip bomb is refused)."""
    p = check_input_file(path, max_bytes=max_bytes)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(p, None, None, f"cannot read file ({e.strerror or e})") from None
    if data[:2] == _GZIP_MAGIC:
        return _gunzip(p, data, max_input_bytes() if max_bytes is None else max_bytes)
    if p.name.lower().endswith(".gz"):
        raise InputError(p, None, None, "not gzip data although the name ends in .gz")
    return data


def _gunzip(path: Path, data: bytes, limit: int) -> bytes:
    out, pos = [], 0
    try:
        while pos < len(data):  # concatenated gzip members, as gzip.decompress reads them
            d = zlib.decompressobj(wbits=31)
            chunk = d.decompress(data[pos:], limit + 1 - sum(map(len, out)))
            out.append(chunk)
            if sum(map(len, out)) > limit:
                raise InputError(path, None, None, f"decompresses to more than the {_size(limit)} allowed")
            if not d.eof:
                raise InputError(path, None, None, "truncated gzip file (compressed data ends early)")
            rest = d.unused_data.lstrip(b"\0")
            if rest and rest[:2] != _GZIP_MAGIC:
                break  # trailing garbage after the last member is ignored, as gzip does
            pos = len(data) - len(rest)
    except zlib.error as e:
        raise InputError(path, None, None, f"corrupt gzip data ({e})") from None
    return b"".join(out)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


# ----------------------------------------------------------------------------------------------- JSON

_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


def json_depth(text: str) -> int:
    """Deepest nesting of arrays/objects in JSON text, counted iteratively (no recursion, strings skipped)."""
    depth = deepest = 0
    for m in _JSON_TOKENS.finditer(text):
        c = m.group()[0]
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def unreadable_json(e: Exception) -> str:
    """Why valid-looking JSON could not be read: nested past the recursion limit, or an integer past the digit limit."""
    if isinstance(e, RecursionError):
        return "JSON nested too deeply to read (thousands of levels)"
    return f"unreadable JSON value ({str(e).split(';')[0]})"


def loads_json(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads after an iterative depth check: ValueError (not RecursionError or a crash) for text nested deeper
    than `max_depth`, integers past Python's digit limit, or invalid JSON."""
    depth = json_depth(text)
    if depth > max_depth:
        raise ValueError(f"JSON nested {depth} levels deep (at most {max_depth} allowed)")
    return json.loads(text)
