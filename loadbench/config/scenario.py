"""Scenario: *what* each request looks like (lengths, prompts, mix of request types, datasets).

A length is either an integer (fixed) or a distribution::

    prompt_tokens: 128
    output_tokens: {kind: lognormal, mean: 200, stdev: 80, clip_min: 16, clip_max: 1024}

kinds: ``fixed`` (value), ``uniform`` (min, max inclusive), ``normal`` / ``lognormal`` (mean,
stdev of the resulting lengths, not of their logarithm), ``exponential`` (mean). Every draw is
rounded and clipped to [clip_min, clip_max] (clip_min defaults to 1, so lengths are >= 1).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from loadbench.config.dataset import DatasetRecord
from loadbench.config.validation import StrictModel, invalid

LengthKind = Literal["fixed", "uniform", "normal", "lognormal", "exponential"]

_NEEDS: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "uniform": ("min", "max"),
    "normal": ("mean", "stdev"),
    "lognormal": ("mean", "stdev"),
    "exponential": ("mean",),
}
_PARAMS = ("value", "mean", "stdev", "min", "max")


class LengthDist(StrictModel):
    kind: LengthKind = "fixed"
    value: int | None = Field(default=None, ge=1)
    mean: float | None = Field(default=None, gt=0)
    stdev: float | None = Field(default=None, ge=0)
    min: int | None = Field(default=None, ge=1)
    max: int | None = Field(default=None, ge=1)
    clip_min: int = Field(default=1, ge=1)
    clip_max: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, int) and not isinstance(data, bool):
            return {"kind": "fixed", "value": data}
        return data

    @model_validator(mode="after")
    def _check(self) -> LengthDist:
        needs = _NEEDS[self.kind]
        for name in needs:
            if getattr(self, name) is None:
                raise invalid(f"kind {self.kind!r} needs {', '.join(needs)}", f"add `{name}:`", field=name)
        for name in _PARAMS:
            if name not in needs and getattr(self, name) is not None:
                hint = "use clip_min/clip_max to bound it" if name in ("min", "max") else "remove it"
                raise invalid(
                    f"{name!r} does not apply to kind {self.kind!r} (it uses {', '.join(needs)})",
                    hint,
                    field=name,
                )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise invalid(f"min {self.min} > max {self.max}", "min must be <= max", field="min")
        if self.clip_max is not None and self.clip_min > self.clip_max:
            raise invalid(
                f"clip_min {self.clip_min} > clip_max {self.clip_max}",
                "clip_min must be <= clip_max",
                field="clip_min",
            )
        return self

    @property
    def expected_mean(self) -> float:
        """Mean before clipping (used to size things and in tests)."""
        if self.kind == "fixed":
            return float(self.value or 0)
        if self.kind == "uniform":
            return ((self.min or 0) + (self.max or 0)) / 2
        return float(self.mean or 0)


def fixed(value: int) -> LengthDist:
    return LengthDist(kind="fixed", value=value)


class Sessions(StrictModel):
    """Multi-turn sessions (``loadbench.config.sessions``): synthetic turns, or conversations from a dataset."""

    turns: LengthDist = Field(default_factory=lambda: fixed(5))
    user_tokens: LengthDist = Field(default_factory=lambda: fixed(64))
    think_ms: LengthDist | None = None
    dataset: str | None = None
    mode: Literal["live", "replay"] = "live"
    session_header: str | None = "X-Session-Id"

    @model_validator(mode="after")
    def _check(self) -> Sessions:
        if self.mode == "replay" and self.dataset is None:
            raise invalid("replay mode sends recorded answers, and synthetic sessions have none",
                          "name a conversation `dataset:` or use mode: live", "mode")
        if self.session_header is not None and not self.session_header.strip():
            raise invalid("session_header is empty", "name a header (e.g. X-Session-Id) or write null",
                          "session_header")
        return self


class DatasetSpec(StrictModel):
    """A JSONL file of ``{"messages": [...]}`` or ``{"prompt": "..."}`` lines, optional ``max_tokens``."""

    path: str  # relative paths are relative to the scenario file
    order: Literal["sample", "replay"] = (
        "sample"  # sample: seeded random draws; replay: in file order, cycling
    )
    _records: tuple[DatasetRecord, ...] = PrivateAttr(default=())


class Sampling(StrictModel):
    """Sampling parameters copied into the request body when set."""

    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: list[str] | None = None


_RESERVED_BODY_KEYS = frozenset({"model", "messages", "prompt", "stream", "stream_options"})


class MixEntry(StrictModel):
    """One request type in a weighted mix; unset fields inherit the scenario-level value."""

    name: str = Field(min_length=1)
    weight: float = Field(gt=0)
    prompt_tokens: LengthDist | None = None
    output_tokens: LengthDist | None = None
    system_prompt: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    dataset: DatasetSpec | None = None
    prefix_tokens: int | None = Field(default=None, ge=0)
    prefix_groups: int | None = Field(default=None, ge=1)


class Scenario(StrictModel):
    name: str = "default"
    description: str = ""
    api: Literal["chat", "completions"] = "chat"
    prompt_tokens: LengthDist = Field(default_factory=lambda: fixed(128))
    output_tokens: LengthDist = Field(default_factory=lambda: fixed(64))
    system_prompt: str | None = None
    # shared prefixes: every prompt starts with one of `prefix_groups` seeded texts of `prefix_tokens`
    # words (counted inside prompt_tokens), so servers with prefix caching can reuse them.
    prefix_tokens: int = Field(default=0, ge=0)
    prefix_groups: int = Field(default=1, ge=1)
    nonce: bool = False  # one unique word per request defeats response caches (placed after the prefix)
    metadata: dict[str, str] = Field(default_factory=dict)
    dataset: DatasetSpec | None = None
    mix: list[MixEntry] | None = None
    sampling: Sampling = Field(default_factory=Sampling)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    sessions: Sessions | None = None  # multi-turn: each user (or arrival) runs whole sessions

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        if self.sessions is not None and (self.mix is not None or self.dataset is not None):
            raise invalid("sessions cannot be combined with mix or dataset",
                          "name the conversations under sessions.dataset", field="sessions")
        if self.sessions is not None and self.api != "chat":
            raise invalid("sessions need the chat API (a conversation is a list of messages)", "api: chat",
                          field="api")
        reserved = sorted(_RESERVED_BODY_KEYS.intersection(self.extra_body))
        if reserved:
            raise invalid(
                f"extra_body may not set {', '.join(reserved)}",
                "these are set by loadbench from the scenario, profile and CLI",
                field="extra_body",
            )
        if self.mix is not None:
            if not self.mix:
                raise invalid("mix is empty", "list at least one request type or remove `mix:`", field="mix")
            names = [m.name for m in self.mix]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise invalid(
                    f"duplicate mix names {dupes}", "give each mix entry a unique name", field="mix"
                )
        return self
