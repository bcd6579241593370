"""The line of a field in a YAML config text, for errors that name file, line, field and fix; and
parsing + validating a YAML config with that line in its error."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from loadbench.config.source import parse_yaml
from loadbench.config.validation import validate
from loadbench.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def yaml_line(text: str, field: str) -> int | None:
    """1-based line of a dotted/indexed field path (``criteria[2].type``) in a YAML text."""
    try:
        node: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", field):
        if node is None:
            break
        if part.startswith("[") and isinstance(node, yaml.SequenceNode):
            i = int(part[1:-1])
            node = node.value[i] if i < len(node.value) else None
        elif isinstance(node, yaml.MappingNode):
            found = None
            for k, v in node.value:
                if getattr(k, "value", None) == part:
                    found, line = v, k.start_mark.line + 1
                    break
            node = found
        else:
            break
        if node is not None:
            line = node.start_mark.line + 1 if line is None else line
    return line


def with_line(exc: ConfigError, text: str) -> ConfigError:
    line = yaml_line(text, exc.field)
    if line is None:
        return exc
    return ConfigError(exc.path, f"line {line}: {exc.field}", exc.problem, exc.fix)


def parse_model(model: type[M], text: str, name: str) -> tuple[dict[str, Any], M]:
    """(the parsed mapping, the validated model) of a YAML text; a ConfigError names the failing line."""
    data = parse_yaml(text, name)
    try:
        return data, validate(model, data, name)
    except ConfigError as exc:
        raise with_line(exc, text) from None
