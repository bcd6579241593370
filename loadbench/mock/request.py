"""Turn an OpenAI request body into the few facts the mock needs. Pure; raises InputError (-> 400)."""

from __future__ import annotations

from dataclasses import dataclass

from loadbench.errors import InputError
from loadbench.mock.tokens import chat_prompt_tokens, completion_prompt_tokens
from loadbench.protocol.jsonscan import positive_int


@dataclass(slots=True)
class GenerationRequest:
    model: str
    prompt_tokens: int
    output_tokens: int
    stream: bool
    include_usage: bool  # stream_options.include_usage (non-streamed bodies always carry usage)
    cached_tokens: int | None = None  # of prompt_tokens, the server model's prefix-cache hits (None: no cache)


def parse_generation(body: object, *, chat: bool, default_model: str, default_output_tokens: int,
                     max_output_tokens: int | None = None) -> GenerationRequest:
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    prompt_tokens = (chat_prompt_tokens(body.get("messages")) if chat
                     else completion_prompt_tokens(body.get("prompt", "")))
    output_tokens = default_output_tokens
    for key in ("max_completion_tokens", "max_tokens"):  # the first one given wins, as OpenAI reads them
        value = positive_int(body, key)
        if value is None:
            continue
        if max_output_tokens is not None and value > max_output_tokens:
            raise InputError(f"'{key}' is {value}, above this mock's limit of {max_output_tokens} "
                             "(start it with a larger --max-output-tokens)")
        output_tokens = value
        break
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InputError("'stream' must be true or false")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InputError("'stream_options' must be an object")
    include_usage = bool(options.get("include_usage", False)) if options else False
    model = body.get("model")
    return GenerationRequest(
        model=model if isinstance(model, str) and model else default_model,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        stream=stream,
        include_usage=include_usage,
    )


def parse_embedding_inputs(body: object) -> tuple[list[str], str | None]:
    """The texts to embed (token-id inputs become their decimal text) and the encoding format."""
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    raw = body.get("input")
    items: list[object] = raw if isinstance(raw, list) else [raw]
    if raw is None or (isinstance(raw, list) and not raw):
        raise InputError("'input' must be a string or a non-empty list")
    if items and all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        items = [items]  # one prompt given as token ids
    texts: list[str] = []
    for item in items:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, list) and all(isinstance(i, int) for i in item):
            texts.append(" ".join(str(i) for i in item))
        else:
            raise InputError("'input' items must be strings or token-id lists")
    fmt = body.get("encoding_format")
    if fmt not in (None, "float", "base64"):
        raise InputError("'encoding_format' must be 'float' or 'base64'")
    return texts, fmt
