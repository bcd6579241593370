"""Multi-turn sessions as requests: a seeded script per session, then one request per turn carrying the
whole conversation so far.

A session's script is drawn when it starts: the number of turns, each user message and each think
time (synthetic), or the next conversation of the dataset (this worker's share, in file order,
cycling). Turn k's request sends the system prompt, every earlier user message and answer, and user
message k. The answers are the model's own (``live``, passed in by the caller as they arrive) or
the recorded ones (``replay``): context grows as it does for a real user either way.

Synthetic user messages are seeded words (``prompts.text``), ``round(user_tokens x prompt_scale)``
of them, starting with a word unique to the session so two sessions never share a prefix by chance.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

from loadbench.config.scenario import Scenario, Sessions
from loadbench.config.sessions import Conversation, load_conversations
from loadbench.protocol.dialect import Message
from loadbench.workload.lengths import make_sampler
from loadbench.workload.prompts import text as draw_text
from loadbench.workload.requests import RequestFactory, RequestSpec


@dataclass(frozen=True, slots=True)
class SessionScript:
    session_id: str
    system: str | None
    users: tuple[str, ...]  # user message of each turn
    answers: tuple[str | None, ...]  # recorded answers (replay mode)
    think_s: tuple[float, ...]  # pause before each turn (0 before the first)
    output_tokens: tuple[int, ...]


class SessionFactory:
    def __init__(self, scenario: Scenario, requests: RequestFactory, *, seed: int, stream_index: int = 0,
                 stream_count: int = 1, prompt_scale: float = 1.0, worker_id: str = "w0") -> None:
        assert scenario.sessions is not None
        self.spec: Sessions = scenario.sessions
        self._requests = requests
        self._rng = random.Random(f"loadbench-sessions:{seed}:{stream_index}")
        self._scale = prompt_scale
        self._system = scenario.system_prompt
        self._turns = make_sampler(self.spec.turns)
        self._user_tokens = make_sampler(self.spec.user_tokens)
        self._think = make_sampler(self.spec.think_ms) if self.spec.think_ms is not None else None
        self._output = make_sampler(scenario.output_tokens)
        self._conversations: tuple[Conversation, ...] = (
            load_conversations(self.spec.dataset, replay=self.replay) if self.spec.dataset else ())
        self._next = itertools.count(stream_index, max(stream_count, 1))
        self._worker_id = worker_id
        self._seed = seed

    @property
    def replay(self) -> bool:
        return self.spec.mode == "replay"

    def new(self) -> SessionScript:
        rng = self._rng
        n = next(self._next)
        session_id = f"s{self._seed:x}-{self._worker_id}-{n:x}"
        if self._conversations:
            conv = self._conversations[n % len(self._conversations)]
            turns = len(conv.turns)
            users = tuple(t.user for t in conv.turns)
            answers = tuple(t.answer for t in conv.turns)
            system = conv.system or self._system
        else:
            turns = self._turns(rng)
            users = tuple(f"{session_id}t{k} " + draw_text(rng, max(0, round(self._user_tokens(rng) * self._scale) - 1))
                          for k in range(turns))
            answers = (None,) * turns
            system = self._system
        think = tuple(0.0 if k == 0 or self._think is None else self._think(rng) / 1000.0 for k in range(turns))
        return SessionScript(session_id=session_id, system=system, users=users, answers=answers, think_s=think,
                             output_tokens=tuple(self._output(rng) for _ in range(turns)))

    def turn_request(self, script: SessionScript, k: int, history: list[dict[str, Any]]) -> RequestSpec:
        """Turn ``k`` (0-based): the conversation so far (``history``: user and assistant messages of the
        earlier turns) and user message k."""
        messages = [Message("system", script.system)] if script.system else []
        messages += [Message(str(m["role"]), str(m["content"])) for m in history]
        messages.append(Message("user", script.users[k]))
        words = sum(len(m.content.split()) for m in messages)
        return self._requests.spec_of("session", tuple(messages), script.output_tokens[k], {},
                                      max(1, round(words / self._scale)))
