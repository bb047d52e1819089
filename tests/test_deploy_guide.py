"""docs/deploy.md, run as written: its ```sh blocks in order, in one bash session, against a throw-away
PostgreSQL, the shipped index on a "shared volume" (a temporary folder), one writer and two readers of
`rag serve`, the Streamlit app and nginx with TLS in front of them. Between the guide's sections, checks
through https that the proxy serves what the guide promises, and that its backup restores: the index
answers again and the dump, restored into a fresh database, keeps the tokens.

Where nginx is not installed a developer's run skips this; CI's fails (.ci/run installs nginx).
"""

from __future__ import annotations

import base64
import os
import queue
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import REPO, SHIPPED_CORPUS

pytestmark = pytest.mark.slow

GUIDE = REPO / "docs" / "deploy.md"
QUESTION = "How did they cut cloud costs?"
# The guide's sections that hold ```sh blocks, by heading, in the order a deployment runs them.
SET_UP = ("0. Variables", "1. The database", "2. The index", "3. TLS and nginx")
START = ("4. Start the services", "5. Health checks")
BACK_UP, RESTORE = "6. Back up", "7. Restore"
PORTS = ("writer", "reader1", "reader2", "app", "api_https", "app_https")
_FENCE = re.compile(r"^## ([^\n]+)$|^```(\w*)\n(.*?)^```[ \t]*$", re.M | re.S)
_TOKEN = re.compile(r"^rag_[\w-]{20,}$", re.M)


def guide_blocks() -> dict[str, list[str]]:
    """The ```sh blocks under each `## ` heading of the guide, in order; other fences are shown only."""
    blocks: dict[str, list[str]] = {}
    heading = ""
    for match in _FENCE.finditer(GUIDE.read_text(encoding="utf-8")):
        if match[1]:
            heading = match[1].strip()
        elif match[2] == "sh":
            blocks.setdefault(heading, []).append(match[3])
    return blocks


@pytest.fixture
def nginx() -> Path:
    """The folder of the nginx binary (Debian puts it in /usr/sbin, off a normal user's PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        message = "nginx is not installed: apt-get install nginx (the deployment guide's test runs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Path(found).parent


@dataclass
class Place:
    """Where the guide's deployment lives: its folders and ports."""

    root: Path
    ports: dict[str, int]

    @classmethod
    def make(cls) -> Place:
        # Under /tmp and open to others: as root, nginx's workers run as another account.
        root = Path(tempfile.mkdtemp(prefix="rag-deploy-", dir="/tmp"))
        root.chmod(0o755)
        return cls(root, dict(zip(PORTS, free_ports(len(PORTS)), strict=True)))

    @property
    def deploy(self) -> Path:
        return self.root / "deploy"

    @property
    def index(self) -> Path:
        return self.root / "volume" / "vectorstore"

    @property
    def api(self) -> str:
        return f"https://localhost:{self.ports['api_https']}"

    @property
    def app(self) -> str:
        return f"https://localhost:{self.ports['app_https']}"

    @property
    def replicas(self) -> list[str]:
        return [f"http://127.0.0.1:{self.ports[name]}" for name in ("writer", "reader1", "reader2")]

    def tls(self) -> ssl.SSLContext:
        """Trusts the guide's self-signed certificate, as its `curl --cacert` does."""
        return ssl.create_default_context(cafile=str(self.deploy / "tls" / "cert.pem"))

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}"
                         for log in sorted((self.deploy / "log").glob("*.log")))


def free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def guide_env(place: Place, database_url: str, *bin_dirs: Path) -> dict[str, str]:
    """The guide's variables, given this test's values; nothing of the developer's RAG_* or LLM settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("RAG_", "OPENAI_"))}
    env["PATH"] = os.pathsep.join([*map(str, bin_dirs), env.get("PATH", "")])
    env.update(
        RAG_HOME=str(rag_home(place)), DEPLOY=str(place.deploy), RAG_INDEX_DIR=str(place.index),
        RAG_CORPUS_DIR=str(SHIPPED_CORPUS), RAG_DATABASE_URL=database_url, BACKUP=str(place.root / "backup"),
        PUBLIC_NAME="localhost", API_HTTPS_PORT=str(place.ports["api_https"]),
        APP_HTTPS_PORT=str(place.ports["app_https"]), WRITER_PORT=str(place.ports["writer"]),
        READER_PORTS=f"{place.ports['reader1']} {place.ports['reader2']}", APP_PORT=str(place.ports["app"]),
        READERS=f"127.0.0.1:{place.ports['reader1']} 127.0.0.1:{place.ports['reader2']}",
        ADMIN_PASSWORD="deploy-guide-SENTINEL-pw", HF_HUB_OFFLINE="1",
    )
    return env


def rag_home(place: Place) -> Path:
    """The clone the guide runs from: this one, or a stand-in whose .venv is the Python running the tests."""
    if Path(sys.prefix).resolve() == (REPO / ".venv").resolve():
        return REPO
    home = place.root / "home"
    home.mkdir()
    (home / "app.py").symlink_to(REPO / "app.py")
    (home / ".venv").symlink_to(sys.prefix)
    return home


class Shell:
    """One bash session that runs the guide's blocks as a reader's terminal would: variables and the working
    folder carry over, and the services it starts in the background are its children, so it reaps them. It
    leads a process group of its own; nginx, a daemon, leaves it and is stopped by its pid file."""

    def __init__(self, env: dict[str, str], place: Place) -> None:
        self.place = place
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     cwd=place.root, start_new_session=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._send("set -euo pipefail")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def run(self, script: str, timeout: float = 180) -> str:
        """Run a script in the session (stdin from /dev/null); its output. A failing command ends the session
        (set -e), and the test with it."""
        path = self.place.root / f"block-{uuid.uuid4().hex[:8]}.sh"
        path.write_text(script)
        marker = f"__done_{path.stem}__"
        self._send(f"source {path} < /dev/null; echo {marker}")
        output: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            except queue.Empty:
                raise AssertionError(self._failure("did not finish in time", script, output)) from None
            if line is None:
                raise AssertionError(self._failure(f"failed (exit {self.proc.wait()})", script, output))
            if line.strip() == marker:
                return "".join(output)
            output.append(line)

    def _failure(self, what: str, script: str, output: list[str]) -> str:
        return f"this block {what}:\n{script}\n--- its output\n{''.join(output)[-4000:]}\n{self.place.logs()}"

    def close(self) -> None:
        """Stop everything the guide started, after a failure too: its services by their pid files (while the
        shell lives to reap them), nginx by its own, then whatever is left in the shell's process group."""
        run = self.place.deploy / "run"
        pids = [int(text) for text in (p.read_text().strip() for p in run.glob("*.pid")) if text.isdigit()]
        nginx_pid = self.place.deploy / "nginx" / "nginx.pid"
        if nginx_pid.exists() and nginx_pid.read_text().strip().isdigit():
            pids.append(int(nginx_pid.read_text()))
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@contextmanager
def guide_session(place: Place, env: dict[str, str]) -> Iterator[Shell]:
    shell = Shell(env, place)
    try:
        yield shell
    finally:
        shell.close()


def run_sections(shell: Shell, blocks: dict[str, list[str]], headings: tuple[str, ...]) -> str:
    return "".join(shell.run(block) for heading in headings for block in blocks[heading])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_deployment_guide_runs_as_written(nginx, postgres_cluster, postgres_url, shipped_index):
    from postgres import binaries

    blocks = guide_blocks()
    assert set(blocks) == {*SET_UP, *START, BACK_UP, RESTORE}, "a section of the guide with sh blocks is not run"
    place = Place.make()
    try:
        shutil.copytree(shipped_index, place.index)
        pg_bin = binaries()
        assert pg_bin is not None  # else postgres_cluster skipped
        env = guide_env(place, postgres_url, pg_bin, nginx)
        with guide_session(place, env) as shell:
            said = run_sections(shell, blocks, SET_UP + START)
            admin, token = _TOKEN.findall(said)[0], shell.run('printf "%s\\n" "$RAG_TOKEN"').strip()
            check_the_proxy(place, token)
            check_tokens_on_every_replica(place, token, wrong_too=True)
            check_admin_routes_reach_the_writer(place, admin)
            check_each_client_is_counted_apart(place)
            check_the_backup_lock_holds_writers_off(shell)
            run_sections(shell, blocks, (BACK_UP,))
            lose_the_index_and_the_database(place, postgres_cluster, postgres_url)
            said = run_sections(shell, blocks, (RESTORE, *START))
            check_the_restore(place, shell, token, said)
    finally:
        shutil.rmtree(place.root, ignore_errors=True)


def check_the_proxy(place: Place, token: str) -> None:
    """Probes, an ask (whole and streamed) and the app's health through nginx, over TLS; the app's websocket."""
    with httpx.Client(verify=place.tls(), timeout=60) as web:
        assert web.get(place.api + "/healthz").json() == {"status": "ok"}
        assert web.get(place.api + "/readyz").json()["ready"] is True
        assert web.get(place.app + "/_stcore/health").text == "ok"
        asked = web.post(place.api + "/v1/ask", json={"question": QUESTION}, headers=bearer(token))
        assert asked.status_code == 200 and asked.json()["citations"], asked.text
        streamed = web.post(place.api + "/v1/ask", json={"question": QUESTION, "stream": True}, headers=bearer(token))
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert "event: answer" in streamed.text, streamed.text
    assert websocket_status(place) == "HTTP/1.1 101 Switching Protocols"


def websocket_status(place: Place) -> str:
    """The status line that answers a browser's websocket handshake with the app's stream, through nginx.
    Its page is on a public name and port: Streamlit lets any origin on localhost in, others only when they
    match the Host header that nginx passes on."""
    port = place.ports["app_https"]
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /_stcore/stream HTTP/1.1\r\nHost: rag.deploy.test:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Origin: https://rag.deploy.test:{port}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            place.tls().wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(request.encode())
        return tls.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


def check_tokens_on_every_replica(place: Place, token: str, wrong_too: bool = False) -> None:
    """The token made with `rag token create` is known to the writer and to each reader (one database)."""
    for replica in place.replicas:
        assert httpx.get(replica + "/v1/info", headers=bearer(token), timeout=30).status_code == 200, replica
        if wrong_too:
            assert httpx.get(replica + "/v1/info", headers=bearer("rag_wrong"), timeout=30).status_code == 401


def check_admin_routes_reach_the_writer(place: Place, admin: str) -> None:
    """nginx sends a removal to the writer: its log has the request, no reader's does."""
    with httpx.Client(verify=place.tls(), timeout=60) as web:
        removed = web.delete(place.api + "/v1/sources/src_not_there", headers=bearer(admin))
    assert removed.status_code == 404, removed.text
    deadline = time.monotonic() + 10
    while '"method": "DELETE"' not in (writer := (place.deploy / "log" / "writer.log").read_text()):
        assert time.monotonic() < deadline, writer  # a request is logged as it ends
        time.sleep(0.1)
    readers = [log.read_text() for log in (place.deploy / "log").glob("reader-*.log")]
    assert len(readers) == 2 and not any('"method": "DELETE"' in text for text in readers)


def check_the_backup_lock_holds_writers_off(shell: Shell) -> None:
    """The backup's `flock` on the index's .lock is the lock every ingest takes (the filelock package's flock):
    while it is held, an ingest waits, and gives up after RAG_LOCK_TIMEOUT."""
    said = shell.run('flock "$RAG_INDEX_DIR/.lock" sh -c \'RAG_LOCK_TIMEOUT=1 rag ingest; echo "exit $?"\' 2>&1')
    assert "still holds the index lock" in said and said.strip().endswith("exit 2"), said


def check_each_client_is_counted_apart(place: Place) -> None:
    """nginx passes each client's address (X-Forwarded-For) and rag serve trusts it from the proxy: one address's
    wrong tokens get it 429, while another address is still only told that its token is wrong."""
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2", verify=False), timeout=30)
    api = f"https://127.0.0.1:{place.ports['api_https']}"  # IPv4, as the address it leaves from
    with other:
        statuses: list[int] = []
        while 429 not in statuses and len(statuses) < 40:  # the limit counts per replica, or in the database
            statuses.append(other.get(api + "/v1/info", headers=bearer("rag_wrong")).status_code)
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}, statuses
    with httpx.Client(verify=place.tls(), timeout=30) as web:
        assert web.get(place.api + "/v1/info", headers=bearer("rag_wrong")).status_code == 401


def lose_the_index_and_the_database(place: Place, cluster, url: str) -> None:
    """What the backup is for: the index folder damaged, the database gone (made again, empty)."""
    (place.index / "manifest.json").unlink()
    name = url.rsplit("/", 1)[1]
    cluster.drop_database(name)
    cluster.create_database(name)


def check_the_restore(place: Place, shell: Shell, token: str, said: str) -> None:
    """The restored dump keeps the token and the people; the restored index answers; the damaged folder is
    kept aside."""
    check_tokens_on_every_replica(place, token)
    with httpx.Client(verify=place.tls(), timeout=60) as web:
        asked = web.post(place.api + "/v1/ask", json={"question": QUESTION}, headers=bearer(token))
        assert asked.status_code == 200 and asked.json()["citations"], asked.text
        assert len(web.get(place.api + "/v1/sources", headers=bearer(token)).json()["sources"]) == 1
    assert "smoke-check" in said  # `rag token list` after pg_restore
    assert '"name": "ada"' in shell.run("rag user list --json")
    assert list(place.index.parent.glob("vectorstore.before-restore-*"))
