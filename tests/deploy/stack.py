"""The docker compose deployment, run without Docker: the same commands and settings, local services.

:func:`read_compose` parses ``docker-compose.yml`` (YAML anchors resolved) into each service's command,
environment and replica count. :class:`Stack` starts the ``migrate`` service's command, then the ``api``
and ``worker`` ones as subprocesses of this virtual environment, with their environment pointed at a
local PostgreSQL database and Redis: every URL whose host is a compose service (``postgres``, ``redis``)
is replaced by the local one, and the API listens on 127.0.0.1 on a free port. :class:`RedisServer` and
:class:`PostgresCluster` are private servers the fault tests may stop and restart without disturbing
anything else on the machine.

Every process is a :class:`tests.processes.Process`: a process group of its own that receives SIGKILL if
the process that started it dies, so a crashed or interrupted test leaves nothing running; ``close``
kills whole groups. Logs go to files in the stack's work folder; :meth:`Stack.logs` gathers them for
failure messages.

Usage::

    with RedisServer(workdir) as redis, Stack(database_url, redis.url, workdir) as stack:
        stack.start()
        httpx.get(stack.api_url + "/readyz")
        stack.kill("worker-1")          # kill -9
        stack.start_process("worker-1")
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import redis
import yaml
from psycopg import sql

from service.services.identity import generate as generate_key
from tests.processes import Process, ProcessError, as_user, free_port, wait_until
from tests.timing import STARTUP_S, limit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# The console scripts of the environment the tests run in.
BIN_DIR = Path(sys.executable).parent

# Fast timings, so that a lost worker is noticed and a job resumed within seconds. The heartbeat
# timeout and the grace at shutdown scale with the tests' bounds: on a slow machine a live run may be
# silent for longer, and must not be taken for lost.
FAST_TIMINGS = {
    "DESCENT_HEARTBEAT_TIMEOUT_S": f"{limit(4):g}",
    "DESCENT_PROGRESS_INTERVAL_S": "0.1",
    "DESCENT_CHECKPOINT_INTERVAL_S": "0.3",
    "DESCENT_SHUTDOWN_GRACE_S": f"{limit(5):g}",
    "DESCENT_REDISPATCH_AFTER_S": "2",
    "DESCENT_LOG_LEVEL": "info",
}
# A line a Celery worker logs at level info about a task message it received or finished.
_TASK_LINE = re.compile(r"Task \S+\[(?P<id>[0-9a-f-]+)\] (?P<what>received|succeeded|failed|raised|retry)")


class StackError(ProcessError):
    """A process of the stack did not start or stop as expected (the message holds its log)."""


# --- docker-compose.yml -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComposeService:
    """What a compose service runs: its command, its environment and how many replicas."""

    name: str
    command: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    replicas: int = 1


def read_compose(path: Path = COMPOSE_FILE) -> dict[str, ComposeService]:
    """The services of a compose file by name (anchors and ``<<`` merge keys resolved by PyYAML)."""
    document = yaml.safe_load(path.read_text())
    services: dict[str, ComposeService] = {}
    for name, spec in (document.get("services") or {}).items():
        command = spec.get("command") or []
        if isinstance(command, str):
            command = command.split()
        environment = spec.get("environment") or {}
        if isinstance(environment, list):  # the "KEY=value" form
            environment = dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
        replicas = int(((spec.get("deploy") or {}).get("replicas")) or 1)
        services[name] = ComposeService(
            name,
            [str(part) for part in command],
            {str(k): "" if v is None else str(v) for k, v in environment.items()},
            replicas,
        )
    return services


_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """``value`` with compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}`` replaced from
    ``variables`` (as ``docker compose`` does from the shell and ``.env``)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        value = variables.get(name)
        if op in (":-", "-") and (value is None or (op == ":-" and value == "")):
            return arg
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise ValueError(f"compose variable {name} is required: {arg}")
        return value or ""

    return _VARIABLE.sub(one, value)


def localize_environment(
    environment: Mapping[str, str], service_names: set[str], *, database_url: str, broker_url: str
) -> dict[str, str]:
    """``environment`` with every URL that names a compose service replaced by the local equivalent.

    A ``postgresql...://`` URL becomes ``database_url`` and a ``redis://`` URL ``broker_url``; a URL of
    another scheme naming a service raises ``ValueError``, as does a database or broker URL naming a host
    that is no service of the file (the containers could not resolve it).
    """
    local: dict[str, str] = {}
    for key, value in environment.items():
        parts = urlsplit(value) if "://" in value else None
        host = parts.hostname if parts is not None else None
        if parts is None or host is None:
            local[key] = value
            continue
        if parts.scheme.startswith("postgresql"):
            replacement = database_url
        elif parts.scheme in ("redis", "rediss"):
            replacement = broker_url
        elif host in service_names:
            raise ValueError(f"{key}={value}: no local replacement for a {parts.scheme}:// service")
        else:
            local[key] = value
            continue
        if host not in service_names:
            raise ValueError(f"{key}={value}: host {host!r} is not a service of the compose file")
        local[key] = replacement
    return local


def _with_option(argv: list[str], option: str, value: str) -> list[str]:
    """``argv`` with ``option``'s value replaced (``--opt v`` or ``--opt=v``), or appended when absent."""
    out = list(argv)
    for i, part in enumerate(out):
        if part == option and i + 1 < len(out):
            out[i + 1] = value
            return out
        if part.startswith(option + "="):
            out[i] = f"{option}={value}"
            return out
    return [*out, option, value]


def _local_command(command: list[str]) -> list[str]:
    """The command with its executable taken from this environment's ``bin`` folder when it is there."""
    if not command:
        raise ValueError("the compose service has no command")
    executable = BIN_DIR / command[0]
    return [str(executable) if executable.exists() else command[0], *command[1:]]


# --- the stack ------------------------------------------------------------------------------------------


class Stack:
    """The compose file's ``api`` and ``worker`` services as local processes.

    Parameters
    ----------
    database_url : str
        The store every process uses (``postgresql+psycopg://...``).
    broker_url : str
        The Redis broker (``redis://127.0.0.1:<port>/0``).
    workdir : Path
        Folder for the processes' working directory and logs.
    workers : int, optional
        Worker processes; default: the compose file's ``worker`` replicas.
    env : dict, optional
        Variables set on top of the compose environment (e.g. :data:`FAST_TIMINGS`).
    compose_file : Path

    The compose file's ``${DESCENT_BOOTSTRAP_KEY}`` is a key made here (:attr:`api_key`; requests send
    :attr:`headers`), so the API runs with keys exactly as the file says.
    """

    def __init__(
        self,
        database_url: str,
        broker_url: str,
        workdir: Path,
        *,
        workers: int | None = None,
        env: Mapping[str, str] | None = None,
        compose_file: Path = COMPOSE_FILE,
    ) -> None:
        self.services = read_compose(compose_file)
        self.api_key = generate_key()[1]
        self.headers = {"Authorization": f"Bearer {self.api_key}"}
        self.variables = {"DESCENT_BOOTSTRAP_KEY": self.api_key}
        missing = {"api", "worker"} - set(self.services)
        if missing:
            raise ValueError(f"{compose_file} has no service named {sorted(missing)}")
        self.database_url, self.broker_url = database_url, broker_url
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        # Every API process by name: "api", and more from add_api.
        self.api_urls = {"api": self.api_url}
        self.extra_env = dict(env or {})
        if self.extra_env.get("DESCENT_LOG_LEVEL", "info") not in ("info", "debug"):
            # A worker is known to be ready by the line Celery logs at level info.
            raise ValueError(
                f"workers must log at info or debug, got {self.extra_env['DESCENT_LOG_LEVEL']!r}"
            )
        # Where each process's log stood when it was last started: readiness is looked for after it.
        self._log_mark: dict[str, int] = {}
        n_workers = self.services["worker"].replicas if workers is None else workers
        self.processes: dict[str, Process] = {}
        self.processes["api"] = self._process("api", self._api_command())
        for i in range(1, n_workers + 1):
            name = f"worker-{i}"
            # Containers have distinct host names; here one host runs them all, so name the nodes.
            command = _with_option(
                _local_command(self.services["worker"].command), "--hostname", f"{name}@%h"
            )
            self.processes[name] = self._process(name, command, service="worker")

    def add_api(self, name: str) -> str:
        """Another process of the ``api`` service on a port of its own (not started); its URL."""
        if not name.startswith("api-") or name in self.processes:
            raise ValueError(f"API process names start with 'api-' and are unique, got {name!r}")
        port = free_port()
        command = self._api_command()
        if "--port" in command or any(part.startswith("--port=") for part in command):
            command = _with_option(command, "--port", str(port))
        process = self._process(name, command, service="api")
        process.env["DESCENT_PORT"] = str(port)
        self.processes[name] = process
        self.api_urls[name] = f"http://127.0.0.1:{port}"
        return self.api_urls[name]

    @property
    def worker_names(self) -> list[str]:
        return [name for name in self.processes if name.startswith("worker-")]

    def environment(self, service: str) -> dict[str, str]:
        """The environment a service's process gets: the compose one, localized, plus ``env``."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("DESCENT_")}
        base["PATH"] = f"{BIN_DIR}{os.pathsep}{base.get('PATH', '')}"
        base["PYTHONUNBUFFERED"] = "1"
        compose = localize_environment(
            {k: interpolate(v, self.variables) for k, v in self.services[service].environment.items()},
            set(self.services),
            database_url=self.database_url,
            broker_url=self.broker_url,
        )
        return {
            **base,
            **compose,
            "DESCENT_HOST": "127.0.0.1",
            "DESCENT_PORT": str(self.port),
            **self.extra_env,
        }

    def _api_command(self) -> list[str]:
        command = _local_command(self.services["api"].command)
        if "--host" in command or any(part.startswith("--host=") for part in command):
            command = _with_option(command, "--host", "127.0.0.1")
        if "--port" in command or any(part.startswith("--port=") for part in command):
            command = _with_option(command, "--port", str(self.port))
        return command

    def _process(self, name: str, argv: list[str], service: str | None = None) -> Process:
        cwd = self.workdir / "run"
        cwd.mkdir(exist_ok=True)
        env = self.environment(service or name)
        return Process(name, argv, env=env, cwd=cwd, log_path=self.workdir / f"{name}.log")

    # --- life cycle

    def migrate(self, timeout: float = STARTUP_S) -> None:
        """Run the ``migrate`` service's command to completion (compose runs it before api and workers)."""
        if "migrate" not in self.services:
            return
        process = self._process("migrate", _local_command(self.services["migrate"].command))
        process.start()
        try:
            code = process.wait(timeout)
        finally:
            process.kill()
        if code != 0:
            raise StackError(f"migrate exited with {code}\n{process.tail()}")

    def start(self, timeout: float = STARTUP_S) -> Stack:
        """Migrate, start the API and every worker, and wait until all of them are ready."""
        self.migrate(timeout)
        for name in self.processes:
            self.start_process(name, wait=False)
        for name in self.processes:
            self.wait_started(name, timeout)
        return self

    def start_process(self, name: str, *, wait: bool = True, timeout: float = STARTUP_S) -> None:
        """Start (or start again) one process; with ``wait``, until it is ready."""
        process = self.processes[name]
        self._log_mark[name] = len(process.output())
        process.start()
        if wait:
            self.wait_started(name, timeout)

    def wait_started(self, name: str, timeout: float = STARTUP_S) -> None:
        """Until the API answers /readyz with 200, or the worker's Celery node says it is ready."""
        process = self.processes[name]
        if name == "api":
            self.wait_ready(timeout)
        elif name in self.api_urls:
            process.wait_for_http(self.api_urls[name] + "/readyz", timeout)
        else:
            process.wait_for_output(" ready.", timeout, after=self._log_mark.get(name, 0))

    def wait_ready(self, timeout: float = STARTUP_S) -> None:
        """Until GET /readyz answers 200."""
        api = self.processes["api"]

        def ready() -> bool:
            if not api.running:
                raise StackError(f"the API exited\n{api.tail()}")
            return self.readyz() == 200

        try:
            wait_until(ready, timeout, "GET /readyz answering 200", interval=0.1)
        except TimeoutError as exc:
            raise StackError(f"{exc}\n{self.logs()}") from None

    def readyz(self) -> int | None:
        """The status code of GET /readyz, or None when the API does not answer."""
        try:
            return httpx.get(self.api_url + "/readyz", timeout=5).status_code
        except httpx.TransportError:
            return None

    def kill(self, name: str) -> None:
        """``kill -9`` the process (its whole group)."""
        self.processes[name].kill()

    def terminate(self, name: str, timeout: float = STARTUP_S) -> int:
        """SIGTERM the process as ``docker stop`` does and wait for it to exit; its exit code."""
        process = self.processes[name]
        process.send(signal.SIGTERM)
        code = process.wait(timeout)
        process.kill()  # anything left in its group
        return code

    def running_tasks(self, name: str) -> set[str]:
        """Ids of the task messages the worker received since it last started and has not finished."""
        process = self.processes[name]
        running: set[str] = set()
        for match in _TASK_LINE.finditer(process.output()[self._log_mark.get(name, 0) :]):
            if match["what"] == "received":
                running.add(match["id"])
            else:
                running.discard(match["id"])
        return running

    def busy_worker(self, timeout: float = STARTUP_S) -> str:
        """The one running worker in the middle of a task, told by its log; ``StackError`` unless one is.

        A duplicate message (the reaper sends a queued job again while its first message is in flight)
        is received and finished by another worker at once: wait until exactly one worker has a task.
        """
        busy: list[str] = []

        def one_busy() -> bool:
            busy[:] = [n for n in self.worker_names if self.processes[n].running and self.running_tasks(n)]
            return len(busy) == 1

        try:
            wait_until(one_busy, timeout, "exactly one worker running a task", interval=0.05)
        except TimeoutError as exc:
            raise StackError(f"{exc}; busy: {busy}\n{self.logs()}") from None
        return busy[0]

    def logs(self, lines: int = 40) -> str:
        return "\n".join(process.tail(lines) for process in self.processes.values())

    def close(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL of its group); safe to call more than once."""
        for process in self.processes.values():
            with contextlib.suppress(Exception):
                process.stop(timeout=5)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --- private Redis and PostgreSQL -----------------------------------------------------------------------


def redis_unavailable_reason() -> str | None:
    """Why a private Redis cannot be started here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    return None


class RedisServer:
    """A private ``redis-server`` without persistence on a free port: a restart loses every message."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError(redis_unavailable_reason() or "")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--daemonize", "no", "--dir", str(self.workdir)]
        self.process = Process(
            "redis", argv, env=os.environ, cwd=self.workdir, log_path=self.workdir / "redis.log"
        )

    def start(self, timeout: float = STARTUP_S) -> RedisServer:
        self.process.start()
        try:
            wait_until(self.ping, timeout, f"redis-server on port {self.port} answering PING")
        except TimeoutError as exc:
            raise StackError(f"{exc}\n{self.process.tail()}") from None
        return self

    def ping(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)

    def kill(self) -> None:
        self.process.kill()

    def restart(self, downtime_s: float = 0.0) -> None:
        """Kill the server (its messages are lost) and start it again on the same port."""
        self.kill()
        time.sleep(downtime_s)
        self.start()

    def close(self) -> None:
        self.process.stop(timeout=5)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _postgres_bin_dir() -> Path | None:
    """The newest PostgreSQL server installation's bin folder (with initdb and postgres)."""

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def postgres_unavailable_reason() -> str | None:
    """Why a private PostgreSQL cluster cannot be started here, or None."""
    bindir = _postgres_bin_dir()
    if bindir is None or not (bindir / "postgres").exists():
        return "the PostgreSQL server binaries (initdb, postgres) are not installed"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no 'postgres' user to run PostgreSQL as"
    return None


class PostgresCluster:
    """A private PostgreSQL cluster (``initdb`` in a temporary folder) on a free port, that may be stopped.

    The server runs in the foreground as a :class:`Process` (as the ``postgres`` user when the tests run
    as root, since PostgreSQL refuses to run as root); :meth:`stop` is a fast shutdown, which disconnects
    every client, and :meth:`start` brings it back on the same port with the same data.
    """

    def __init__(self, port: int | None = None) -> None:
        reason = postgres_unavailable_reason()
        bindir = _postgres_bin_dir()
        if reason is not None or bindir is None:
            raise StackError(reason or "no PostgreSQL")
        self.bindir = bindir
        self.user = "postgres" if os.geteuid() == 0 else None
        self.port = port or free_port()
        # Not under pytest's tmp_path: the postgres user must be able to reach it.
        self.base = Path(tempfile.mkdtemp(prefix="descent-pg-"))
        self.datadir, self.sockdir = self.base / "data", self.base / "socket"
        self.sockdir.mkdir()
        if self.user is not None:
            for path in (self.base, self.sockdir):
                shutil.chown(path, self.user, self.user)
        init = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            cwd=self.base,
            check=False,
            **as_user(self.user),
        )
        if init.returncode != 0:
            shutil.rmtree(self.base, ignore_errors=True)
            raise StackError(f"initdb failed ({init.returncode}): {init.stderr.decode(errors='replace')}")
        argv = [
            str(bindir / "postgres"),
            "-D",
            str(self.datadir),
            "-p",
            str(self.port),
            "-k",
            str(self.sockdir),
        ]
        # Durability is not under test here; fsync off keeps the cluster fast on a busy machine.
        for setting in (
            "listen_addresses=127.0.0.1",
            "fsync=off",
            "synchronous_commit=off",
            "max_connections=200",
        ):
            argv += ["-c", setting]
        self.process = Process(
            "postgres",
            argv,
            env=os.environ,
            cwd=self.base,
            log_path=self.base / "postgres.log",
            user=self.user,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def ping(self) -> bool:
        try:
            with psycopg.connect(
                host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", connect_timeout=1
            ):
                return True
        except psycopg.Error:
            return False

    def start(self, timeout: float = STARTUP_S) -> PostgresCluster:
        self.process.start()
        try:
            wait_until(self.ping, timeout, f"PostgreSQL on port {self.port} accepting connections", 0.1)
        except TimeoutError as exc:
            raise StackError(f"{exc}\n{self.process.tail()}") from None
        return self

    def stop(self, timeout: float = STARTUP_S) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, the data stays."""
        self.process.send(signal.SIGINT)
        self.process.wait(timeout)

    def create_database(self, name: str | None = None) -> str:
        """Create a database and return its URL."""
        name = name or f"descent_{secrets.token_hex(4)}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def close(self) -> None:
        """Stop the server (immediately) and delete its files."""
        with contextlib.suppress(Exception):
            self.process.send(signal.SIGQUIT)
            self.process.wait(5)
        self.process.kill()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
