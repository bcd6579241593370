"""Reading YAML config files into plain data, with errors that name the file and the line, and the
one read of the process environment (``environment``): config/ is the only package that reads it.

PyYAML silently keeps the last of two duplicate keys; a config edge must not, so the loader
rejects them (a duplicated ``users:`` is almost always a mistake that would go unnoticed).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from loadbench.errors import ConfigError


class _StrictLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise ConfigError(
                loader.name,
                f"line {mark.line + 1}",
                f"duplicate key {key!r}",
                "each key may appear once per mapping; remove one of them",
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 (PyYAML) reads 1e12 or 5e-3 as strings: it wants a dot in the mantissa. YAML 1.2 and every
# reader of these files expect numbers; a string there would draw a misleading "remove the quotes".
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def parse_yaml(text: str, name: str) -> dict[str, Any]:
    """Parse one YAML document that must be a mapping (an empty document is an empty mapping)."""
    loader = _StrictLoader(text)
    loader.name = name
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
        problem = f"YAML syntax error: {exc.problem or exc.context}"
        raise ConfigError(name, where, problem, "fix the YAML syntax at that position") from None
    except yaml.YAMLError as exc:
        raise ConfigError(name, "(document)", f"YAML error: {exc}", "fix the YAML syntax") from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            name,
            "(document)",
            f"top level is a {type(data).__name__}",
            "the file must be a mapping of key: value",
        )
    return data


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "(file)", "file not found", "check the path") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            str(path), f"line {line}", f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x})",
            "save the file as UTF-8",
        ) from None
    except OSError as exc:
        raise ConfigError(
            str(path), "(file)", f"cannot read: {exc.strerror or exc}", "check the path and permissions"
        ) from None
    return parse_yaml(text, str(path))


def environment() -> dict[str, str]:
    """A copy of the process environment (the gateway's key variables are resolved from it)."""
    return dict(os.environ)
