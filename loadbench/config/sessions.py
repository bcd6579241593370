"""Multi-turn sessions: the conversation datasets a scenario's ``sessions:`` block (``scenario.Sessions``) may name.

    sessions:
      turns: 5                        # synthetic: turns per session (a length distribution)
      user_tokens: 64                 # synthetic: words of each user message
      think_ms: {kind: uniform, min: 500, max: 2000}   # pause between an answer and the next turn
      dataset: conversations.jsonl    # instead: ShareGPT-style conversations, one a line
      mode: live                      # live: send the model's own answers back; replay: the recorded ones
      session_header: X-Session-Id    # the session id travels in this header (null: none)

A conversation line is ``{"conversations": [{"from": "human"|"gpt"|"system", "value": "..."}]}``
(ShareGPT) or ``{"messages": [{"role": "user"|"assistant"|"system", "content": "..."}]}``: its user
turns, each optionally followed by the recorded assistant turn. Replay mode needs every user turn
but the last answered. Every line is checked when the scenario is read (file:line, field, fix).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loadbench.errors import ConfigError

_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
          "bing": "assistant", "bard": "assistant", "model": "assistant", "system": "system"}
MAX_TURNS = 1000


@dataclass(frozen=True, slots=True)
class Turn:
    user: str
    answer: str | None  # the recorded assistant turn, if any


@dataclass(frozen=True, slots=True)
class Conversation:
    system: str | None
    turns: tuple[Turn, ...]


def _message(where: str, item: object) -> tuple[str, str]:
    if not isinstance(item, dict):
        raise ConfigError(where, "(turn)", "each turn must be an object",
                          '{"from": "human", "value": "..."} or {"role": "user", "content": "..."}')
    role = item.get("from", item.get("role"))
    text = item.get("value", item.get("content"))
    if role not in _ROLES:
        raise ConfigError(where, "from", f"unknown speaker {role!r}", "human, gpt or system (or role: user, "
                                                                      "assistant, system)")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(where, "value", "a turn needs non-empty text", "write the turn's text")
    return _ROLES[role], text


def conversation_of(where: str, obj: Any, *, replay: bool) -> Conversation:
    items = obj.get("conversations", obj.get("messages")) if isinstance(obj, dict) else None
    if not isinstance(items, list) or not items:
        raise ConfigError(where, "conversations", "needs a non-empty list of turns",
                          '{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}')
    system: str | None = None
    turns: list[Turn] = []
    for item in items:
        role, text = _message(where, item)
        if role == "system":
            if turns or system is not None:
                raise ConfigError(where, "from", "a system turn may only come first", "move it to the start")
            system = text
        elif role == "user":
            if turns and turns[-1].answer is None:
                raise ConfigError(where, "from", "two user turns in a row", "merge them, or record the answer")
            turns.append(Turn(text, None))
        else:
            if not turns or turns[-1].answer is not None:
                raise ConfigError(where, "from", "an assistant turn must answer a user turn",
                                  "start with a human turn; alternate human and gpt")
            turns[-1] = Turn(turns[-1].user, text)
    if not turns:
        raise ConfigError(where, "conversations", "no user turn", "add a human turn")
    if len(turns) > MAX_TURNS:
        raise ConfigError(where, "conversations", f"more than {MAX_TURNS} turns", "cut the conversation")
    if replay and any(t.answer is None for t in turns[:-1]):
        raise ConfigError(where, "conversations", "replay mode needs every user turn but the last answered",
                          "add the recorded gpt turns, or use mode: live")
    return Conversation(system, tuple(turns))


def read_conversations(path: Path, *, replay: bool) -> tuple[Conversation, ...]:
    """Every conversation of a JSONL file (ConfigError naming file:line on the first bad one)."""
    if not path.is_file():
        raise ConfigError(str(path), "sessions.dataset", "no such file", "give the path of a JSONL file")
    out: list[Conversation] = []
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ConfigError(where, "(line)", f"not JSON: {exc}", "one conversation object a line") from exc
            out.append(conversation_of(where, obj, replay=replay))
    if not out:
        raise ConfigError(str(path), "sessions.dataset", "no conversation in the file", "add one a line")
    return tuple(out)


@functools.lru_cache(maxsize=8)
def _cached(path: str, replay: bool, mtime_ns: int) -> tuple[Conversation, ...]:
    return read_conversations(Path(path), replay=replay)


def load_conversations(path: str, *, replay: bool) -> tuple[Conversation, ...]:
    """``read_conversations``, read once per file version (the scenario and each worker ask)."""
    p = Path(path)
    if not p.is_file():
        return read_conversations(p, replay=replay)  # says what is wrong
    return _cached(str(p.resolve()), replay, p.stat().st_mtime_ns)
