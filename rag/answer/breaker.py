"""A circuit breaker per LLM endpoint, so that a down endpoint costs one slow question, not every one.

After RAG_LLM_BREAKER_FAILURES failed requests in a row the endpoint is open: calls are refused at once,
with no network request, for RAG_LLM_BREAKER_COOLDOWN seconds. Then it is half-open: one trial request
goes through; its success closes the breaker, its failure opens it again. State is process-wide (a server
shares it across requests and threads), keyed by endpoint and model, and guarded by one lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

Key = tuple[str, str]  # (endpoint URL, model)


@dataclass
class _State:
    failures: int = 0  # failed requests in a row
    opened_at: float | None = None
    trial_at: float | None = None  # when the half-open trial request went out
    last_error: str | None = None


_LOCK = threading.Lock()
_STATES: dict[Key, _State] = {}


def admit(key: Key, cooldown: float, trial_lease: float) -> float | None:
    """None when a request may go out now, else the seconds until one may.

    A trial whose outcome never came back (its caller stopped reading) frees its place after `trial_lease`.
    """
    now = time.monotonic()
    with _LOCK:
        state = _STATES.setdefault(key, _State())
        if state.opened_at is None:
            return None
        if (wait := state.opened_at + cooldown - now) > 0:
            return wait
        if state.trial_at is not None and (wait := state.trial_at + trial_lease - now) > 0:
            return wait
        state.trial_at = now
        return None


def succeeded(key: Key, error: str | None = None) -> None:
    """The endpoint answered: close the breaker. `error` is kept when the answer was a refusal (a bad key)."""
    with _LOCK:
        _STATES[key] = _State(last_error=error)


def failed(key: Key, error: str, limit: int) -> bool:
    """Count a failed request; True when the breaker is open after it."""
    with _LOCK:
        state = _STATES.setdefault(key, _State())
        state.failures += 1
        state.last_error = error
        if state.trial_at is not None or state.failures >= limit:
            state.opened_at, state.trial_at = time.monotonic(), None
        return state.opened_at is not None


def snapshot(key: Key, cooldown: float) -> dict:
    """The breaker's state as data: state, failures, retry_in_s, last_error."""
    with _LOCK:
        state = _STATES.get(key, _State())
        failures, opened_at, last_error = state.failures, state.opened_at, state.last_error
    if opened_at is None:
        name, retry_in = "closed", None
    else:
        retry_in = max(0.0, opened_at + cooldown - time.monotonic())
        name = "open" if retry_in > 0 else "half_open"
    return {"state": name, "failures": failures, "retry_in_s": None if retry_in is None else round(retry_in, 1),
            "last_error": last_error}


def reset() -> None:
    """Forget every endpoint's state (tests; a process whose settings changed)."""
    with _LOCK:
        _STATES.clear()
