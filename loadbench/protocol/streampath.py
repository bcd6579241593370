"""``StreamPathDialect``: a protocol whose streamed answers have a path of their own (the endpoint kind
``chat_stream``): Bedrock's ``converse-stream``, Gemini's ``streamGenerateContent?alt=sse``. The path,
not the body, says whether the answer streams."""

from __future__ import annotations

from loadbench.protocol.dialect import Dialect, LLMRequest, WireRequest

STREAM_KIND = "chat_stream"


class StreamPathDialect(Dialect):
    def request(self, req: LLMRequest, api_key: str | None = None) -> WireRequest:
        kind = STREAM_KIND if req.stream else req.kind
        return WireRequest(self._keyed(self.path(kind, req.model), api_key), self.headers(api_key, stream=req.stream),
                           self.body(req))
