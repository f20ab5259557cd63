"""Anthropic HH-RLHF (`chosen`/`rejected` full dialogues) → prompt + two final responses, losslessly.

The prompt is the shared dialogue up to and including its last "\\n\\nAssistant:" (multi-turn history kept
verbatim); each response is the rest, so `prompt + response` is the original text byte for byte. Some responses
contain turn markers themselves, so the split is taken from the longest common prefix, not from the last marker.
Rows whose two final responses are identical, or where one is empty (whitespace only: 8 rows in the test splits),
are skipped and counted as invalid, as every other format rejects empty text.
"""

from __future__ import annotations

from pathlib import Path

from ..infra.errors import InputError
from .pairs import LabeledPair, PairSource, place, split_transcripts
from .readers import read_rows

SUBSETS = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")


def hh_rlhf_files(path: str | Path) -> list[Path]:
    """The file itself, or every held-out `<subset>/test.jsonl(.gz)` under a directory (sorted; train is ignored)."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.glob("*/test.jsonl*") if p.name in ("test.jsonl", "test.jsonl.gz"))
    if not files:
        raise InputError(path, None, None, "no <subset>/test.jsonl(.gz) files in this directory")
    return files


def hh_rlhf_source(path: str | Path) -> PairSource:
    """One file, or a directory of subset folders → labeled pairs (subset = the folder, e.g. helpful-base)."""
    files = hh_rlhf_files(path)
    label = Path(path).name if Path(path).is_dir() else (_subset(files[0]) or Path(path).name)
    source = PairSource(name=f"hh_rlhf:{label}")
    for file in files:
        subset = _subset(file)
        prefix = f"{subset}:" if len(files) > 1 and subset else ""
        for row in read_rows(file, file_format="jsonl"):
            chosen, rejected = row.text("chosen"), row.text("rejected")
            split = split_transcripts(chosen, rejected)
            if split is None:
                raise row.error("chosen", "'chosen' and 'rejected' share no dialogue prefix ending in "
                                          "'\\n\\nAssistant:'")
            prompt, better, worse = split
            if better == worse or not better.strip() or not worse.strip():
                source.skipped_invalid += 1
                continue
            pair, a_better = place(f"{prefix}{row.number}", prompt, better, worse, {"row": row.number})
            source.pairs.append(LabeledPair(pair, a_better, subset=subset))
    return source


def _subset(file: Path) -> str | None:
    return file.parent.name if file.parent.name in SUBSETS else None
