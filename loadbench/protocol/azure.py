"""The ``azure`` dialect: Azure OpenAI, which is OpenAI's chat format with Azure's data.

- URLs: a deployment's ``/openai/deployments/{model}/chat/completions?api-version=...`` (the model
  of a request names the deployment), or the v1 surface ``/openai/v1/chat/completions`` without an
  ``api-version`` (``azure(API_V1)``); the key goes in ``api-key``, or an Entra token as a bearer
  token (``azure(bearer=True)``).
- the stream is OpenAI's, plus frames whose ``choices`` are empty and carry ``prompt_filter_results``
  (first) or ``content_filter_results``: never content (OpenAI's decoder reads only choices). A
  filtered answer ends with ``finish_reason: content_filter``, loadbench's CONTENT_FILTER; a filtered
  prompt is a 400 error whose ``code`` is ``content_filter``, reported as that kind.
- the server half writes what Azure writes: the prompt-filter frame first, filter results on every
  choice, the same on a whole answer.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import unquote

import orjson

from loadbench.protocol.dialect import Answer, Auth, Kind, LLMRequest, StreamEncoder, WireData, WireError
from loadbench.protocol.jsonscan import loads_object
from loadbench.protocol.openai import OpenAIDialect, OpenAIStreamEncoder
from loadbench.protocol.sseout import data_event

API_VERSION = "2024-10-21"  # the GA data-plane version the deployment URLs carry unless told otherwise
API_V1 = "v1"  # the v1 surface: no api-version, the deployment named by the body's model
CONTENT_FILTER_CODE = "content_filter"
_SAFE = {"filtered": False, "severity": "safe"}
FILTER_RESULTS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": FILTER_RESULTS}]


def azure_data(api_version: str = API_VERSION, *, bearer: bool = False) -> WireData:
    """Azure's paths for ``api_version`` (``API_V1``: the v1 surface) and its auth (``api-key``, or a
    bearer token)."""
    if api_version == API_V1:
        paths = {"chat": "/openai/v1/chat/completions", "completions": "/openai/v1/completions",
                 "models": "/openai/v1/models"}
    else:
        query = f"?api-version={api_version}"
        paths = {"chat": f"/openai/deployments/{{model}}/chat/completions{query}",
                 "completions": f"/openai/deployments/{{model}}/completions{query}",
                 "models": f"/openai/models{query}"}
    auth = Auth("header", "Authorization", "Bearer ") if bearer else Auth("header", "api-key", "")
    return WireData(paths=paths, auth=auth)


def deployment(path: str) -> str | None:
    """The deployment a deployment URL names (None on the v1 surface)."""
    parts = path.split("?", 1)[0].split("/")
    if "deployments" in parts:
        at = parts.index("deployments") + 1
        return unquote(parts[at]) if at < len(parts) else None
    return None


class AzureStreamEncoder(OpenAIStreamEncoder):
    """OpenAI's stream as Azure writes it: the prompt-filter frame (empty ``choices``) first, and the
    content filter's results on every choice."""

    def filter_frame(self) -> bytes:
        """A frame with empty ``choices`` carrying the prompt filter's results: structure, never content."""
        return data_event({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                           "prompt_filter_results": PROMPT_FILTER})

    def head(self) -> bytes:
        return self.filter_frame() + super().head()

    def _chunk(self, choice: dict[str, Any]) -> bytes:
        return super()._chunk({**choice, "content_filter_results": FILTER_RESULTS})


class AzureDialect(OpenAIDialect):
    """Azure OpenAI chat and text completions (OpenAI's body, Azure's URLs, auth and filter frames)."""

    name = "azure"
    # mypy infers OpenAIDialect's two routes as a tuple of exactly two; Dialect declares any number
    server_routes = (("POST", "/openai/deployments/{model}/chat/completions"),  # type: ignore[assignment]
                     ("POST", "/openai/deployments/{model}/completions"),
                     ("POST", "/openai/v1/chat/completions"), ("POST", "/openai/v1/completions"))

    def error(self, status: int, body: bytes) -> WireError:
        err = super().error(status, body)
        obj = loads_object(body)
        inner = obj.get("error") if obj is not None else None
        if isinstance(inner, dict) and inner.get("code") == CONTENT_FILTER_CODE:
            return replace(err, kind=CONTENT_FILTER_CODE)
        return err

    def parse_request(self, body: bytes, path: str = "") -> LLMRequest:
        req = super().parse_request(body, path)
        name = deployment(path)
        return replace(req, model=name) if name and not req.model else req

    def encoder(self, model: str, response_id: str, kind: Kind = "chat") -> StreamEncoder:
        return AzureStreamEncoder(model, response_id, chat=kind == "chat")

    def answer_body(self, answer: Answer, response_id: str, kind: Kind = "chat") -> bytes:
        obj = orjson.loads(super().answer_body(answer, response_id, kind))
        obj["prompt_filter_results"] = PROMPT_FILTER
        for choice in obj["choices"]:
            choice["content_filter_results"] = FILTER_RESULTS
        return orjson.dumps(obj)


def azure(api_version: str = API_VERSION, *, bearer: bool = False) -> AzureDialect:
    """The azure dialect for a target's ``api_version`` and auth (the registered one: deployment URLs
    with ``API_VERSION`` and ``api-key``)."""
    return AzureDialect(azure_data(api_version, bearer=bearer))


AZURE = azure()
