"""The engine's support code without the engine: the random model file, the build cache and its lock."""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path

import pytest

from bench import engine
from bench.engine_model import (
    RESIDUAL_CONSTANT,
    SPECIAL_TOKENS,
    UNREACHABLE_WEIGHT,
    ModelSpec,
    unreachable_ids,
    write_model,
)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty engine cache and a PATH without cmake or a compiler: any build attempt fails at once."""
    monkeypatch.setenv("LOADBENCH_ENGINE_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return tmp_path / "cache"


def test_the_random_model_file_is_llama_with_chatml_and_unreachable_special_tokens(tmp_path: Path) -> None:
    import gguf

    spec = ModelSpec(dims=64, layers=2, heads=2, kv_heads=1, ffn_dims=128, vocab_size=1000)
    path = tmp_path / "m.gguf"
    write_model(spec, path)
    r = gguf.GGUFReader(str(path))

    def field(name: str) -> object:
        f = r.fields[name]
        return f.contents() if hasattr(f, "contents") else f.parts[f.data[0]]

    assert field("general.architecture") == "llama" and field("tokenizer.ggml.model") == "gpt2"
    assert "<|im_start|>" in str(field("tokenizer.chat_template"))
    tokens = list(field("tokenizer.ggml.tokens"))  # type: ignore[call-overload]
    assert len(tokens) == 1000 and tokens[:3] == list(SPECIAL_TOKENS)
    assert field("tokenizer.ggml.eos_token_id") == tokens.index("<|im_end|>")
    tensors = {t.name: t for t in r.tensors}
    assert len(tensors) == 2 + 9 * spec.layers + 1
    head = tensors["output.weight"].data.astype("float32")
    bad = unreachable_ids(tokens)
    # the specials and the 160 non-printable single bytes, and nothing else
    assert len(bad) == 3 + 160 and set(range(3)) <= set(bad)
    assert (head[bad, 0] == UNREACHABLE_WEIGHT).all()
    assert (head[[i for i in range(len(tokens)) if i not in set(bad)], 0] == 0).all()
    assert (tensors["token_embd.weight"].data[:, 0] == RESIDUAL_CONSTANT).all()
    for i in range(spec.layers):  # nothing writes to the constant dimension of the residual stream
        assert not tensors[f"blk.{i}.attn_output.weight"].data[0].any()
        assert not tensors[f"blk.{i}.ffn_down.weight"].data[0].any()


def test_a_build_that_cannot_happen_says_why_and_what_to_install(cache: Path) -> None:
    with pytest.raises(engine.EngineUnavailable, match=r"cmake.*not found.*apt-get install cmake g\+\+ make"):
        engine.ensure_built()
    # recorded beside the cache for whoever waited on the lock meanwhile
    assert "cmake" in next(cache.glob("*.failed")).read_text()


def test_a_cached_build_is_reused_without_building(cache: Path) -> None:
    binary = engine.binary_path()
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    assert engine.ensure_built() == binary  # the empty PATH would fail any build


def test_a_second_process_waits_for_the_build_in_progress_and_reuses_it(cache: Path) -> None:
    binary = engine.binary_path()
    lock_path = binary.parent.with_name(binary.parent.name + ".lock")
    lock_path.parent.mkdir(parents=True)
    held = threading.Event()

    def builder() -> None:  # another process building: holds the lock, then the binary appears
        with open(lock_path, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            held.set()
            time.sleep(1.5)
            binary.parent.mkdir()
            binary.write_text("#!/bin/sh\n")
            fcntl.flock(f, fcntl.LOCK_UN)

    t = threading.Thread(target=builder)
    t.start()
    assert held.wait(5)
    started = time.monotonic()
    assert engine.ensure_built(timeout_s=30) == binary
    assert time.monotonic() - started >= 1.0  # it waited for the lock, and did not build
    t.join()


def test_the_wait_for_another_build_is_bounded(cache: Path) -> None:
    binary = engine.binary_path()
    lock_path = binary.parent.with_name(binary.parent.name + ".lock")
    lock_path.parent.mkdir(parents=True)
    with open(lock_path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        with pytest.raises(engine.EngineUnavailable, match="took longer than 1 s"):
            engine.ensure_built(timeout_s=1.0)


def test_the_cache_key_names_the_version_and_the_cpu() -> None:
    key = engine.build_key()
    assert key.startswith(engine.LLAMA_CPP_PYTHON_VERSION + "-") and len(key.rsplit("-", 1)[1]) == 8
    assert key == engine.build_key()
