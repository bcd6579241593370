"""Where a request log lives: a SQLite file, or a PostgreSQL database; and how to reach PostgreSQL.

Readers take a ``LOG`` argument that is a file path, a ``postgresql://`` URL, or the name of an
environment variable holding one (``LOADBENCH_LOG_DSN``), so a password never has to be typed on a
command line. A DSN is never printed: messages name the variable, or the server and database only
(``describe``). Every connection has a bounded connect timeout and statement timeout, so a database
that is down or stuck costs a bounded wait, never a hang.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loadbench.errors import InputError

if TYPE_CHECKING:
    import psycopg

CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 60_000  # readers scan whole experiments; the writer sets its own, shorter
_URL = re.compile(r"^postgres(ql)?://", re.IGNORECASE)
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class LogSource:
    """A SQLite path (``dsn`` None) or a PostgreSQL DSN, with how to name it in messages."""

    name: str  # the path, the variable's name, or the URL without its password
    path: Path | None = None
    dsn: str | None = field(default=None, repr=False)


def describe(dsn: str) -> str:
    """The DSN without user and password: ``postgresql://host:port/dbname``."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # a malformed DSN: say nothing of its content
        return "postgresql://(unparsable DSN)"
    host, port, db = parts.get("host", ""), parts.get("port", ""), parts.get("dbname", "")
    return f"postgresql://{host}{':' + str(port) if port else ''}/{db}"


def first_line(exc: Exception) -> str:
    """A database error's first line (psycopg's messages carry server context below it, never the DSN)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def log_source(arg: str | Path, env: dict[str, str]) -> LogSource:
    """A reader's LOG argument: a URL, an existing file, or a variable of ``env`` holding a URL."""
    text = str(arg)
    if _URL.match(text):
        return LogSource(describe(text), dsn=text)
    path = Path(text)
    if path.exists() or not _VAR.match(text):
        return LogSource(text, path=path)
    value = env.get(text)
    if not value:
        raise InputError(f"{text}: no such file, and no environment variable {text} "
                         "(give a request log file, a postgresql:// URL, or a variable holding one)")
    if not _URL.match(value):
        raise InputError(f"environment variable {text} does not hold a postgresql:// URL")
    return LogSource(f"{describe(value)} (from {text})", dsn=value)


def connect(dsn: str, statement_timeout_ms: int = STATEMENT_TIMEOUT_MS, connect_timeout_s: float = CONNECT_TIMEOUT_S,
            autocommit: bool = True) -> psycopg.Connection[tuple[object, ...]]:
    """A connection with bounded waits (raises psycopg.Error; callers say what failed without the DSN).
    ``tcp_user_timeout`` ends a connection whose sent data goes unacknowledged (a host gone from the
    network) instead of the kernel's retransmissions of a quarter of an hour."""
    import psycopg

    return psycopg.connect(dsn, connect_timeout=max(1, round(connect_timeout_s)), autocommit=autocommit,
                           options=f"-c statement_timeout={statement_timeout_ms}", application_name="loadbench",
                           tcp_user_timeout=statement_timeout_ms + round(connect_timeout_s * 1000),
                           keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)
