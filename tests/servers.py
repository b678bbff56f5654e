"""Real Redis, PostgreSQL and S3 (moto) servers for the test suite.

Each ``start_*`` launches one server on a free 127.0.0.1 port with a throw-away data directory, waits until
it answers, and returns its URL. Servers stop when ``stop_all()`` runs (the conftest fixtures and ``atexit``
call it). A small reaper process also watches this interpreter: if it dies without cleaning up (SIGKILL, a
hard crash), the reaper kills the servers and removes their data directories, so nothing outlives the session.

The environment can point at servers that are already running instead:
``FTAAS_TEST_REDIS_URL``, ``FTAAS_TEST_DATABASE_URL``, ``FTAAS_TEST_S3_ENDPOINT``.

A missing server binary is an error that says how to install it, never a skip: a suite that silently skips its
integration tests would go green without testing anything.
"""

from __future__ import annotations

import atexit
import glob
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "ServerUnavailable",
    "free_port",
    "server_at",
    "start_moto",
    "start_postgres",
    "start_redis",
    "stop_all",
]

READY_TIMEOUT_S = 60.0


class ServerUnavailable(RuntimeError):
    """A test server could not be found or started; the message says what to do."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------------------------------------
# Process bookkeeping

# Runs as a separate process reading commands on stdin. EOF means the test process is gone: clean up after it.
_REAPER = r"""
import os, shutil, signal, sys, time
procs, dirs = {}, set()
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "proc":
        procs[int(args[0])] = int(args[1])
    elif cmd == "dir":
        dirs.add(args[0])
    elif cmd == "forget-proc":
        procs.pop(int(args[0]), None)
    elif cmd == "forget-dir":
        dirs.discard(args[0])
for pgid, sig in procs.items():
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass
def alive(pid):
    # Orphans become zombies of a PID 1 that may never reap them: a zombie counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
deadline = time.monotonic() + 10
while procs and time.monotonic() < deadline:
    for pgid in list(procs):
        if not alive(pgid):
            procs.pop(pgid)
    time.sleep(0.1)
for pgid in procs:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
for d in dirs:
    shutil.rmtree(d, ignore_errors=True)
"""

_lock = threading.Lock()
_reaper: subprocess.Popen[str] | None = None
_servers: list[Server] = []


def _tell_reaper(line: str) -> None:
    global _reaper
    with _lock:
        if _reaper is None or _reaper.poll() is not None:
            _reaper = subprocess.Popen(
                [sys.executable, "-c", _REAPER],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C on the terminal must not kill it before it can clean up
                text=True,
            )
        assert _reaper.stdin is not None
        _reaper.stdin.write(line + "\n")
        _reaper.stdin.flush()


@dataclass
class Server:
    """One running server process, started in its own session so its whole process group can be signalled."""

    name: str
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    stop_signal: int = signal.SIGTERM
    started_in_s: float = 0.0
    _stopped: bool = field(default=False, repr=False)
    # How to start it again on the same port and data (halt/restart, for the fault suites in tests/faults/)
    _argv: list[str] = field(default_factory=list, repr=False)
    _user: str | None = field(default=None, repr=False)
    _env: dict[str, str] | None = field(default=None, repr=False)
    _ready: Callable[[], bool] | None = field(default=None, repr=False)

    def halt(self, timeout: float = 10.0) -> None:
        """Stop the process the way ``stop`` does but keep its data directory, so ``restart`` brings it back."""
        self._terminate(timeout)
        _tell_reaper(f"forget-proc {self.proc.pid}")

    def _terminate(self, timeout: float) -> None:
        _signal_group(self.proc, self.stop_signal)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.proc, signal.SIGKILL)
            self.proc.wait(timeout)
        _signal_group(self.proc, signal.SIGKILL)  # stragglers, e.g. postgres backends of a killed postmaster

    def restart(self) -> None:
        """Start the halted server again with the same command line, port and data; returns once it answers."""
        assert self.proc.poll() is not None and self._ready is not None, "halt() it first"
        self.proc = _popen(self._argv, self.workdir, self.workdir / f"{self.name}.log", self._user, self._env)
        _tell_reaper(f"proc {self.proc.pid} {int(self.stop_signal)}")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise ServerUnavailable(f"{self.name} did not restart:\n{_log_tail(self.workdir / f'{self.name}.log')}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._terminate(timeout)
        shutil.rmtree(self.workdir, ignore_errors=True)
        _tell_reaper(f"forget-proc {self.proc.pid}")
        _tell_reaper(f"forget-dir {self.workdir}")


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all() -> None:
    """Stop every server this process started (idempotent)."""
    global _reaper
    while _servers:
        _servers.pop().stop()
    with _lock:
        if _reaper is not None and _reaper.stdin is not None:
            _reaper.stdin.close()  # EOF: the reaper finds nothing left to do and exits
            _reaper.wait(15)
            _reaper = None


atexit.register(stop_all)


def _make_workdir(name: str) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix=f"ftaas-test-{name}-"))
    _tell_reaper(f"dir {workdir}")
    return workdir


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _launch(
    name: str,
    argv: list[str],
    workdir: Path,
    ready: Callable[[], bool],
    *,
    url: str,
    port: int,
    stop_signal: int = signal.SIGTERM,
    user: str | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """Start ``argv``, wait until ``ready()`` holds and register the server; raise with its log if it dies."""
    log_path = workdir / f"{name}.log"
    started = time.monotonic()
    proc = _popen(argv, workdir, log_path, user, env)
    _tell_reaper(f"proc {proc.pid} {int(stop_signal)}")
    server = Server(name, url, port, proc, workdir, stop_signal, _argv=argv, _user=user, _env=env, _ready=ready)
    deadline = started + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            server.stop()
            raise ServerUnavailable(
                f"{name} exited with code {proc.returncode} during start-up:\n{_log_tail(log_path)}"
            )
        if ready():
            break
        if time.monotonic() > deadline:
            tail = _log_tail(log_path)
            server.stop()
            raise ServerUnavailable(f"{name} did not become ready within {READY_TIMEOUT_S:.0f}s:\n{tail}")
        time.sleep(0.05)
    server.started_in_s = time.monotonic() - started
    _servers.append(server)
    return server


def _popen(
    argv: list[str], workdir: Path, log_path: Path, user: str | None, env: dict[str, str] | None
) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            env=env,
        )


def server_at(url: str) -> Server:
    """The running server this process started that answers at ``url`` (matched by port)."""
    port = int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    return next(s for s in _servers if s.port == port)


def _with_port_retries(start: Callable[[int], Server], attempts: int = 3) -> Server:
    """Another process can take a free port between our probe and the server's bind: retry on a new one."""
    for attempt in range(attempts):
        try:
            return start(free_port())
        except ServerUnavailable:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------------------------------------
# Redis


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(*, dedicated: bool = False, persistent: bool = False) -> str:
    """A Redis URL: ``FTAAS_TEST_REDIS_URL`` if set (and not ``dedicated``), else a fresh ``redis-server``.

    ``persistent`` turns on the append-only file (fsync on every write), as a production broker runs, so the
    queues survive a restart (``server_at(url).halt()`` / ``.restart()``).
    """
    if not dedicated and (url := os.environ.get("FTAAS_TEST_REDIS_URL")):
        return url
    binary = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)), None
    )
    if binary is None:
        raise ServerUnavailable(
            "redis-server not found. Install it with `apt-get install -y redis-server` "
            "(scripts/ensure-system-deps does this) or set FTAAS_TEST_REDIS_URL to a running server."
        )

    def start(port: int) -> Server:
        workdir = _make_workdir("redis")
        aof = "--appendonly yes --appendfsync always" if persistent else "--appendonly no"
        flags = f"--port {port} --bind 127.0.0.1 {aof} --daemonize no --protected-mode no"
        argv = [binary, *flags.split(), "--dir", str(workdir), "--save", ""]
        return _launch(
            "redis", argv, workdir, lambda: _redis_ping(port), url=f"redis://127.0.0.1:{port}/0", port=port
        )

    return _with_port_retries(start).url


# ----------------------------------------------------------------------------------------------------------
# PostgreSQL


def _postgres_bindir() -> Path | None:
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]), reverse=True
    )
    return Path(candidates[0]).parent if candidates else None


def _postgres_connect(port: int, dbname: str = "postgres") -> psycopg.Connection[Any]:
    import psycopg

    return psycopg.connect(
        host="127.0.0.1", port=port, user="postgres", dbname=dbname, connect_timeout=2, autocommit=True
    )


def start_postgres(database: str = "ftaas_test", *, dedicated: bool = False) -> str:
    """A SQLAlchemy URL: ``FTAAS_TEST_DATABASE_URL`` if set, else a fresh cluster with database ``database``.

    PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` user (the Debian
    package creates it). Durability is switched off: the data is thrown away anyway. ``dedicated`` ignores
    ``FTAAS_TEST_DATABASE_URL``: a fault test that stops its cluster (``server_at(url).halt()``) needs its own.
    """
    if not dedicated and (url := os.environ.get("FTAAS_TEST_DATABASE_URL")):
        return url
    bindir = _postgres_bindir()
    if bindir is None or not (bindir / "postgres").exists():
        raise ServerUnavailable(
            "PostgreSQL server binaries (initdb, postgres) not found. Install them with "
            "`apt-get install -y postgresql` (scripts/ensure-system-deps does this) "
            "or set FTAAS_TEST_DATABASE_URL to a running server."
        )
    if importlib.util.find_spec("psycopg") is None:
        raise ServerUnavailable(
            "psycopg is not installed: `pip install 'psycopg[binary]'` (a project dependency)."
        )
    user = None
    if os.geteuid() == 0:
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise ServerUnavailable(
                "running as root, but there is no 'postgres' user to run PostgreSQL as "
                "(`apt-get install -y postgresql` creates it), or set FTAAS_TEST_DATABASE_URL."
            ) from None
        user = "postgres"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

    def start(port: int) -> Server:
        workdir = _make_workdir("postgres")
        if user is not None:
            os.chown(workdir, owner.pw_uid, owner.pw_gid)
        data = workdir / "data"
        initdb_flags = "-U postgres --auth=trust --encoding=UTF8 --locale=C --no-sync"
        initdb = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), *initdb_flags.split()],
            cwd=workdir,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if initdb.returncode != 0:
            shutil.rmtree(workdir, ignore_errors=True)
            raise ServerUnavailable(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}")
        settings = ["listen_addresses=127.0.0.1", "fsync=off", "synchronous_commit=off",
                    "full_page_writes=off", "max_connections=200"]  # fmt: skip
        argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(workdir)]
        argv += [arg for setting in settings for arg in ("-c", setting)]

        def ready() -> bool:
            try:
                _postgres_connect(port).close()
                return True
            except Exception:
                return False

        # SIGINT is PostgreSQL's "fast" shutdown: it doesn't wait for clients (tests may leak pools) to leave.
        return _launch(
            "postgres",
            argv,
            workdir,
            ready,
            url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/",
            port=port,
            stop_signal=signal.SIGINT,
            user=user,
            env=env,
        )

    server = _with_port_retries(start)
    with _postgres_connect(server.port) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    server.url = f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/{database}"
    return server.url


# ----------------------------------------------------------------------------------------------------------
# S3 (moto)


def _http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False


def start_moto(*, dedicated: bool = False) -> str:
    """An S3 endpoint URL: ``FTAAS_TEST_S3_ENDPOINT`` if set (and not ``dedicated``), else a fresh ``moto.server``."""
    if not dedicated and (url := os.environ.get("FTAAS_TEST_S3_ENDPOINT")):
        return url
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise ServerUnavailable(
            "moto's server is not installed. Install it with `pip install 'moto[server]'` "
            "(the project's dev extra has it) or set FTAAS_TEST_S3_ENDPOINT to a running S3 endpoint."
        )

    def start(port: int) -> Server:
        workdir = _make_workdir("moto")
        endpoint = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        return _launch(
            "moto", argv, workdir, lambda: _http_answers(endpoint + "/moto-api/"), url=endpoint, port=port
        )

    return _with_port_retries(start).url


def started_servers() -> list[Server]:
    """The servers this process started, with their start-up times (for reports)."""
    return list(_servers)
