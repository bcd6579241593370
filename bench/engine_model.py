"""A small llama-architecture model with random weights, written here as a GGUF file.

Nothing is downloaded: the tokenizer is a byte-level BPE trained on a seeded synthetic corpus with
the ``tokenizers`` package, the weights are seeded random numbers, and the file is written with the
``gguf`` package. llama.cpp's server runs it at real cost (prefill grows with the prompt, decode with
the streams in flight); its answers are random text.

``max_tokens`` must be honoured exactly, so every token that would end or hide a reply is made
unreachable by the sampler: the special tokens (``<|im_end|>`` is an end-of-generation token to
llama.cpp), and the single bytes that are not printable ASCII on their own (an incomplete UTF-8 byte
would be held back by the server, a chunk without text). How: dimension 0 of the residual stream is a
constant (every token embedding has C there, and no layer writes to it), so after the final norm it
is always positive; the output rows of the unreachable tokens weigh it with a large negative number,
so their logits sit hundreds below the others whatever the context.

The file is cached under the engine cache (``engine.cache_root()``) by the hash of its parameters.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
          "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
          "{% endif %}")
RESIDUAL_CONSTANT = 40.0  # dimension 0 of every hidden state (see the module docstring)
UNREACHABLE_WEIGHT = -200.0  # output weight of the unreachable tokens on dimension 0
CORPUS_WORDS = 400_000
FORMAT_VERSION = 1  # bump when the file written for the same parameters changes


@dataclass(frozen=True, slots=True)
class ModelSpec:
    dims: int = 384
    layers: int = 6
    heads: int = 6
    kv_heads: int = 2
    ffn_dims: int = 1024
    vocab_size: int = 8000
    context_tokens: int = 32768
    seed: int = 7

    @property
    def key(self) -> str:
        blob = json.dumps({**asdict(self), "format": FORMAT_VERSION}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: byte -> the printable character that stands for it in a vocabulary."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


def corpus(seed: int, words: int = CORPUS_WORDS) -> list[str]:
    """Seeded pseudo-English: syllable words of Zipf-like frequency, sentences, newlines. ASCII only,
    so every learned merge is printable text."""
    rng = random.Random(f"loadbench-engine-corpus:{seed}")
    onsets = ["", "b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "w", "th", "st", "br", "ch"]
    vowels = ["a", "e", "i", "o", "u", "ea", "ou", "ai"]
    codas = ["", "", "n", "r", "s", "t", "l", "nd", "ng", "st"]
    lexicon = ["".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas)
                       for _ in range(rng.choice((1, 1, 2, 2, 3)))) for _ in range(6000)]
    weights = [1.0 / (rank + 1) for rank in range(len(lexicon))]
    drawn = rng.choices(lexicon, weights=weights, k=words)
    lines, line = [], []
    for i, w in enumerate(drawn):
        line.append(w.capitalize() if not line else w)
        if rng.random() < 0.08 or i == len(drawn) - 1:
            lines.append(" ".join(line) + rng.choice((".", ".", "?", ",", "!")))
            line = []
    return lines


def _tokenizer(spec: ModelSpec) -> tuple[list[str], list[str]]:
    """(tokens by id, merges) of a byte-level BPE trained on the corpus; the specials come first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # llama.cpp's "gpt-2" pre-tokenizer: the same regex split, no prefix space
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=spec.vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(spec.seed), trainer=trainer)
    vocab = tok.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    assert [vocab[t] for t in tokens] == list(range(len(tokens))), "token ids must be dense"
    merges = json.loads(tok.to_str())["model"]["merges"]
    return tokens, [m if isinstance(m, str) else " ".join(m) for m in merges]


def unreachable_ids(tokens: list[str]) -> list[int]:
    """The specials and the single-byte tokens that are not printable ASCII (or a newline) on their own."""
    to_char = _bytes_to_unicode()
    bad_bytes = {to_char[b] for b in range(256) if not (0x20 <= b < 0x7F or b == 0x0A)}
    return [i for i, t in enumerate(tokens) if t in SPECIAL_TOKENS or t in bad_bytes]


def write_model(spec: ModelSpec, path: Path) -> None:
    import gguf

    tokens, merges = _tokenizer(spec)
    n_vocab = len(tokens)
    rng = np.random.default_rng(spec.seed)
    head_dim = spec.dims // spec.heads
    kv_dims = head_dim * spec.kv_heads

    def weight(rows: int, cols: int, scale: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * scale).astype(np.float16)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("loadbench-random-llama")
    w.add_context_length(spec.context_tokens)
    w.add_embedding_length(spec.dims)
    w.add_block_count(spec.layers)
    w.add_feed_forward_length(spec.ffn_dims)
    w.add_head_count(spec.heads)
    w.add_head_count_kv(spec.kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    special = set(SPECIAL_TOKENS)
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(tokens.index("<|endoftext|>"))
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)

    embd = rng.standard_normal((n_vocab, spec.dims), dtype=np.float32)
    embd[:, 0] = RESIDUAL_CONSTANT
    w.add_tensor("token_embd.weight", embd.astype(np.float16))
    for i in range(spec.layers):
        ones = np.ones(spec.dims, dtype=np.float32)
        w.add_tensor(f"blk.{i}.attn_norm.weight", ones)
        w.add_tensor(f"blk.{i}.attn_q.weight", weight(spec.dims, spec.dims, 0.05))
        w.add_tensor(f"blk.{i}.attn_k.weight", weight(kv_dims, spec.dims, 0.05))
        w.add_tensor(f"blk.{i}.attn_v.weight", weight(kv_dims, spec.dims, 0.05))
        out = weight(spec.dims, spec.dims, 0.05)
        out[0, :] = 0  # nothing writes to the constant dimension
        w.add_tensor(f"blk.{i}.attn_output.weight", out)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
        w.add_tensor(f"blk.{i}.ffn_gate.weight", weight(spec.ffn_dims, spec.dims, 0.05))
        w.add_tensor(f"blk.{i}.ffn_up.weight", weight(spec.ffn_dims, spec.dims, 0.05))
        down = weight(spec.dims, spec.ffn_dims, 0.05)
        down[0, :] = 0
        w.add_tensor(f"blk.{i}.ffn_down.weight", down)
    w.add_tensor("output_norm.weight", np.ones(spec.dims, dtype=np.float32))
    head = rng.standard_normal((n_vocab, spec.dims), dtype=np.float32) * 0.15
    head[:, 0] = 0
    head[unreachable_ids(tokens), 0] = UNREACHABLE_WEIGHT
    w.add_tensor("output.weight", head.astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def cached_model(spec: ModelSpec, cache: Path) -> Path:
    """The model file for ``spec``, written once per machine (a file lock keeps concurrent test
    processes from writing it twice)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"random-llama-{spec.key}.gguf"
    if path.exists():
        return path
    with open(cache / f"random-llama-{spec.key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the writer takes well under a minute
        if not path.exists():
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            write_model(spec, tmp)
            tmp.rename(path)  # atomic: a reader sees the whole file or none
    return path
