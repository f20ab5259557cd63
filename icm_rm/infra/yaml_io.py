"""Reading YAML configs and flag values safely: YAML 1.2 scalars, no duplicate keys (the later one would silently
drop the earlier block), no anchors/aliases (expansion bombs), bounded nesting, integers within Python's digit
limit, and the config file itself checked (`check_input_file`: a regular file of at most 1 MiB)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, UserError
from .files import MAX_CONFIG_BYTES, check_input_file

MAX_YAML_DEPTH = 32


class UnsafeYAML(ValueError):
    """YAML that parses but that icm-rm refuses to build: an alias, too deep, a duplicate key, a huge integer."""

    def __init__(self, problem: str, mark: Any = None):
        self.problem, self.mark = problem, mark
        super().__init__(problem)

    def located(self) -> str:
        """The problem, after its line and column when known."""
        return f"line {self.mark.line + 1}, column {self.mark.column + 1}: {self.problem}" if self.mark is not None \
            else self.problem


class _Loader(yaml.SafeLoader):
    """YAML 1.2 scalars: `1e-4` is a float and only true/false are booleans (YAML 1.1 reads `1e-4` as a string
    and `no`/`on` as booleans). Mappings refuse a repeated key."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise UnsafeYAML(f"duplicate key '{key}' (first at line {seen[key]}); the later value would "
                                     "silently replace the earlier one — merge them", key_node.start_mark)
            except TypeError:
                raise UnsafeYAML("a mapping key must be a plain value", key_node.start_mark) from None
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # int() past Python's digit limit (4300)
            raise UnsafeYAML(f"an integer of {len(node.value)} digits is too large", node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


_Loader.yaml_implicit_resolvers = {k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _check_events(text: str) -> None:
    """Walk the parser's events (iterative, unlike the composer): refuse anchors/aliases and deep nesting before
    anything is built from them."""
    depth = 0
    for ev in yaml.parse(text, Loader=_Loader):
        if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None):
            raise UnsafeYAML("YAML anchors and aliases (&name / *name) are not allowed in icm-rm configs; write "
                             "the values out", ev.start_mark)
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise UnsafeYAML(f"nested more than {MAX_YAML_DEPTH} levels deep", ev.start_mark)
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def yaml_load(text: str) -> Any:
    """YAML text → Python values; yaml.YAMLError for bad syntax, UnsafeYAML for what icm-rm refuses to build."""
    _check_events(text)
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def load_yaml(path: str | Path) -> dict:
    """A config file → its top-level mapping; every problem is a ConfigError naming the file (and line)."""
    path = Path(path)
    try:
        check_input_file(path, max_bytes=MAX_CONFIG_BYTES)
    except UserError as e:
        raise ConfigError(None, str(e).removeprefix(f"{path}: ").replace("file not found", "config file not found"),
                          path) from None
    try:
        data = yaml_load(path.read_text(encoding="utf-8"))
    except UnsafeYAML as e:
        raise ConfigError(None, e.located(), path) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(None, f"invalid YAML{where}: {getattr(e, 'problem', None) or e}", path) from None
    except UnicodeDecodeError:
        raise ConfigError(None, "config file is not UTF-8 text", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(None, f"expected a mapping of config keys at the top level, got a "
                                f"{type(data).__name__}", path)
    return data
