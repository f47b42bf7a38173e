"""Strict YAML reading for configuration: duplicate keys and absurd nesting are errors, not surprises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from edge_classifier.errors import ConfigError

# A real configuration nests four levels at most; PyYAML's composer recurses per level and a few
# thousand levels would end in a RecursionError traceback instead of a message.
MAX_DEPTH = 64


class _TooDeep(yaml.YAMLError):
    def __init__(self, line: int):
        super().__init__(f"nests deeper than {MAX_DEPTH} levels")
        self.line = line


class _Duplicate(yaml.YAMLError):
    def __init__(self, key: str, first: int, second: int):
        super().__init__(f"{key} given twice")
        self.key, self.first, self.second = key, first, second


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently) and deep nesting."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._path: list[str] = []  # mapping keys above the node being composed, for the dotted key

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if len(self._path) >= MAX_DEPTH:
            event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
            raise _TooDeep(event.start_mark.line + 1)
        # A mapping's value is composed with its key node as index; keys and list items only nest.
        self._path.append(str(index.value) if isinstance(parent, MappingNode) and isinstance(index, ScalarNode) else "")
        try:
            return super().compose_node(parent, index)
        finally:
            self._path.pop()

    def compose_mapping_node(self, anchor: Any) -> MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue  # complex keys never name a setting; `<<` merges are meant to be overridden
            line = key.start_mark.line + 1
            if (key.tag, key.value) in seen:
                dotted = ".".join(p for p in [*self._path, key.value] if p)
                raise _Duplicate(dotted, seen[key.tag, key.value], line)
            seen[key.tag, key.value] = line
        return node


def parse_yaml(text: str, where: str, prefix: str = "") -> Any:
    """The YAML document in text; ConfigError naming `where` (a file, a --set) for what YAML or this loader refuses.

    Keys in the duplicate-key message are dotted and start with `prefix` (the key a --set value is for).
    """
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except _TooDeep as exc:
        raise ConfigError(f"{where} nests deeper than {MAX_DEPTH} levels (at line {exc.line})") from None
    except _Duplicate as exc:
        key = ".".join(p for p in (prefix, exc.key) if p)
        lines = f"line {exc.first}" if exc.first == exc.second else f"lines {exc.first} and {exc.second}"
        raise ConfigError(f"{key}: given twice in {where} ({lines}); say it once") from None
    except RecursionError:
        # Not expected past the depth limit above; kept so that no input ends in a traceback.
        raise ConfigError(f"{where} nests too deeply to be read") from None


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping at the top of a YAML config file (empty for an empty file); ConfigError for anything else."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    try:
        tree = parse_yaml(text, f"config file {path}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    tree = {} if tree is None else tree
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path}: expected a mapping of keys at the top level")
    return tree
