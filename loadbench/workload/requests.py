"""The seeded request stream: scenario -> RequestSpec (path + ready-to-send body) one at a time.

Determinism: the same (scenario, seed, stream_index) gives the same sequence, whatever the clock
or the other workers do. Each worker uses its own stream_index; replayed datasets are split
between streams (stream_index, stream_index + stream_count, ...) so workers do not repeat lines.

Prompt sizing: a synthetic prompt of N requested tokens gets round(N * prompt_scale) words.
``calibrate`` computes the scale from a few requests' reported ``usage.prompt_tokens``.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadbench.config import DatasetRecord, Scenario, dataset_records
from loadbench.config.scenario import DatasetSpec, LengthDist
from loadbench.config.trace import TraceRequest
from loadbench.protocol.dialect import Dialect, LLMRequest, Message
from loadbench.protocol.openai import OPENAI
from loadbench.workload.lengths import Sampler, make_sampler
from loadbench.workload.prompts import PromptBuilder
from loadbench.workload.traceprompts import TracePrompts

MIN_SCALE, MAX_SCALE = 0.05, 20.0


@dataclass(slots=True)
class RequestSpec:
    path: str  # appended to the base URL .../v1
    body: bytes  # orjson-encoded, ready to send
    request_type: str  # mix entry name ("default" without a mix)
    metadata: dict[str, str]  # tags; sent as X-Loadbench-Metadata when non-empty
    prompt_tokens_requested: int
    output_tokens_requested: int
    request: LLMRequest | None = None  # the same request in no protocol's words (pre-flight, calibration)


@dataclass(slots=True)
class _RequestType:
    name: str
    prompt_tokens: Sampler
    output_tokens: Sampler
    system_prompt: str | None
    metadata: dict[str, str]
    records: tuple[DatasetRecord, ...]
    replay: bool
    replay_pos: int
    builder: PromptBuilder


class RequestFactory:
    def __init__(
        self,
        scenario: Scenario,
        *,
        model: str,
        stream: bool,
        include_usage: bool,
        seed: int,
        stream_index: int = 0,
        prompt_scale: float = 1.0,
        stream_count: int = 1,
        prompt_overhead: Mapping[str, int] | None = None,
        wire: Dialect = OPENAI,
    ) -> None:
        """``wire``: the target's protocol, which writes each body and path. ``prompt_overhead``: tokens
        the target counts besides a synthetic request type's text (system
        prompt, chat template), measured by calibration; added to ``prompt_tokens_requested`` so the
        requested figure is what the target should count."""
        if not 0 <= stream_index < max(stream_count, 1):
            raise ValueError(f"stream_index {stream_index} outside [0, {stream_count})")
        self._rng = random.Random(f"loadbench-requests:{seed}:{stream_index}")
        self._chat = scenario.api == "chat"
        self._wire = wire
        self._model = model
        self._stream = stream
        self._include_usage = include_usage
        self._scale = prompt_scale
        self._overhead = dict(prompt_overhead or {})
        self._stream_count = max(stream_count, 1)
        self._counter = itertools.count()
        sampling = scenario.sampling.model_dump(exclude_none=True)
        self._temperature = sampling.pop("temperature", None)
        self._tail: dict[str, Any] = {**sampling, **scenario.extra_body}  # passed through as the protocol's fields
        builders: dict[tuple[int, int], PromptBuilder] = {}

        def builder(prefix_tokens: int, groups: int) -> PromptBuilder:
            key = (prefix_tokens, groups)
            if key not in builders:
                builders[key] = PromptBuilder(
                    seed=seed,
                    prefix_words=round(prefix_tokens * prompt_scale),
                    prefix_groups=groups,
                    nonce=scenario.nonce,
                    stream_index=stream_index,
                )
            return builders[key]

        def make(
            name: str,
            prompt: LengthDist,
            output: LengthDist,
            system: str | None,
            metadata: dict[str, str],
            dataset: DatasetSpec | None,
            prefix_tokens: int,
            groups: int,
        ) -> _RequestType:
            records = dataset_records(dataset) if dataset is not None else ()
            return _RequestType(
                name=name,
                prompt_tokens=make_sampler(prompt),
                output_tokens=make_sampler(output),
                system_prompt=system,
                metadata={**scenario.metadata, **metadata},
                records=records,
                replay=dataset is not None and dataset.order == "replay",
                replay_pos=stream_index,
                builder=builder(prefix_tokens, groups),
            )

        s = scenario
        if s.mix is None:
            self._types = [
                make(
                    "default",
                    s.prompt_tokens,
                    s.output_tokens,
                    s.system_prompt,
                    {},
                    s.dataset,
                    s.prefix_tokens,
                    s.prefix_groups,
                )
            ]
            self._cum_weights = [1.0]
        else:
            self._types = [
                make(
                    m.name,
                    m.prompt_tokens or s.prompt_tokens,
                    m.output_tokens or s.output_tokens,
                    m.system_prompt if m.system_prompt is not None else s.system_prompt,
                    m.metadata,
                    m.dataset or s.dataset,
                    m.prefix_tokens if m.prefix_tokens is not None else s.prefix_tokens,
                    m.prefix_groups or s.prefix_groups,
                )
                for m in s.mix
            ]
            self._cum_weights = list(itertools.accumulate(m.weight for m in s.mix))

    def next(self) -> RequestSpec:
        rng = self._rng
        n = next(self._counter)
        if len(self._types) == 1:
            rt = self._types[0]
        else:
            rt = self._types[bisect.bisect_right(self._cum_weights, rng.random() * self._cum_weights[-1])]
        output_tokens = rt.output_tokens(rng)
        metadata = dict(rt.metadata)
        if rt.records:
            if rt.replay:
                record = rt.records[rt.replay_pos % len(rt.records)]
                rt.replay_pos += self._stream_count
            else:
                record = rt.records[rng.randrange(len(rt.records))]
            if record.max_tokens is not None:
                output_tokens = record.max_tokens
            metadata.update(record.metadata)
            prompt_tokens = record.word_count
            content: Any = self._record_content(record, rt.system_prompt)
        else:
            synthetic_tokens = rt.prompt_tokens(rng)
            text = rt.builder.build(rng, max(1, round(synthetic_tokens * self._scale)), n)
            content = self._synthetic_content(text, rt.system_prompt)
            prompt_tokens = synthetic_tokens + self._overhead.get(rt.name, 0)
        return self.spec_of(rt.name, content, output_tokens, metadata, prompt_tokens)

    def trace_request(self, req: TraceRequest, index: int, prompts: TracePrompts) -> RequestSpec:
        """Request ``index`` of a trace: its token counts, its shared prefix text (``traceprompts``), and
        the virtual model and metadata it was logged with (a gateway log), the scenario's system prompt
        and sampling as for any request."""
        system = self._types[0].system_prompt
        content = self._synthetic_content(prompts.text(req, index), system)
        metadata = {**self._types[0].metadata, **req.metadata}
        return self.spec_of("trace", content, req.output_tokens, metadata, req.prompt_tokens, model=req.model)

    def spec_of(self, name: str, content: Any, output_tokens: int, metadata: dict[str, str], prompt_tokens: int,
                model: str | None = None) -> RequestSpec:
        """A request of type ``name``: ``content`` is the chat's messages (a tuple of ``Message``) or a
        completion's prompt; written in the run's protocol by its dialect."""
        request = LLMRequest(model=model or self._model, messages=content if self._chat else (),
                             prompt=None if self._chat else content, max_tokens=output_tokens,
                             temperature=self._temperature, stream=self._stream,
                             include_usage=self._include_usage, extra=self._tail)
        wire = self._wire.request(request)
        return RequestSpec(
            path=wire.path,
            body=wire.body,
            request_type=name,
            metadata=metadata,
            prompt_tokens_requested=prompt_tokens,
            output_tokens_requested=output_tokens,
            request=request,
        )

    def _synthetic_content(self, text: str, system: str | None) -> Any:
        if not self._chat:
            return f"{system}\n\n{text}" if system else text
        user = Message("user", text)
        return (Message("system", system), user) if system else (user,)

    def _record_content(self, record: DatasetRecord, system: str | None) -> Any:
        if record.prompt is not None:
            return self._synthetic_content(record.prompt, system)
        pairs = list(record.messages or ())
        if system and not any(role == "system" for role, _ in pairs):
            pairs.insert(0, ("system", system))
        if self._chat:
            return tuple(Message(role, content) for role, content in pairs)
        return "\n\n".join(content for _, content in pairs)


def calibrate(requested: Sequence[int], reported: Sequence[int], current_scale: float = 1.0) -> float:
    """The prompt_scale that makes reported prompt tokens ~= requested ones.

    ``requested`` are the requests' prompt_tokens_requested, ``reported`` the server's
    ``usage.prompt_tokens`` for the same requests, sent with ``current_scale``. Pairs with no
    report (<= 0) are ignored; with none left the scale is unchanged. The result is a ratio of
    sums (so long prompts weigh more than chat-template overhead) clamped to [0.05, 20].
    """
    if len(requested) != len(reported):
        raise ValueError("requested and reported must have the same length")
    pairs = [(q, r) for q, r in zip(requested, reported, strict=True) if r > 0 and q > 0]
    if not pairs:
        return current_scale
    scale = current_scale * sum(q for q, _ in pairs) / sum(r for _, r in pairs)
    return min(MAX_SCALE, max(MIN_SCALE, scale))
