"""Test fixtures shared by every area.

Every test that uses ``app`` runs twice: on a SQLite file and on PostgreSQL. Both databases are
built by the real migrations. PostgreSQL and Redis are ``TEST_DATABASE_URL`` and ``REDIS_URL`` when
set, otherwise the servers answering on their default local ports (127.0.0.1:5432 and 6379), if any.
Outside CI a missing PostgreSQL, Redis, Chromium or nginx skips those tests with a plain reason; in
CI it fails them.
"""
from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from expertbook import create_app
from expertbook.extensions import db



def _answers(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    """Whether something accepts TCP connections on ``host:port`` (a quick probe, bounded by ``timeout``)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _local_service(variable: str, port: int, url: str) -> tuple[str | None, str]:
    """``variable``'s value if set, else ``url`` when a server answers on 127.0.0.1:``port``; and where it came from."""
    if os.environ.get(variable):
        return os.environ[variable], variable
    if _answers(port):
        return url, f"found on 127.0.0.1:{port}; {variable} overrides"
    return None, f"none: set {variable}, or run one on 127.0.0.1:{port}"


# Connected to only to create and drop each run's own database: the maintenance database every
# PostgreSQL cluster has, as the current OS user (as psql would).
TEST_DATABASE_URL, _POSTGRES_SOURCE = _local_service("TEST_DATABASE_URL", 5432, f"postgresql://{getpass.getuser()}@127.0.0.1:5432/postgres")
REDIS_URL, _REDIS_SOURCE = _local_service("REDIS_URL", 6379, "redis://127.0.0.1:6379/0")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
# In CI nothing may be skipped for want of a service: a skip there would hide a failure.
REQUIRE_ALL = os.environ.get("CI", "").lower() in {"1", "true", "yes"} or os.environ.get("EXPERTBOOK_REQUIRE_ALL") == "1"

_skipped_parts: dict[str, str] = {}


def missing(part: str, reason: str):
    """Skip (or, in CI, fail) a test because ``part`` is not available here."""
    if REQUIRE_ALL:
        pytest.fail(f"{part} is required in CI but {reason}")
    _skipped_parts[part] = reason
    pytest.skip(f"{part}: {reason}")


def pytest_report_header(config):
    lines = [f"SQLite: always; PostgreSQL: {TEST_DATABASE_URL or '-'} ({_POSTGRES_SOURCE})"]
    lines.append(f"Redis: {REDIS_URL or '-'} ({_REDIS_SOURCE})")
    lines.append(f"Chromium: {CHROMIUM if shutil.which(CHROMIUM) else 'not installed'}; nginx: {NGINX or 'not installed'}")
    return lines


def pytest_terminal_summary(terminalreporter):
    if _skipped_parts:
        terminalreporter.section("parts not tested on this machine")
        for part, reason in sorted(_skipped_parts.items()):
            terminalreporter.write_line(f"SKIPPED all {part} tests: {reason}")


# ---------------------------------------------------------------------------- redis


def redis_database(number: int):
    """Yield the URL of database ``number`` of the test Redis server, emptied before and after.

    Each area's Redis tests own one database number, so parallel runs never flush each other's
    keys. Skips (fails in CI) without ``REDIS_URL`` or when the server does not answer.
    """
    from urllib.parse import urlsplit, urlunsplit

    from redis import Redis

    if not REDIS_URL:
        missing("Redis", _REDIS_SOURCE)
    parts = urlsplit(REDIS_URL)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{number}", "", ""))
    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except Exception as exc:
        missing("Redis", f"{url} is unreachable: {exc}")
    yield url
    client.flushdb()
    client.close()


# ---------------------------------------------------------------------------- databases


def _migrate(url: str) -> None:
    from flask_migrate import upgrade

    app = create_app(_test_config(url))
    with app.app_context():
        upgrade()
        db.session.remove()
        db.engine.dispose()


def _test_config(url: str, **extra) -> dict:
    config = {
        "TESTING": True,
        "PRODUCTION": False,
        "SECRET_KEY": "test-secret-key",
        "SQLALCHEMY_DATABASE_URI": url,
        "REDIS_URL": None,
        "RUN_JOBS_INLINE": True,
        "MAIL_SERVER": None,
        "MAIL_BACKEND": "log",  # no SMTP unless a test sets MAIL_SERVER (production refuses this unless said so)
        "RATELIMIT_STORAGE_URI": "memory://",
        "BASE_URL": "http://testserver.example",
        "SESSION_COOKIE_SECURE": False,
        # The padding of answers that must not reveal accounts; its own tests set it.
        "ACCOUNT_ANSWER_SECONDS": 0.0,
    }
    config.update(extra)
    return config


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    """A SQLite file built once by the migrations; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    _migrate(f"sqlite:///{path}")
    return str(path)


@contextmanager
def throwaway_postgres(label: str = "test") -> Iterator[str | None]:
    """A new PostgreSQL database beside ``TEST_DATABASE_URL``, built by the migrations, dropped on exit.

    Yields its URL; ``None`` when no PostgreSQL is configured or found; or a one-line
    ``"unavailable: ..."`` reason when the server refuses to create it.
    """
    if not TEST_DATABASE_URL:
        yield None
        return
    from expertbook.config import normalise_database_url

    admin_url = make_url(normalise_database_url(TEST_DATABASE_URL))
    name = f"expertbook_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # the server is down or refuses us
        admin.dispose()
        yield f"unavailable: {exc.__class__.__name__}: {exc}".splitlines()[0]
        return
    try:
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        _migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A PostgreSQL database of this test run, built by the migrations, dropped at the end."""
    with throwaway_postgres() as url:
        yield url


def require_postgres(url: str | None) -> str:
    """``url`` from :func:`throwaway_postgres`, or skip (fail in CI) saying why there is none."""
    if url is None:
        missing("PostgreSQL", _POSTGRES_SOURCE)
    if url.startswith("unavailable:"):
        missing("PostgreSQL", url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, sqlite_template, postgres_url) -> Iterator[str]:
    """The URL of an empty, migrated database of each kind in turn."""
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite3"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    yield require_postgres(postgres_url)
    _truncate_all(postgres_url)


def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def app_config() -> dict:
    """Extra configuration for the ``app`` fixture; override in a test module to change it."""
    return {}


@pytest.fixture
def app(database_url, app_config):
    """An application on a fresh database, with an application context pushed."""
    application = create_app(_test_config(database_url, **app_config))
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def backend(database_url) -> str:
    """``"sqlite"`` or ``"postgresql"``: which database this run of the test uses."""
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


# ---------------------------------------------------------------------------- clients


class Client(FlaskClient):
    """A test client that knows how to send the CSRF token like a browser (and htmx) does."""

    def open(self, *args, **kwargs):
        # Each request gets its own application context (and so its own ``g`` and database
        # session), as in production; otherwise it would reuse the one the test pushed.
        with self.application.app_context():
            return super().open(*args, **kwargs)

    def csrf_token(self, path: str = "/") -> str:
        """The CSRF token of this client's session, read from a page as a browser would."""
        page = self.get(path)
        match = re.search(r'"X-CSRFToken": "([^"]+)"', page.get_data(as_text=True))
        assert match, f"no CSRF token on {path} (status {page.status_code})"
        return match.group(1)

    def post_form(self, url: str, data: dict | None = None, htmx: bool = False, **kwargs):
        """POST a form with a valid CSRF token (as a header when ``htmx``, as a field otherwise)."""
        data = dict(data or {})
        token = self.csrf_token()
        headers = dict(kwargs.pop("headers", {}) or {})
        if htmx:
            headers.update({"HX-Request": "true", "X-CSRFToken": token})
        else:
            data.setdefault("csrf_token", token)
        return self.post(url, data=data, headers=headers, **kwargs)


@pytest.fixture
def client(app) -> Client:
    app.test_client_class = Client
    return app.test_client()


@pytest.fixture
def make_client(app):
    """Make further independent clients (browsers) for the same app."""

    def _make() -> Client:
        app.test_client_class = Client
        return app.test_client()

    return _make


# ---------------------------------------------------------------------------- servers and browsers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server(app):
    """The app served over real HTTP on loopback in a background thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


GUNICORN_SECRET_KEY = "test-secret-key"  # the same key as the ``app`` fixture, so tests can sign API tokens
ROOT = Path(__file__).resolve().parent.parent


class Process:
    """A server process a test started, in its own process group, with its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict, log_path: Path, cwd: Path = ROOT):
        self.name = name
        self.log_path = log_path
        self.killed = False  # by the test, on purpose
        self._log = open(log_path, "w+b")
        # Its own session (process group), so that a test can kill it with all its children at once.
        self.process = subprocess.Popen(args, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self, last: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_bytes().decode(errors="replace")[-last:]

    def check_alive(self) -> None:
        """Fail the test, with the process's output, if it has exited (unless the test killed it)."""
        if self.process.poll() is not None and not self.killed:
            pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup, as when a machine dies."""
        self.killed = True
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM (a graceful stop), then SIGKILL to the group after ``timeout`` seconds."""
        stop_all([self], timeout)


def stop_all(processes: list[Process], timeout: float = 15) -> None:
    """Stop ``processes`` together: SIGTERM to each, then SIGKILL to each group still there after ``timeout`` seconds."""
    for server in processes:
        if server.process.poll() is None:
            server.process.terminate()
    deadline = time.monotonic() + timeout
    for server in processes:
        try:
            server.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            pass
        killed = server.killed
        server.kill()  # also whatever the main process left behind in its group
        server.killed = killed
        server._log.close()


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 30, watch: tuple[Process, ...] = ()) -> None:
    """Poll ``ready`` until it is true; fail after ``timeout`` seconds or as soon as a watched process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in watch:
            process.check_alive()
        if ready():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} within {timeout:.0f} seconds")


class RedisServer:
    """A ``redis-server`` of one test alone, on a free loopback port, with no persistence at all:
    stopping it (SIGKILL, as a crash) loses every key, as a restart of an unpersisted Redis does."""

    def __init__(self, directory: Path):
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        from redis import Redis

        log = open(self.directory / "redis.log", "ab")
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        client = Redis.from_url(self.url, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return client.ping()
            except Exception:
                return False

        wait_until(answers, "redis-server answers", 15)
        client.close()

    def stop(self) -> None:
        """SIGKILL: nothing is saved, nothing is said to the clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    """A running :class:`RedisServer` of this test (the fault tests stop and start it)."""
    if not shutil.which("redis-server"):
        missing("redis-server", "the redis-server binary is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def answers_http(url: str, verify: bool | str = True) -> Callable[[], bool]:
    """A probe for :func:`wait_until`: whether ``GET url`` answers 200 (``verify``: a CA file for HTTPS)."""
    import requests

    session = requests.Session()
    session.trust_env = False  # loopback: no proxy, and ``verify`` rather than a CA bundle from the environment

    def probe() -> bool:
        try:
            return session.get(url, timeout=2, verify=verify).status_code == 200
        except requests.RequestException:
            return False

    return probe


def app_environment(database_url: str, **settings: str) -> dict[str, str]:
    """The environment of an app process (gunicorn, a worker) in production mode on ``database_url``.

    Starts from this process's environment without its Redis, mail and throttle settings, so only
    what ``settings`` gives reaches the app.
    """
    environment = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "RATELIMIT_STORAGE_URI", "MAIL_SERVER"}}
    environment.update(
        {
            "EXPERTBOOK_ENV": "production",
            "SECRET_KEY": GUNICORN_SECRET_KEY,
            "DATABASE_URL": database_url,
            "PYTHONUNBUFFERED": "1",
            "FLASK_SKIP_DOTENV": "1",  # .flaskenv selects development mode for local use
            "MAIL_BACKEND": "log",  # without MAIL_SERVER in settings, emails go to the log (production wants it said)
        }
    )
    environment.update(settings)
    return environment


def start_gunicorn(database_url: str, log_dir: Path, workers: int = 3, env: dict | None = None, args: tuple[str, ...] = ()) -> tuple[Process, str]:
    """Start ``gunicorn wsgi:app`` on a free loopback port on ``database_url``; wait for ``/healthz``; return it and its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = app_environment(database_url, BASE_URL=url, **(env or {}))
    command = [sys.executable, "-m", "gunicorn", *args, "-w", str(workers), "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", "wsgi:app"]
    server = Process(f"gunicorn on port {port}", command, environment, log_dir / f"gunicorn-{port}.log")
    try:
        wait_until(answers_http(url + "/healthz"), "gunicorn did not answer /healthz", timeout=60, watch=(server,))
    except BaseException:
        server.stop()
        raise
    return server, url


@pytest.fixture
def gunicorn_server(database_url, tmp_path) -> Iterator[Callable[..., str]]:
    """Start the app under a real multi-process gunicorn on this test's database; yields ``start``.

    ``start(workers=3, env=None)`` launches ``gunicorn -w <workers> wsgi:app`` on a free loopback port
    in production mode with ``DATABASE_URL`` pointing at the test's database (the same SQLite file or
    PostgreSQL database the ``app`` fixture uses), waits until ``/healthz`` answers and returns the
    base URL. ``SECRET_KEY`` is the ``app`` fixture's, so ``app`` can sign bearer tokens for it.
    Data the test writes must be committed before the server can see it. Every server is stopped
    at the end of the test.
    """
    started: list[Process] = []

    def start(workers: int = 3, env: dict | None = None) -> str:
        server, url = start_gunicorn(database_url, tmp_path, workers, env)
        started.append(server)
        return url

    yield start
    stop_all(started)


@pytest.fixture(scope="session")
def _playwright():
    if not shutil.which(CHROMIUM):
        yield None
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def chromium(_playwright):
    """Debian's Chromium, driven by Playwright."""
    if _playwright is None:
        missing("browser (Chromium)", f"{CHROMIUM} is not installed (apt-get install chromium)")
    browser = _playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    )
    yield browser
    browser.close()


class PageProblems:
    """Console errors, CSP violations and failed requests seen by a page."""

    def __init__(self):
        self.items: list[str] = []

    # Chromium logs every 4xx answer as a console error; 409 and 422 are the app's intended
    # answers to conflicts and invalid forms, which the page then shows to the person.
    EXPECTED = re.compile(r"Failed to load resource: the server responded with a status of (409|422)")

    def _console(self, msg, also_expected: re.Pattern | None = None) -> None:
        if msg.type != "error" or self.EXPECTED.search(msg.text):
            return
        if also_expected is not None and also_expected.search(msg.text):
            return
        self.items.append(f"console: {msg.text} at {msg.location.get('url')}")

    def watch(self, page, also_expected: str | None = None):
        pattern = re.compile(also_expected) if also_expected else None
        page.on("console", lambda msg: self._console(msg, pattern))
        page.on("pageerror", lambda exc: self.items.append(f"page error: {exc}"))
        return page


@pytest.fixture
def browser_page(chromium):
    """A fresh browser context and page; fails the test if the page logged errors or CSP violations.

    ``new_page(**context_options)`` passes its options to the browser context (``viewport=...``);
    ``also_expected`` is a regular expression of console errors the test itself causes on purpose.
    Each document also keeps its CSP violations in ``window.__cspViolations`` (see tests/browser.py),
    and the test-only path tests.browser.AXE_PATH answers with the vendored axe-core.
    """
    from tests.browser import serve_axe

    problems = PageProblems()
    contexts = []

    def new_page(also_expected: str | None = None, **context_options):
        context = chromium.new_context(**context_options)
        # Chromium reports CSP violations as console errors; this makes sure each one is seen by name.
        context.add_init_script(
            "window.__cspViolations = [];"
            "document.addEventListener('securitypolicyviolation', e => {"
            " window.__cspViolations.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline'));"
            " console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + e.blockedURI); })"
        )
        contexts.append(context)
        page = problems.watch(context.new_page(), also_expected)
        page.set_default_timeout(15000)
        serve_axe(page)
        return page

    yield new_page
    for context in contexts:
        context.close()
    assert not problems.items, "the browser reported problems:\n" + "\n".join(problems.items)
