"""Token accounting for the mock. Nothing here is a real tokenizer; it is a rule a test can check.

Prompt tokens are whitespace-separated words:
    chat         across every message's ``content``: a string, or a list of parts of which the
                 ``{"type": "text", "text": ...}`` ones count (images and other parts count 0)
    completions  across ``prompt``: a string, a list of strings, or token ids (one each; a list
                 of ints or a list of lists of ints)
Output tokens are the words ``" tok0"``, ``" tok1"``, ... (leading space, one word each), so a
whitespace word count of the generated text equals ``completion_tokens``.
"""

from __future__ import annotations

from loadbench.errors import InputError


def count_words(text: str) -> int:
    return len(text.split())


def chat_prompt_tokens(messages: object) -> int:
    if not isinstance(messages, list) or not messages:
        raise InputError("'messages' must be a non-empty list")
    total = 0
    for message in messages:
        if not isinstance(message, dict):
            raise InputError("each message must be an object")
        content = message.get("content")
        if isinstance(content, str):
            total += count_words(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text":
                    text = part.get("text")
                    if not isinstance(text, str):
                        raise InputError("a text content part needs a string 'text'")
                    total += count_words(text)
        elif content is not None:
            raise InputError("message 'content' must be a string or a list of parts")
    return total


def completion_prompt_tokens(prompt: object) -> int:
    if isinstance(prompt, str):
        return count_words(prompt)
    if isinstance(prompt, list):
        total = 0
        for item in prompt:
            if isinstance(item, str):
                total += count_words(item)
            elif isinstance(item, int) and not isinstance(item, bool):
                total += 1
            elif isinstance(item, list) and all(isinstance(i, int) for i in item):
                total += len(item)
            else:
                raise InputError("'prompt' list items must be strings or token ids")
        return total
    raise InputError("'prompt' must be a string, a list of strings or token ids")


def token_text(first: int, count: int) -> str:
    """The text of ``count`` output tokens starting at token index ``first``."""
    if count == 1:
        return f" tok{first}"
    return "".join([f" tok{i}" for i in range(first, first + count)])
