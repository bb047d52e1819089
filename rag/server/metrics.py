"""Counters in the Prometheus text format for `/metrics`.

Hand-written rather than prometheus_client: a handful of thread-safe sums is all the service needs,
and it keeps the server extra to FastAPI and uvicorn.
"""

from __future__ import annotations

import threading
from collections import defaultdict

_HELP = {
    "rag_requests_total": ("counter", "HTTP requests by route and status."),
    "rag_request_seconds_total": ("counter", "Time spent answering requests, by route."),
    "rag_answers_total": ("counter", "Answers by answerer and whether they abstained."),
    "rag_citations_total": ("counter", "Citations kept in answers."),
    "rag_claims_removed_total": ("counter", "Answer sentences removed because no passage supports them."),
    "rag_rate_limited_total": ("counter", "Requests refused with 429."),
    "rag_ingests_total": ("counter", "Ingests by outcome."),
}


class Metrics:
    def __init__(self) -> None:
        self._values: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(lambda: defaultdict(float))
        self._lock = threading.Lock()

    def add(self, name: str, value: float = 1.0, **labels: object) -> None:
        key = tuple(sorted((k, str(v)) for k, v in labels.items()))
        with self._lock:
            self._values[name][key] += value

    def render(self, gauges: dict[str, float] | None = None) -> str:
        lines = []
        with self._lock:
            snapshot = {name: dict(series) for name, series in self._values.items()}
        for name, (kind, text) in _HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            for labels, value in sorted(snapshot.get(name, {}).items()):
                lines.append(f"{name}{_labels(labels)} {value:g}")
        for name, value in (gauges or {}).items():
            lines += [f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    escaped = (f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in labels)
    return "{" + ",".join(escaped) + "}"
