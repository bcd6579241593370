"""The client's side of an exchange in the client's own protocol: its errors, its answer's text.

A client speaks the protocol of the route it called (``RequestContext.ingress``: OpenAI at
``/v1/chat/completions``, Anthropic Messages at ``/v1/messages``, ...). Every answer the gateway
writes itself (a refusal, an upstream failure, an error inside a stream) is written by that dialect,
so a client's own SDK reads it; the bytes a listener keeps (``ctx.captured``) are in it too.
"""

from __future__ import annotations

from aiohttp import web

from loadbench.gateway import openai_error as oai
from loadbench.gateway.context import RequestContext
from loadbench.protocol.dialect import Kind, WireError
from loadbench.protocol.openai import OPENAI, answer_text, error_event, stream_text


def refuse(ctx: RequestContext, status: int, message: str, kind: str, code: str | int | None = None,
           param: str | None = None) -> web.Response:
    """An error answer in the client's protocol (``kind``, ``code``, ``param``: OpenAI's words, which
    another protocol replaces by its own type for ``status``)."""
    if ctx.ingress is OPENAI:
        return oai.error(status, message, kind, code, param)
    return web.Response(status=status, body=ctx.ingress.error_body(message, status),
                        content_type=ctx.ingress.content_type)


def stream_error(ctx: RequestContext, message: str, status: int = 502) -> bytes:
    """An error event ending a stream that already started, in the client's protocol."""
    if ctx.ingress is OPENAI:
        return error_event(message, status)
    return ctx.ingress.encoder("", response_id(ctx), kind_of(ctx)).error(WireError(message, "", status))


def response_id(ctx: RequestContext) -> str:
    """The id of an answer the gateway writes (OpenAI's prefixes for OpenAI clients)."""
    if ctx.ingress is OPENAI:
        return ("chatcmpl-" if ctx.kind == "chat" else "cmpl-") + ctx.request_id
    return ctx.request_id


def kind_of(ctx: RequestContext) -> Kind:
    """The endpoint kind the client called, in the dialects' words."""
    return "completions" if ctx.kind == "completions" else "chat"


def captured_text(ctx: RequestContext) -> str | None:
    """The answer text of the bytes sent to the client (``ctx.captured``); None when they are not an
    answer of its protocol."""
    return answer_text_of(ctx, b"".join(ctx.captured))


def answer_text_of(ctx: RequestContext, raw: bytes) -> str | None:
    """The answer text of ``raw``, a stream or a whole answer (as ``ctx`` asked) in the client's protocol."""
    if ctx.ingress is OPENAI:
        return stream_text(raw) if ctx.stream else answer_text(raw)
    if ctx.stream:
        decoded = ctx.ingress.decoder().feed(raw, end_of_stream=True)
        return "".join(c.text for c in decoded.content if c.channel == "answer")
    answer = ctx.ingress.decode(raw)
    return None if answer.error is not None else answer.text
