"""Pure pieces of the mock: token counting, request parsing, schedule, SSE templates, settings, gate."""

from __future__ import annotations

import asyncio
import base64
import itertools
import math
import random
import struct

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadbench.errors import ConfigError, InputError
from loadbench.mock import bodies
from loadbench.mock.gate import FifoGate
from loadbench.mock.request import parse_embedding_inputs, parse_generation
from loadbench.mock.schedule import ChunkSchedule, chunk_count, chunk_offsets_s, last_offset_s
from loadbench.mock.settings import MockSettings, problems, with_updates
from loadbench.mock.tokens import (
    chat_prompt_tokens,
    completion_prompt_tokens,
    count_words,
    token_text,
)

# --- tokens ---------------------------------------------------------------------------------


def test_chat_prompt_tokens_counts_words_in_strings_and_text_parts() -> None:
    messages = [
        {"role": "system", "content": "you are  helpful"},
        {"role": "user", "content": [{"type": "text", "text": "hello\nthere"},
                                     {"type": "image_url", "image_url": {"url": "x y z"}},
                                     {"type": "text", "text": " one "}]},
        {"role": "assistant", "content": None},
    ]
    assert chat_prompt_tokens(messages) == 3 + 2 + 1


@pytest.mark.parametrize("bad", [None, [], "hi", [1], [{"content": 5}],
                                 [{"content": [{"type": "text", "text": 3}]}]])
def test_chat_prompt_tokens_rejects_malformed_messages(bad: object) -> None:
    with pytest.raises(InputError):
        chat_prompt_tokens(bad)


def test_completion_prompt_tokens_accepts_strings_lists_and_token_ids() -> None:
    assert completion_prompt_tokens("a b  c") == 3
    assert completion_prompt_tokens(["a b", "c"]) == 3
    assert completion_prompt_tokens([5, 6, 7, 8]) == 4
    assert completion_prompt_tokens([[1, 2], [3]]) == 3
    with pytest.raises(InputError):
        completion_prompt_tokens({"x": 1})


@given(st.integers(0, 10_000), st.integers(1, 50))
def test_token_text_is_one_word_per_token(first: int, count: int) -> None:
    text = token_text(first, count)
    assert count_words(text) == count
    assert text.startswith(f" tok{first}")
    assert orjson.dumps(text) == b'"' + text.encode() + b'"'  # never needs JSON escaping


# --- request parsing ------------------------------------------------------------------------


def _parse(body: object, chat: bool = True) -> object:
    return parse_generation(body, chat=chat, default_model="dm", default_output_tokens=9)


def test_parse_generation_defaults_and_max_tokens() -> None:
    g = parse_generation({"messages": [{"role": "user", "content": "a b"}]}, chat=True,
                         default_model="dm", default_output_tokens=9)
    facts = (g.model, g.prompt_tokens, g.output_tokens, g.stream, g.include_usage)
    assert facts == ("dm", 2, 9, False, False)
    g = parse_generation({"model": "x", "prompt": "a", "max_tokens": 3, "stream": True,
                          "stream_options": {"include_usage": True}}, chat=False,
                         default_model="dm", default_output_tokens=9)
    assert (g.model, g.output_tokens, g.stream, g.include_usage) == ("x", 3, True, True)
    g = parse_generation({"prompt": "a", "max_completion_tokens": 4, "max_tokens": 3}, chat=False,
                         default_model="dm", default_output_tokens=9)
    assert g.output_tokens == 4


@pytest.mark.parametrize("body", [[], {"messages": [{"content": "a"}], "max_tokens": 0},
                                  {"messages": [{"content": "a"}], "max_tokens": "5"},
                                  {"messages": [{"content": "a"}], "max_tokens": True},
                                  {"messages": [{"content": "a"}], "stream": "yes"},
                                  {"messages": [{"content": "a"}], "stream_options": 3}])
def test_parse_generation_rejects_bad_fields(body: object) -> None:
    with pytest.raises(InputError):
        _parse(body)


def test_parse_generation_names_the_bad_token_limit_and_the_fix() -> None:
    with pytest.raises(InputError) as bad:
        _parse({"prompt": "a", "max_tokens": "5"}, chat=False)
    assert str(bad.value) == "'max_tokens' must be an integer >= 1, got '5'"
    with pytest.raises(InputError) as bad:
        _parse({"prompt": "a", "max_completion_tokens": 0, "max_tokens": 3}, chat=False)
    assert str(bad.value) == "'max_completion_tokens' must be an integer >= 1, got 0"
    with pytest.raises(InputError) as big:
        parse_generation({"prompt": "a", "max_tokens": 9}, chat=False, default_model="dm", default_output_tokens=1,
                         max_output_tokens=8)
    assert str(big.value) == ("'max_tokens' is 9, above this mock's limit of 8 "
                              "(start it with a larger --max-output-tokens)")


def test_parse_embedding_inputs() -> None:
    assert parse_embedding_inputs({"input": "a"}) == (["a"], None)
    both = parse_embedding_inputs({"input": ["a", "b"], "encoding_format": "base64"})
    assert both == (["a", "b"], "base64")
    assert parse_embedding_inputs({"input": [1, 2]}) == (["1 2"], None)
    for bad in ({"input": []}, {}, {"input": [{}]}, {"input": "a", "encoding_format": "hex"}):
        with pytest.raises(InputError):
            parse_embedding_inputs(bad)


# --- schedule -------------------------------------------------------------------------------


@given(st.integers(1, 10_000), st.integers(1, 100))
def test_chunk_count_covers_every_token(tokens: int, per: int) -> None:
    n = chunk_count(tokens, per)
    assert (n - 1) * per < tokens <= n * per


def test_offsets_without_jitter_are_exact_arithmetic() -> None:
    offsets = chunk_offsets_s(0.05, 0.01, 0.0, 4, random.Random(1))
    assert offsets == [0.05 + k * 0.01 for k in range(4)]
    assert last_offset_s(0.05, 0.01, 4) == offsets[-1]


@given(st.floats(0, 1), st.floats(0, 0.1), st.floats(0.0001, 0.2), st.integers(1, 200), st.integers(0, 9))
def test_jittered_offsets_stay_in_band_and_ordered(ttft: float, itl: float, jitter: float, n: int,
                                                   seed: int) -> None:
    offsets = chunk_offsets_s(ttft, itl, jitter, n, random.Random(seed))
    assert len(offsets) == n
    assert all(b >= a for a, b in itertools.pairwise(offsets))
    assert offsets[0] >= 0
    for k, off in enumerate(offsets):
        # clamping to keep order can only push a chunk later, never beyond its neighbours' band
        assert off <= ttft + k * itl + jitter + 1e-9
    assert offsets == chunk_offsets_s(ttft, itl, jitter, n, random.Random(seed))  # seeded


# --- bodies ---------------------------------------------------------------------------------


def _events(raw: bytes) -> list[bytes]:
    assert raw.endswith(b"\n\n")
    parts = raw[:-2].split(b"\n\n")
    assert all(p.startswith(b"data: ") for p in parts)
    return [p[len(b"data: "):] for p in parts]


@given(st.booleans(), st.text(min_size=1, max_size=20), st.integers(0, 2**40),
       st.integers(1, 5000), st.integers(0, 5000))
def test_template_chunks_equal_a_full_json_encode(chat: bool, model: str, created: int,
                                                  n: int, first: int) -> None:
    tpl = bodies.stream_template(chat=chat, response_id="id-1", created=created, model=model,
                                 prompt_tokens=3, completion_tokens=n, include_usage=True)
    text = token_text(first, 3)
    expected = bodies.content_chunk_object(chat=chat, response_id="id-1", created=created,
                                           model=model, text=text)
    (event,) = _events(tpl.chunk(text))
    assert orjson.loads(event) == expected


def test_stream_template_first_and_tail_shapes() -> None:
    tpl = bodies.stream_template(chat=True, response_id="r", created=1, model="m",
                                 prompt_tokens=4, completion_tokens=6, include_usage=True)
    (first,) = _events(tpl.first)
    assert orjson.loads(first)["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finish, use, done = _events(tpl.tail)
    assert orjson.loads(finish)["choices"] == [{"index": 0, "delta": {}, "finish_reason": "length"}]
    assert orjson.loads(use)["choices"] == []
    assert orjson.loads(use)["usage"] == {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}
    assert done == b"[DONE]"
    no_usage = bodies.stream_template(chat=False, response_id="r", created=1, model="m",
                                      prompt_tokens=4, completion_tokens=6, include_usage=False)
    finish, done = _events(no_usage.tail)
    assert orjson.loads(finish)["choices"][0]["finish_reason"] == "length"
    assert orjson.loads(finish)["choices"][0]["text"] == ""


@given(st.text(max_size=200), st.integers(1, 256))
def test_embedding_is_a_deterministic_unit_vector(text: str, dim: int) -> None:
    vec = bodies.embedding(text, dim)
    assert len(vec) == dim
    assert math.isclose(math.sqrt(sum(v * v for v in vec)), 1.0, rel_tol=1e-9)
    assert vec == bodies.embedding(text, dim)


def test_embedding_differs_between_texts_and_base64_matches_floats() -> None:
    a, b = bodies.embedding("hello", 64), bodies.embedding("hello!", 64)
    assert abs(sum(x * y for x, y in zip(a, b, strict=True))) < 0.9
    body = orjson.loads(bodies.embeddings_body(["hello"], dim=64, model="m", prompt_tokens=1,
                                               encoding_format="base64"))
    decoded = struct.unpack("<64f", base64.b64decode(body["data"][0]["embedding"]))
    assert all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-7) for x, y in zip(decoded, a, strict=True))


def test_error_body_is_openai_shaped() -> None:
    assert orjson.loads(bodies.error_body(503, "busy")) == {
        "error": {"message": "busy", "type": "server_error", "param": None, "code": 503}}
    assert orjson.loads(bodies.error_body(429, "slow"))["error"]["type"] == "rate_limit_error"


# --- settings -------------------------------------------------------------------------------


def test_default_settings_are_valid_and_bad_ones_are_named() -> None:
    assert problems(MockSettings()) == []
    found = dict(problems(MockSettings(error_rate=1.5, error_status=200, tokens_per_chunk=0)))
    assert set(found) == {"error_rate", "error_status", "tokens_per_chunk"}


def test_with_updates_applies_live_fields_and_rejects_the_rest() -> None:
    s = with_updates(MockSettings(), {"ttft_ms": 200, "error_rate": 1.0, "no_usage": True})
    assert (s.ttft_ms, s.error_rate, s.no_usage) == (200.0, 1.0, True)
    for bad in ({"port": 1}, {"ttft_ms": -1}, {"error_rate": 2}, {"no_usage": 1}, [1], {"itl_ms": "5"}):
        with pytest.raises(ConfigError):
            with_updates(MockSettings(), bad)


# --- gate -----------------------------------------------------------------------------------


def test_fifo_gate_serves_in_arrival_order_and_survives_cancellation() -> None:
    async def scenario() -> list[int]:
        gate = FifoGate(1)
        order: list[int] = []
        assert gate.try_acquire()

        async def waiter(i: int) -> None:
            await gate.wait()
            order.append(i)
            await asyncio.sleep(0)
            gate.release()

        tasks = [asyncio.create_task(waiter(i)) for i in range(5)]
        await asyncio.sleep(0)
        tasks[2].cancel()
        assert not gate.try_acquire()  # a newcomer may not overtake the queue
        gate.release()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert gate.active == 0 and gate.queued == 0
        return order

    assert asyncio.run(scenario()) == [0, 1, 3, 4]


@given(st.floats(0, 1), st.floats(0, 0.1), st.floats(0.0, 0.2), st.integers(1, 200), st.integers(0, 9))
def test_the_lazy_schedule_gives_the_eager_offsets_read_as_the_pacer_reads(
        ttft: float, itl: float, jitter: float, n: int, seed: int) -> None:
    eager = chunk_offsets_s(ttft, itl, jitter, n, random.Random(seed))
    lazy = ChunkSchedule(ttft, itl, jitter, n, random.Random(seed))
    seen = []
    for k in range(n):  # the pacer reads chunk k, then peeks at k + 1, then reads k + 1 again
        seen.append(lazy[k])
        if k + 1 < n:
            assert lazy[k + 1] == eager[k + 1]
        assert lazy[k] == eager[k]
    assert seen == eager and len(lazy) == n
    with pytest.raises(IndexError):
        lazy[n]


def test_a_huge_schedule_holds_no_list() -> None:
    schedule = ChunkSchedule(0.05, 0.01, 0.001, 10**8, random.Random(1))
    assert schedule[0] <= schedule[1] <= schedule[2]
    assert len(schedule) == 10**8 and not hasattr(schedule, "__dict__")
