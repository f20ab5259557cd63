"""The value vocabulary of config fields: every number finite (unless a field says otherwise) and within the range
declared next to it (`cfg_field(..., gt=0)`), every integer within int64, and the ranges of the TRL/transformers
fields that pass through `trainer:` / `trl:` mappings — checked where a config is read, naming the key and the fix."""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

INT_LIMIT = 2**63 - 1


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ge/gt below, le/lt above (None = open)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def problem(self, x: float) -> str | None:
        """Why `x` is out of range (None when it is in)."""
        ok = ((self.ge is None or x >= self.ge) and (self.gt is None or x > self.gt)
              and (self.le is None or x <= self.le) and (self.lt is None or x < self.lt))
        return None if ok else f"must be {self.describe()}, got {x!r}"

    def describe(self) -> str:
        """"> 0", "≥ 1", or an interval "in [0, 1)" when bounded on both sides."""
        low, high = (self.ge, "[") if self.ge is not None else (self.gt, "("), \
            (self.le, "]") if self.le is not None else (self.lt, ")")
        if low[0] is not None and high[0] is not None:
            return f"in {low[1]}{_num(low[0])}, {_num(high[0])}{high[1]}"
        if low[0] is not None:
            return f"{'≥' if low[1] == '[' else '>'} {_num(low[0])}"
        return f"{'≤' if high[1] == ']' else '<'} {_num(high[0])}"


def _num(b: float) -> str:
    return str(int(b)) if float(b).is_integer() else str(b)


def check_number(key: str, value: Any, rng: Range | None = None, *, finite: bool = True, default: Any = None) -> None:
    """Refuse a non-finite float (unless `finite` is False), an int past int64, or a value outside `rng`; the
    message names `key` and, when there is one, the default as a known-good value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    hint = f" (the default is {default!r})" if isinstance(default, (int, float)) and not isinstance(default, bool) \
        else ""
    if isinstance(value, int) and abs(value) > INT_LIMIT:
        raise ConfigError(key, f"integer too large ({len(str(abs(value)))} digits){hint}")
    if isinstance(value, float) and not math.isfinite(value):
        if finite:
            raise ConfigError(key, f"must be a finite number, got {value}{hint}")
        return
    problem = rng.problem(value) if rng is not None else None
    if problem:
        raise ConfigError(key, problem + hint)


def check_tree(key: str, value: Any) -> None:
    """Every number inside a list/mapping value finite and within int64 (pass-through blocks, reward specs)."""
    stack = [(key, value)]
    while stack:
        k, v = stack.pop()
        if isinstance(v, Mapping):
            stack.extend((f"{k}.{kk}", vv) for kk, vv in v.items())
        elif isinstance(v, (list, tuple)):
            stack.extend((f"{k}[{i}]", vv) for i, vv in enumerate(v))
        else:
            check_number(k, v)


# TRL / transformers fields that pass through `trainer:` (RewardConfig) and `trl:` (GRPOConfig): what torch or the
# trainer would reject later (or silently misuse: epochs −1 trains nothing), refused when the config is read.
_POS, _POS_INT, _NONNEG, _UNIT, _UNIT_OPEN = Range(gt=0), Range(ge=1), Range(ge=0), Range(ge=0, le=1), Range(ge=0, lt=1)
PASS_THROUGH_RANGES: dict[str, Range] = {
    "learning_rate": _POS, "num_train_epochs": _POS, "per_device_train_batch_size": _POS_INT,
    "per_device_eval_batch_size": _POS_INT, "gradient_accumulation_steps": _POS_INT, "max_grad_norm": _POS,
    "weight_decay": _NONNEG, "warmup_ratio": _UNIT, "warmup_steps": _NONNEG, "adam_beta1": _UNIT_OPEN,
    "adam_beta2": _UNIT_OPEN, "adam_epsilon": _POS, "logging_steps": _POS, "save_steps": _POS, "eval_steps": _POS,
    "save_total_limit": _POS_INT, "temperature": _POS, "top_p": Range(gt=0, le=1), "epsilon": _POS,
    "epsilon_high": _POS, "beta": _NONNEG, "num_iterations": _POS_INT, "max_completion_length": _POS_INT,
    "max_prompt_length": _POS_INT, "num_generations": Range(ge=2), "generation_batch_size": _POS_INT,
    "steps_per_generation": _POS_INT, "dataloader_num_workers": _NONNEG, "label_smoothing_factor": _UNIT_OPEN,
    "max_length": _POS_INT, "center_rewards_coefficient": _NONNEG, "repetition_penalty": _POS,
}


def check_pass_through(prefix: str, block: Mapping[str, Any]) -> None:
    """Ranges of known TRL fields in a pass-through block (`max_steps` is −1 = off, or ≥ 1)."""
    for key, value in block.items():
        if key == "max_steps" and isinstance(value, int) and not isinstance(value, bool) and value != -1:
            check_number(f"{prefix}.{key}", value, Range(ge=1))
        elif key in PASS_THROUGH_RANGES and value is not None:
            check_number(f"{prefix}.{key}", value, PASS_THROUGH_RANGES[key])


def coerce_pass_through(prefix: str, block: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Read a pass-through block's values by the TRL/transformers dataclass `fields`' types: numeric strings → float
    for float fields, yes/no/on/off → bool for bool fields (icm-rm reads YAML 1.2, where those stay strings); a value
    an int or bool field cannot take, and an unknown `report_to` integration, refused now (TRL would fail late, or
    take "maybe" as true)."""
    out = dict(block)
    for key, value in block.items():
        tp = fields[key].type
        args = typing.get_args(tp)
        if isinstance(value, str) and (tp is bool or (bool in args and str not in args)):
            flag = {"yes": True, "on": True, "true": True, "no": False, "off": False, "false": False}.get(value.lower())
            if flag is None:
                raise ConfigError(f"{prefix}.{key}", f"expected true/false, got {value!r}")
            out[key] = flag
            continue
        if isinstance(value, str) and (tp is float or float in args):
            try:
                out[key] = float(value)
            except ValueError:
                if tp is float:
                    raise ConfigError(f"{prefix}.{key}", f"expected a number, got {value!r}") from None
        if isinstance(value, str) and (choices := _help_choices(fields[key])) and value not in choices:
            raise ConfigError(f"{prefix}.{key}", f"expected one of {', '.join(choices)}, got {value!r}")
        integer = tp is int or (int in args and not {str, float} & set(args))
        if integer and value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{prefix}.{key}", f"expected an integer, got {value!r}")
    _check_report_to(prefix, out.get("report_to"))
    return out


def _help_choices(field: Any) -> tuple[str, ...]:
    """The values a TRL field's help lists ("Supported values are 'grpo', 'dr_grpo', … and 'vespo'."), which TRL
    itself checks only at the first training step; none when the help lists none."""
    m = re.search(r"Supported values are (.*?)\.(?:\s|$)", (getattr(field, "metadata", None) or {}).get("help", ""))
    return tuple(re.findall(r"'([^']+)'", m.group(1))) if m else ()


def _check_report_to(prefix: str, value: Any) -> None:
    """`report_to`: names transformers knows (it checks them only once the trainer is built)."""
    if value is None:
        return
    from transformers.integrations import INTEGRATION_TO_CALLBACK

    for name in [value] if isinstance(value, str) else value:
        if name not in (*INTEGRATION_TO_CALLBACK, "all", "none"):
            raise ConfigError(f"{prefix}.report_to", f"unknown integration {name!r}; known: none, all, "
                                                     f"{', '.join(INTEGRATION_TO_CALLBACK)}")
