"""`rag serve`: the assistant as an HTTP service (REST and OpenAI-compatible), for a team and other languages.

Needs the `server` extra (FastAPI and uvicorn): `pip install 'rag[server]'`.
"""

from __future__ import annotations

import socket
import sys

from ..access import is_loopback
from ..assistant import Assistant
from ..errors import RagError, UserError
from ..extras import require
from ..tokens import TokenStore
from ..users import UserStore


def serve(assistant: Assistant, host: str, port: int) -> int:
    """Serve until interrupted. With no token made, only this machine may connect, whatever `host` says."""
    uvicorn = require("uvicorn", "server", "rag serve")
    require("fastapi", "server", "rag serve")
    from .api import create_app

    tokens = TokenStore.of(assistant.settings)
    if tokens.path is None:  # a database server: reachable, and at this code's schema, before serving anyone
        tokens.db.upgrade()
    if not is_loopback(host) and not tokens.any_active():
        _say(f"no active token, so serving on 127.0.0.1 only, not {host}: run `rag token create --role admin` "
             "(and reader tokens for the team), then start again")
        host = "127.0.0.1"
    _check_port(host, port)
    try:
        assistant.load()
    except RagError as exc:
        _say(f"not ready yet ({exc}); /readyz says 503 until an ingest")
    shown = f"[{host}]" if ":" in host else host
    users = UserStore.of(assistant.settings)
    _say(f"serving on http://{shown}:{port} (API docs at /docs), {_access_mode(tokens, is_loopback(host), users)}")
    uvicorn.run(create_app(assistant, loopback=is_loopback(host)), host=host, port=port, log_level="warning",
                access_log=False, server_header=False, timeout_graceful_shutdown=10)
    return 0


def _access_mode(tokens: TokenStore, loopback: bool, users: UserStore | None = None) -> str:
    """The start line's truth about tokens."""
    people = users is not None and users.any_made()
    if loopback and not tokens.any_made() and not people:
        return "local only: no token needed until one (or a user) is made"
    if not tokens.any_made():
        return "tokens required, and none made yet: `rag token create --role reader`"
    if not tokens.any_active():
        return "every token is revoked: requests are refused until `rag token create`"
    return "tokens required"


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}): pick another with --port, or "
                            "another --host") from None


def _say(line: str) -> None:
    print(f"rag: {line}", file=sys.stderr, flush=True)
