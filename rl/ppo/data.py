"""Prompts for RL: read once, then served in a seeded order whose position is part of the checkpoint.

Sources (split into `train`/`test`, see `load_prompts`): a JSONL/JSON/CSV (.gz) file whose rows have `prompt` (a
string or a list of chat messages — TRL's preference and prompt-only formats both qualify; a TRL "implicit prompt"
preference row gives the dialogue prefix its `chosen` and `rejected` share, as the label stage reads it), or
`builtin:NAME` → `icm_rm.data.builtin.builtin_prompts(NAME, split)`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from icm_rm.data.builtin import builtin_prompts
from icm_rm.data.generic import trl_triple
from icm_rm.data.readers import Row, read_rows
from icm_rm.infra.errors import ConfigError

Prompt = str | list[dict]


SPLITS = ("train", "test", "all")
TEST_FRACTION = 0.3  # as the built-in tasks' subject split


def prompt_in_test_split(prompt: Prompt) -> bool:
    """A file's prompt belongs to `test` when a stable hash of its text falls in the first TEST_FRACTION, so the two
    splits never share a prompt and keep their members when the file grows."""
    key = json.dumps(prompt, sort_keys=True, ensure_ascii=False)
    h = hashlib.sha256(("prompt-split\x1f" + key).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < TEST_FRACTION


def load_prompts(spec: str, split: str = "train", max_prompts: int | None = None) -> list[Prompt]:
    """Distinct prompts of a split, in file order (a preference file repeats a prompt once per pair). Built-in tasks
    split by subject, files by a hash of each prompt (`prompt_in_test_split`); `all` keeps every prompt."""
    if split not in SPLITS:
        raise ConfigError("prompt_split", f"unknown split '{split}'; use one of {', '.join(SPLITS)}")
    if spec.startswith("builtin:"):
        prompts = list(builtin_prompts(spec.split(":", 1)[1], split))
    else:
        prompts = _read_file(Path(spec))
        if prompts and split != "all":
            prompts = [p for p in prompts if prompt_in_test_split(p) == (split == "test")]
            if not prompts:
                raise ConfigError("prompt_split", f"'{spec}' has no prompt in the {split} split (files split "
                                                  f"{1 - TEST_FRACTION:.0%}/{TEST_FRACTION:.0%} by a hash of each "
                                                  "prompt); add prompts or use prompt_split: all")
    seen, out = set(), []
    for p in prompts:
        key = json.dumps(p, sort_keys=True, ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            out.append(p)
        if max_prompts is not None and len(out) >= max_prompts:
            break
    if not out:
        raise ConfigError("prompts", f"'{spec}' holds no prompts")
    return out


def _read_file(path: Path) -> list[Prompt]:
    """Each row's prompt, read as the label stage reads its files: JSONL, JSON or CSV (optionally .gz)."""
    if not path.exists():
        raise ConfigError("prompts", f"{path}: file not found")
    return [_prompt_of(row) for row in read_rows(path)]


def _prompt_of(row: Row) -> Prompt:
    """The row's `prompt`, or a TRL preference row's implicit one (the dialogue prefix its two responses share)."""
    if row.has("prompt"):
        return row.content("prompt")
    if row.has("chosen") and row.has("rejected"):
        return trl_triple(row)[0]
    raise row.error("prompt", f"missing field (each row needs a `prompt`; this row has {row.fields_said()})")


class PromptStream:
    """Global batches of prompts in a per-epoch permutation seeded by (seed, epoch); identical on every process, each
    of which takes its slice. The position (epoch, offset) is checkpointed, so a resumed run sees the same prompts."""

    def __init__(self, prompts: list[Prompt], seed: int):
        self.prompts, self.seed = prompts, int(seed)
        self.epoch, self.offset = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        import torch

        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.prompts), generator=g).tolist()

    def next_batch(self, n: int) -> list[Prompt]:
        out = []
        while len(out) < n:
            if self.offset >= len(self._order):
                self.epoch, self.offset = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            take = self._order[self.offset:self.offset + n - len(out)]
            self.offset += len(take)
            out.extend(self.prompts[i] for i in take)
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])
        self._order = self._permutation(self.epoch)
