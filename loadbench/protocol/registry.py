"""The dialects by name: ``register`` one, ``dialect(name)`` finds it.

A provider is one module plus its data: a ``Dialect`` subclass (or an existing one given other
``WireData``) registered under its name, e.g. from a plugin or a test, before the first request names
it. The dialects of this package (``openai``, ``anthropic``, ...) are registered here.
"""

from __future__ import annotations

from loadbench.errors import InputError
from loadbench.protocol.anthropic import ANTHROPIC
from loadbench.protocol.azure import AZURE
from loadbench.protocol.bedrock import BEDROCK
from loadbench.protocol.dialect import Dialect
from loadbench.protocol.gemini import GEMINI
from loadbench.protocol.openai import OPENAI
from loadbench.protocol.responses import RESPONSES

DEFAULT = "openai"
_DIALECTS: dict[str, Dialect] = {}


def register(dialect: Dialect, *, replace: bool = False) -> Dialect:
    """Make ``dialect`` known by its ``name``; a second one of the same name is refused unless ``replace``."""
    if not replace and _DIALECTS.get(dialect.name, dialect) is not dialect:
        raise ValueError(f"a dialect named {dialect.name!r} is already registered")
    _DIALECTS[dialect.name] = dialect
    return dialect


def dialect(name: str = DEFAULT) -> Dialect:
    """The dialect registered as ``name``; an unknown name is an input error naming the known ones."""
    found = _DIALECTS.get(name)
    if found is None:
        raise InputError(f"unknown protocol {name!r}: known protocols are {', '.join(names())}")
    return found


def names() -> tuple[str, ...]:
    return tuple(sorted(_DIALECTS))


register(OPENAI)
register(ANTHROPIC)
register(RESPONSES)
register(AZURE)
register(BEDROCK)
register(GEMINI)
