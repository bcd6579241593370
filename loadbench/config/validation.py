"""Turn pydantic validation errors into one ConfigError naming the file, the field path and the fix.

Models raise ``invalid(problem, fix, field=...)`` for cross-field rules so the fix travels in
the error context instead of being parsed back out of a message.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from loadbench.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config model: unknown keys rejected, no string-to-number coercion, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def invalid(problem: str, fix: str, field: str = "") -> PydanticCustomError:
    return PydanticCustomError("loadbench", "{problem}", {"problem": problem, "fix": fix, "field": field})


def field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class whose fields live at ``loc`` (to list allowed keys for an unknown key)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _unwrap(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Find the first BaseModel inside Optional[...] / list[...] / dict[..., ...] / Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is None:
        return annotation
    for arg in typing.get_args(annotation):
        found = _unwrap(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    if origin in (types.UnionType, typing.Union):
        return None
    return None


def _describe(err: Any, model: type[BaseModel]) -> tuple[str, str, str]:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "loadbench":
        field = field_path(loc + ((ctx["field"],) if ctx.get("field") else ()))
        return field, ctx["problem"], ctx["fix"]
    field = field_path(loc)
    got = err.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        if parent is None:
            return field, f"unknown key {loc[-1]!r}", "see the documented schema"
        close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return (
            field,
            f"unknown key {loc[-1]!r}",
            f"{hint}allowed keys here: {', '.join(sorted(parent.model_fields))}",
        )
    if kind == "missing":
        return field, "required field is missing", f"add `{loc[-1]}:`"
    if kind == "literal_error":
        return field, f"{got!r} is not allowed", f"allowed values: {ctx.get('expected')}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[
            kind
        ]
        bound = next(iter(ctx.values()), "?")
        return field, f"{got!r} is out of range", f"must be {op} {bound}"
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "model_type":
        expected = _INSTANCE_OF.sub("", err["msg"].removeprefix("Input should be "))
        expected = expected.replace("a valid dictionary", "a mapping of key: value")
        fix = f"expected {expected}"
        if isinstance(got, str) and _is_number(got):
            fix += "; remove the quotes around the number"
        return field, f"wrong type: got {type(got).__name__} {got!r}", fix
    return field, err["msg"], "see the documented schema for this field"


_INSTANCE_OF = re.compile(r" or instance of \w+")  # pydantic names the model class: not the user's concern


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def validate(model: type[M], data: Any, path: str, prefix: str = "") -> M:
    """Validate ``data`` as ``model``; the first error becomes a ConfigError (others are appended).

    ``prefix`` is where ``data`` sits in its file (``virtual_models[0].cache``), so the field named
    in the error is the one the user sees in the file."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        described = [_describe(e, model) for e in errors[:4]]
        if prefix:
            described = [(_joined(prefix, f), p, x) for f, p, x in described]
        field, problem, fix = described[0]
        if len(described) > 1:
            rest = "; ".join(f"{d[0]}: {d[1]}" for d in described[1:])
            fix = f"{fix}. Also: {rest}"
        raise ConfigError(path, field, problem, fix) from None


def _joined(prefix: str, field: str) -> str:
    if field == "(top level)":
        return prefix
    return prefix + field if field.startswith("[") else f"{prefix}.{field}"



__all__ = ["StrictModel", "field_path", "invalid", "validate"]
