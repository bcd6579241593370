"""Dataset files: JSONL, one request per line, read once at config time.

Each line is a JSON object with either ``"messages": [{"role": ..., "content": ...}, ...]`` or
``"prompt": "..."``, and optionally ``"max_tokens": N`` (>= 1) and ``"metadata": {str: str}``.
Blank lines are skipped. Every error names the file and the 1-based line number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadbench.errors import ConfigError

_ROLES = frozenset({"system", "user", "assistant", "developer", "tool"})
_KEYS = frozenset({"messages", "prompt", "max_tokens", "metadata"})
_EXAMPLE = (
    'each line must be one JSON object like {"prompt": "..."} '
    'or {"messages": [{"role": "user", "content": "..."}]}'
)


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    messages: tuple[tuple[str, str], ...] | None  # (role, content) pairs
    prompt: str | None
    max_tokens: int | None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def word_count(self) -> int:
        if self.prompt is not None:
            return len(self.prompt.split())
        return sum(len(content.split()) for _, content in self.messages or ())


def parse_record(line: str, path: str, line_no: int) -> DatasetRecord:
    where = f"line {line_no}"

    def fail(field_name: str, problem: str, fix: str = _EXAMPLE) -> ConfigError:
        return ConfigError(path, f"{where}{'.' + field_name if field_name else ''}", problem, fix)

    try:
        obj: Any = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise fail("", f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise fail("", f"a JSON {type(obj).__name__}, not an object")
    unknown = sorted(set(obj) - _KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key {unknown[0]!r}", f"allowed keys: {', '.join(sorted(_KEYS))}")
    has_messages, has_prompt = "messages" in obj, "prompt" in obj
    if has_messages == has_prompt:
        raise fail("", "needs exactly one of 'messages' or 'prompt'")
    messages: tuple[tuple[str, str], ...] | None = None
    prompt: str | None = None
    if has_prompt:
        prompt = obj["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise fail("prompt", "must be a non-empty string")
    else:
        raw = obj["messages"]
        if not isinstance(raw, list) or not raw:
            raise fail("messages", "must be a non-empty list of {role, content}")
        pairs = []
        for i, msg in enumerate(raw):
            if not isinstance(msg, dict) or set(msg) != {"role", "content"}:
                raise fail(f"messages[{i}]", "must be an object with exactly 'role' and 'content'")
            role, content = msg["role"], msg["content"]
            if role not in _ROLES:
                raise fail(
                    f"messages[{i}].role", f"{role!r} is not a role", f"allowed: {', '.join(sorted(_ROLES))}"
                )
            if not isinstance(content, str):
                raise fail(f"messages[{i}].content", "must be a string")
            pairs.append((role, content))
        messages = tuple(pairs)
    max_tokens = obj.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise fail(
            "max_tokens", f"{max_tokens!r} is not a positive integer", "use an integer >= 1 or omit it"
        )
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise fail("metadata", "must be an object of string values")
    return DatasetRecord(messages=messages, prompt=prompt, max_tokens=max_tokens, metadata=metadata)


def read_dataset(path: Path) -> tuple[DatasetRecord, ...]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            name, "(file)", "dataset file not found", "check dataset.path (relative to the scenario file)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(name, "(file)", f"cannot read dataset: {exc}", "use a UTF-8 JSONL file") from None
    records = tuple(
        parse_record(line, name, i) for i, line in enumerate(text.splitlines(), start=1) if line.strip()
    )
    if not records:
        raise ConfigError(name, "(file)", "dataset has no records", _EXAMPLE)
    return records
