"""An ingest in a child process, for long-running servers (the app): torch and the embedding model
load in the child and go away with it, instead of staying in the server for good (~500 MiB).

The parent sends the settings and the request as one JSON object on the child's stdin (secrets never
touch the command line or the environment) and reads JSON lines back: progress, waiting for the lock,
then the report or the error.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import Settings
from .embeddings import Progress
from .errors import RagError, UserError
from .types import IngestReport

log = logging.getLogger(__name__)
STOP_GRACE = 30.0  # embedding and writing what was read in time may take this long past a short limit


def ingest_in_child(settings: Settings, paths: Sequence[Path], rebuild: bool = False, progress: Progress = False,
                    on_wait: Callable[[], None] | None = None, sync: bool = False, time_limit: float | None = None,
                    remove: bool = False) -> IngestReport:
    """run_ingest (or with `remove`, run_remove) in a child process, killed if it is still going at twice
    `time_limit` (at least STOP_GRACE seconds after it): killed, it publishes nothing, and its index lock
    goes with it."""
    request = {"settings": settings.as_dict(secrets=True), "paths": [str(p) for p in paths], "rebuild": rebuild,
               "sync": sync, "remove": remove, "time_limit": time_limit}
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen([sys.executable, "-m", "rag.isolated"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=errors, text=True)
        assert child.stdin is not None and child.stdout is not None
        stop_at = time_limit + max(time_limit, STOP_GRACE) if time_limit is not None else None
        stopper = threading.Timer(stop_at, child.kill) if stop_at is not None else None
        if stopper is not None:
            stopper.daemon = True
            stopper.start()
        child.stdin.write(json.dumps(request))
        child.stdin.close()
        outcome = None
        for line in child.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # a library printed to stdout
            if message["event"] == "progress" and callable(progress):
                progress(message["done"], message["total"])
            elif message["event"] == "waiting" and on_wait:
                on_wait()
            elif message["event"] in ("report", "error"):
                outcome = message
        code = child.wait()
        if stopper is not None:
            stopper.cancel()
        errors.seek(0)
        detail = errors.read().decode(errors="replace").strip()
    if code and detail:  # for the server's log: it may hold a traceback and paths, which users never see
        log.warning("the ingest process exited %s:\n%s", code, detail)
    if outcome is None and code == -signal.SIGKILL and stop_at is not None:
        raise UserError(f"the ingest was still running after {stop_at:.0f} s and was stopped; nothing was "
                        "changed: send fewer or smaller files at a time (RAG_SERVER_INGEST_SECONDS)")
    if outcome is None:
        raise RagError(f"the ingest process ended without a report (exit {code}): try again; the server's log "
                       "has the details")
    if outcome["event"] == "error":
        raise (UserError if outcome["exit_code"] == 2 else RagError)(outcome["message"])
    return IngestReport.from_dict(outcome["report"])


def _send(**message) -> None:
    print(json.dumps(message), flush=True)


def main() -> int:
    from .ingest import run_ingest, run_remove

    request = json.loads(sys.stdin.read())
    settings, paths = Settings(**request["settings"]), [Path(p) for p in request["paths"]]
    try:
        if request["remove"]:
            report = run_remove(settings, paths, lambda: _send(event="waiting"))
        else:
            report = run_ingest(settings, paths, request["rebuild"],
                                lambda done, total: _send(event="progress", done=done, total=total),
                                lambda: _send(event="waiting"), request["sync"], request["time_limit"])
    except RagError as exc:
        _send(event="error", message=str(exc), exit_code=exc.exit_code)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the traceback goes to the log, the app shows one line
        traceback.print_exc()
        _send(event="error", message=f"the ingest failed unexpectedly ({type(exc).__name__}): try again; the "
              "server's log has the details", exit_code=1)
        return 1
    _send(event="report", report=report.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
