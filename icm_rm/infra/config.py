"""YAML configs ↔ dataclasses: every field has a default and a one-line `help`; command-line flags override fields.

`parse_config(Cls, argv)` reads `--config FILE.yaml`, then `--field value` flags (and `--dictfield.key value` for
dict-valued pass-through fields), validates types, and returns a `Cls`. Errors name the file and key (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError
from .io import atomic_write_text
from .values import Range, check_number, check_tree
from .yaml_io import UnsafeYAML, load_yaml, yaml_load

__all__ = ["cfg_field", "from_dict", "load_config", "load_yaml", "parse_config", "save_config", "dump_yaml",
           "to_dict", "yaml_load"]

T = TypeVar("T")

_MISSING = dataclasses.MISSING


def cfg_field(default: Any = _MISSING, help: str = "", *, default_factory: Any = _MISSING,
              choices: Sequence | None = None, ge: float | None = None, gt: float | None = None,
              le: float | None = None, lt: float | None = None, finite: bool = True, resume_safe: bool = False):
    """A dataclass field whose one-line `help` feeds `--help`, the YAML comments and the docs.

    choices / ge / gt / le / lt: the values a config may give (checked where configs are read, naming the key);
    finite=False lets a float be ±inf (every float is finite otherwise); resume_safe: may differ between a run and
    its resume (output/run control: resume, overwrite, logging), so it is left out of the resume fingerprint."""
    meta: dict[str, Any] = {"help": help, "finite": finite, "resume_safe": resume_safe}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if any(b is not None for b in (ge, gt, le, lt)):
        meta["range"] = Range(ge=ge, gt=gt, le=le, lt=lt)
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# ----------------------------------------------------------------------------------------------- type checking

def _coerce(value: Any, tp: Any, key: str, path: str | Path | None) -> Any:
    """Check `value` against annotation `tp`; allow int→float and str→Path-like str. Raise ConfigError otherwise."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, path)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(key, f"expected {_type_name(tp)}, got {value!r}", path)
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(key, f"expected one of {list(args)}, got {value!r}", path)
    if origin in (list, Sequence, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {value!r}", path)
        inner = args[0] if args else Any
        return [_coerce(v, inner, f"{key}[{i}]", path) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping, got {value!r}", path)
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true/false, got {value!r}", path)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected an integer, got {value!r}", path)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value) if abs(value) <= 2**1023 else value  # a huge int stays one: _check_value names it
        raise ConfigError(key, f"expected a number, got {value!r}", path)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(key, f"expected a string, got {value!r}", path)
    return value


def _type_name(tp: Any) -> str:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None)) + (" or null" if type(None) in args else "")
    if typing.get_origin(tp) is typing.Literal:  # its values, not "Literal": `bool or 'force'`
        return " or ".join(repr(a) for a in args)
    return getattr(tp, "__name__", str(tp))


def _check_value(key: str, value: Any, f: dataclasses.Field, path: str | Path | None) -> None:
    """The field's declared choices and range; every number finite (unless finite=False) and within int64."""
    meta = f.metadata
    default = f.default if f.default is not _MISSING else None
    try:
        for item in (value if isinstance(value, list) else [value]) if "choices" in meta else []:
            if item is not None and item not in meta["choices"]:
                raise ConfigError(key, f"expected one of {list(meta['choices'])}, got {item!r}")
        if isinstance(value, (list, dict)):
            check_tree(key, value)
        else:
            check_number(key, value, meta.get("range"), finite=meta.get("finite", True), default=default)
    except ConfigError as e:
        raise ConfigError(e.key, e.message, path) from None


def field_problems(cfg: Any, prefix: str = "") -> list[str]:
    """Fields of a config object (nested ones too) whose current value breaks its declared rules — for tests that
    every default is valid."""
    out = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out += field_problems(value, f"{prefix}{f.name}.")
            continue
        try:
            _check_value(prefix + f.name, value, f, None)
        except ConfigError as e:
            out.append(str(e))
    return out


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type[T], data: dict, path: str | Path | None = None) -> T:
    """Build `cls` from a mapping; unknown keys and wrong types raise ConfigError naming the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(None, f"expected a mapping of config keys at the top level, got {type(data).__name__}", path)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = _hints(cls)
    kwargs = {}
    for k, v in data.items():
        if k not in fields:
            close = difflib.get_close_matches(str(k), fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(str(k), f"unknown key for {cls.__name__}{hint}", path)
        tp = hints[k]
        if dataclasses.is_dataclass(tp) and isinstance(v, dict):
            try:
                kwargs[k] = from_dict(tp, v, path)
            except ConfigError as e:  # name the nested key in full: search.alphaa, not alphaa
                if e.key is None or e.key.startswith(f"{k}."):
                    raise
                raise ConfigError(f"{k}.{e.key}", e.message, e.path) from None
        else:
            kwargs[k] = _coerce(v, tp, k, path)
            _check_value(k, kwargs[k], fields[k], path)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        if e.path is None and path is not None:
            raise ConfigError(e.key, e.message, path) from None
        raise


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict | None = None) -> T:
    data = load_yaml(path) if path else {}
    if overrides:
        data = {**data, **_merge_dotted(data, overrides)}
    return from_dict(cls, data, path)


def _merge_dotted(base: dict, overrides: dict) -> dict:
    out: dict = {}
    for k, v in overrides.items():
        if "." in k:
            head, rest = k.split(".", 1)
            sub = out.get(head, base.get(head) or {})
            if not isinstance(sub, dict):  # `--trainer abc --trainer.lr 1e-4`, or `trainer: 5` in the YAML
                raise ConfigError(head, f"expected a mapping, got {sub!r}; --{k} sets one key of it")
            sub = dict(sub)
            sub.update(_merge_dotted(sub, {rest: v}))
            out[head] = sub
        else:
            out[k] = v
    return out


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Any, header: str | None = None) -> str:
    """YAML of a config with each field's `help` as a comment above it."""
    lines = [f"# {line}" for line in (header or "").splitlines()]
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        help_ = f.metadata.get("help")
        if help_:
            lines.append(f"# {help_}")
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        dumped = yaml.safe_dump({f.name: value}, sort_keys=False, allow_unicode=True, width=120).rstrip()
        lines.append(dumped)
    return "\n".join(lines) + "\n"


def save_config(cfg: Any, path: str | Path) -> None:
    atomic_write_text(path, dump_yaml(cfg))


# ----------------------------------------------------------------------------------------------- command line

def _parse_cli_value(text: str, key: str) -> Any:
    """A flag's value read as YAML (so `3`, `0.5`, `true`, `[1, 2]`, `null` work), falling back to the raw string;
    what YAML refuses to build (an alias, deep nesting, a huge integer) is a ConfigError naming the flag."""
    try:
        return yaml_load(text)
    except UnsafeYAML as e:
        raise ConfigError(key, f"flag value refused: {e.problem}") from None
    except yaml.YAMLError:
        return text


def build_parser(cls: type, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """`--config` plus one `--field` flag per dataclass field, with the field's help."""
    parser = argparse.ArgumentParser(prog=prog, description=description or (cls.__doc__ or "").strip().splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter, exit_on_error=False)
    parser.add_argument("--config", help="YAML file of fields; flags below override it", default=None)
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        # argparse %-formats help text: a literal % in a field's help ("> 15% of pairs") would crash --help
        help_ = f.metadata.get("help", "").replace("%", "%%")
        kw: dict[str, Any] = {"help": f"{help_} [{_type_name(hints[f.name])}]",
                              "default": argparse.SUPPRESS, "dest": f.name, "metavar": "V"}
        if "choices" in f.metadata:
            kw["help"] += f" choices: {', '.join(map(str, f.metadata['choices']))}"
        if _is_list_field(cls, f.name):
            kw["action"] = "append"
            kw["help"] += " (repeat the flag, or give a YAML list)"
        parser.add_argument(f"--{f.name}", **kw)
    return parser


def parse_config(cls: type[T], argv: Sequence[str] | None = None, prog: str | None = None,
                 extra_args: typing.Callable[[argparse.ArgumentParser], None] | None = None) -> tuple[T, argparse.Namespace]:
    """Parse `--config` + `--field value` flags into `cls`. Unknown `--dict.key value` flags set dict fields.

    Returns the config and the namespace (for extra non-config flags added by `extra_args`).
    """
    parser = build_parser(cls, prog=prog)
    if extra_args:
        extra_args(parser)
    try:
        ns, rest = parser.parse_known_args(_glue_negative_values(list(sys.argv[1:] if argv is None else argv)))
    except argparse.ArgumentError as e:  # e.g. a flag without its value: one line naming it, not argparse's usage
        key = (e.argument_name or "").split("/")[0].lstrip("-") or None
        raise ConfigError(key, f"{e.message}; give it as --{key} VALUE" if key else e.message) from None
    field_names = {f.name for f in dataclasses.fields(cls)}
    overrides: dict[str, Any] = {}
    for name in field_names:
        if name not in vars(ns):
            continue
        raw = getattr(ns, name)
        if _is_list_field(cls, name):
            values = [_parse_cli_value(v, name) for v in raw]
            whole = len(values) == 1 and (values[0] is None or isinstance(values[0], list))
            overrides[name] = values[0] if whole else [x for v in values for x in (v if isinstance(v, list) else [v])]
        elif _is_scalar_str_field(cls, name):
            overrides[name] = raw
        else:
            overrides[name] = _parse_cli_value(raw, name)
    i = 0
    while i < len(rest):
        tok = rest[i]
        if tok.startswith("--") and "." in tok and tok[2:].split(".", 1)[0] in field_names:
            key = tok[2:]
            if "=" in key:
                key, val = key.split("=", 1)
                i += 1
            else:
                if i + 1 >= len(rest):
                    raise ConfigError(key, f"flag {tok} needs a value")
                val = rest[i + 1]
                i += 2
            overrides[key] = _parse_cli_value(val, key)
        else:
            name = tok[2:].split("=", 1)[0] if tok.startswith("--") else tok
            close = difflib.get_close_matches(name, sorted(field_names), n=1)
            hint = f" (did you mean --{close[0]}?)" if close else ""
            raise ConfigError(name, f"unknown option '{tok}' for {prog or cls.__name__}{hint}")
    cfg = load_config(cls, ns.config, overrides)
    return cfg, ns


_NEGATIVE_VALUE = re.compile(r"^-(\d|\.\d|\.?inf$|\.?nan$)", re.IGNORECASE)


def _glue_negative_values(argv: list[str]) -> list[str]:
    """`--lr -3e-6` → `--lr=-3e-6`: argparse takes a value like -3e-6 or -.5 for an option and fails; a negative
    value must reach the field's range check, which names the key."""
    out: list[str] = []
    for tok in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_VALUE.match(tok):
            out[-1] = f"{out[-1]}={tok}"
        else:
            out.append(tok)
    return out


def _is_list_field(cls: type, name: str) -> bool:
    """A `list[...]` field, or an optional one (`list[int] | None`): its flag may repeat."""
    tp = _hints(cls)[name]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next((a for a in typing.get_args(tp) if a is not type(None)), tp)
    return tp is list or typing.get_origin(tp) is list


def _is_scalar_str_field(cls: type, name: str) -> bool:
    """String fields keep the flag text verbatim (so `--model 1e5` stays a string); others are read as YAML."""
    tp = _hints(cls)[name]
    args = typing.get_args(tp)
    return tp is str or (typing.get_origin(tp) in (typing.Union, types.UnionType) and str in args and len(args) <= 2)
