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
from argon2 import PasswordHasher
from argon2 import profiles as argon2_profiles
from flask.testing import FlaskClient
from jinja2 import BytecodeCache
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


# ---------------------------------------------------------------------------- parallel runs (pytest-xdist)

# Under ``make test`` pytest-xdist runs the tests in worker processes (``--dist loadgroup``), handing
# each worker one test at a time. Each worker has its own PostgreSQL database (``postgres_url``), SQLite
# files, Chromium and Redis databases (``redis_database``). The slowest tests go first, so the workers
# are not left waiting for one long test at the end: the fleet (one group), the every-page browser
# audit (the longest single tests), the tests that start servers (gunicorn, fault tests), the other
# browser tests, schemathesis, then the rest; each kind in its usual order.
def _cost_rank(item) -> int:
    fixtures = getattr(item, "fixturenames", ())
    slow_first = (
        item.get_closest_marker("fleet"),
        "test_every_page_at_360" in item.nodeid,
        item.get_closest_marker("faults") or "gunicorn_server" in fixtures,
        item.get_closest_marker("browser"),
        "test_schemathesis" in item.nodeid,
    )
    return next((rank for rank, slow in enumerate(slow_first) if slow), len(slow_first))


# Modules whose tests share an expensive module-scoped fixture: all their tests go to one worker, which
# builds the fixture once (the fleet: nginx, two gunicorns, two workers, Redis; a minute to start).
ONE_WORKER_MODULES = ("tests/test_fleet.py",)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` (as ``make test`` runs): one test at a time to whichever worker is free, except
    the tests of each of ONE_WORKER_MODULES, which go together to one worker.

    pytest-xdist's own loadgroup reads ``xdist_group`` marks through a node id suffix that pytest 9 no
    longer lets it set, so it quietly spread the fleet's tests over both workers, and each built a fleet.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneTestOrOneModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else nodeid

    return OneTestOrOneModule(config, log)


def pytest_collection_modifyitems(config, items):
    """Under xdist, start the slow tests first (see above); a run in one process keeps the usual order."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=_cost_rank)  # stable: each kind keeps its order


# ---------------------------------------------------------------------------- redis


# Each area's Redis tests own one database number below AREA_DATABASES (notifications 1, calendars 2, main 3, meetings 6).
# Under pytest-xdist, worker gwN uses number + N * AREA_DATABASES, so two workers never flush each
# other's keys: with the server's default 16 databases, gw0 gets 0-6 and gw1 7-13 (14 stays the
# bench's). A worker whose numbers the server does not have gets a redis-server of its own.
AREA_DATABASES = 7


def worker_index() -> int:
    """This pytest-xdist worker's number (``gw3`` is 3); 0 without xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


_worker_redis: list["RedisServer"] = []  # this worker's own redis-server, when the shared one is too small


def _private_redis_url(number: int) -> str:
    """Database ``number`` of a redis-server this worker starts once (and stops at the session's end)."""
    if not _worker_redis:
        if not shutil.which("redis-server"):
            missing("Redis", f"worker {worker_index()} needs Redis databases beyond those of {REDIS_URL}, "
                             "and no redis-server binary is installed to start one of its own (use fewer workers: -n)")
        import tempfile

        server = RedisServer(Path(tempfile.mkdtemp(prefix="expertbook-redis-")))
        server.start()
        _worker_redis.append(server)
    return f"redis://127.0.0.1:{_worker_redis[0].port}/{number}"


def redis_database(number: int):
    """Yield the URL of this test worker's Redis database for area ``number``, emptied before and after.

    Each area's Redis tests own one database number (below :data:`AREA_DATABASES`), so the areas never
    flush each other's keys, and each pytest-xdist worker has its own set of numbers (see above).
    Skips (fails in CI) without ``REDIS_URL`` or when the server does not answer.
    """
    from urllib.parse import urlsplit, urlunsplit

    from redis import Redis
    from redis.exceptions import ResponseError

    assert 0 <= number < AREA_DATABASES, f"area Redis databases are numbered 0-{AREA_DATABASES - 1}"
    if not REDIS_URL:
        missing("Redis", _REDIS_SOURCE)
    parts = urlsplit(REDIS_URL)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{number + worker_index() * AREA_DATABASES}", "", ""))
    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except ResponseError as exc:
        if "out of range" not in str(exc):  # "DB index is out of range": the server has fewer databases
            missing("Redis", f"{url} refuses: {exc}")
        client.close()
        url = _private_redis_url(number)
        client = Redis.from_url(url, socket_connect_timeout=2)
        client.flushdb()
    except Exception as exc:
        missing("Redis", f"{url} is unreachable: {exc}")
    yield url
    client.flushdb()
    client.close()


def pytest_sessionfinish(session):
    _drop_postgres_templates()
    for server in _worker_redis:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


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


# Per test process and server: a migrated database no one connects to, which later throwaway databases
# copy (CREATE DATABASE ... TEMPLATE) instead of running every migration again; dropped at the end.
_postgres_templates: dict[str, str] = {}


@contextmanager
def throwaway_postgres(label: str = "test") -> Iterator[str | None]:
    """A new PostgreSQL database beside ``TEST_DATABASE_URL``, built by the migrations, dropped on exit.

    The first of a test process runs the migrations and is then copied as that process's template;
    the next ones are copies of it (the same schema, ten times faster).

    Yields its URL; ``None`` when no PostgreSQL is configured or found; or a one-line
    ``"unavailable: ..."`` reason when the server refuses to create it.
    """
    if not TEST_DATABASE_URL:
        yield None
        return
    from expertbook.config import normalise_database_url

    admin_url = make_url(normalise_database_url(TEST_DATABASE_URL))
    server = admin_url.render_as_string(hide_password=False)
    template = _postgres_templates.get(server)
    name = f"expertbook_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    except Exception as exc:  # the server is down or refuses us
        admin.dispose()
        yield f"unavailable: {exc.__class__.__name__}: {exc}".splitlines()[0]
        return
    try:
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        if template is None:
            _migrate(url)
            template = f"expertbook_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            with admin.connect() as conn:  # nothing is connected to the new database yet: it can be copied
                conn.execute(text(f'CREATE DATABASE "{template}" TEMPLATE "{name}"'))
            _postgres_templates[server] = template
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _drop_postgres_templates() -> None:
    for server, template in _postgres_templates.items():
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)'))
        admin.dispose()
    _postgres_templates.clear()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A PostgreSQL database of this test run, built by the migrations, dropped at the end."""
    with throwaway_postgres() as url:
        yield url
        if url in _emptiers:
            _emptiers.pop(url).dispose()


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


_emptiers: dict[str, object] = {}  # one engine per database, kept for the session: a connection each time costs more than the emptying


def _truncate_all(url: str) -> None:
    """Empty every table of ``url`` and restart the sequences that were used, in one round trip.

    DELETE rather than TRUNCATE: on tables of a few rows TRUNCATE, which gives each table and index
    new files, takes about 100 times longer, and it runs after every PostgreSQL test. Children are
    emptied before their parents, so no foreign key is in the way.
    """
    if url not in _emptiers:
        _emptiers[url] = create_engine(url, pool_size=1)
    tables = ", ".join(f"'{t.name}'" for t in reversed(db.metadata.sorted_tables))
    with _emptiers[url].begin() as conn:
        conn.execute(text(f"""DO $$
DECLARE t text; s record;
BEGIN
  FOREACH t IN ARRAY ARRAY[{tables}]::text[] LOOP
    EXECUTE format('DELETE FROM %I', t);
  END LOOP;
  FOR s IN SELECT schemaname, sequencename FROM pg_sequences WHERE schemaname = current_schema() AND last_value IS NOT NULL LOOP
    EXECUTE format('ALTER SEQUENCE %I.%I RESTART', s.schemaname, s.sequencename);
  END LOOP;
END $$"""))


# ---------------------------------------------------------------------------- the cost of one app
# Every test builds its own app (twice: SQLite and PostgreSQL). Two pieces of that work give the same
# result every time, so they are done once per test process and shared:
#
# - werkzeug compiles two URL builders per route with ``compile()`` (about 80% of ``create_app``).
#   A builder's code depends only on the rule's text, its parsed parts, its default names and whether
#   unknown arguments are appended, so builders with those equal are shared. Rules whose defaults
#   fill in a part of the URL are compiled as usual (werkzeug folds the default into the code).
# - Jinja compiles each template on its first use in each app; the compiled code is kept in memory
#   under Jinja's own key (template name and a checksum of its source).


def _share_url_builders() -> None:
    from werkzeug.routing.rules import Rule

    compile_builder = Rule._compile_builder
    if getattr(compile_builder, "shared", False):
        return
    builders: dict[tuple, Callable] = {}

    def shared_builder(self, append_unknown: bool = True):
        defaults = self.defaults or {}
        if any(is_dynamic and data in defaults for is_dynamic, data in self._trace):
            return compile_builder(self, append_unknown)
        key = (self.rule, tuple(self._trace), tuple(str(name) for name in defaults), append_unknown)
        if key not in builders:
            builders[key] = compile_builder(self, append_unknown)
        return builders[key]

    shared_builder.shared = True
    Rule._compile_builder = shared_builder


_share_url_builders()


class _TemplateCodeCache(BytecodeCache):
    """A Jinja bytecode cache in this process's memory, shared by every app the tests create."""

    def __init__(self):
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        if bucket.key in self.code:
            bucket.bytecode_from_string(self.code[bucket.key])  # Jinja checks the source's checksum

    def dump_bytecode(self, bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


TEMPLATE_CODE = _TemplateCodeCache()


def make_test_app(config: dict):
    """``create_app(config)`` sharing the compiled templates of this test process (see above)."""
    application = create_app(config)
    application.jinja_env.bytecode_cache = TEMPLATE_CODE
    return application


# Argon2id at production strength costs about 0.2 s of CPU per hash or check (64 MiB, three passes),
# and the suite logs in and registers hundreds of times. Tests hash with argon2-cffi's cheapest
# parameters (still Argon2id, through the same functions); a test marked ``production_argon2`` (the
# hashing-strength test) runs with the app's own hasher. Server processes a test starts (gunicorn, the
# fleet, workers) always use the app's own.
TEST_HASHER = PasswordHasher.from_parameters(argon2_profiles.CHEAPEST)


@pytest.fixture(autouse=True)
def _test_password_cost(request, monkeypatch):
    from expertbook.auth import service as accounts
    from tests import factories

    if request.node.get_closest_marker("production_argon2"):
        factories._password_hash.cache_clear()  # made with the test hasher; this test hashes as the app does
        yield
        factories._password_hash.cache_clear()
        return
    monkeypatch.setattr(accounts, "hasher", TEST_HASHER)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", TEST_HASHER.hash("unknown account"))
    yield


@pytest.fixture
def app_config() -> dict:
    """Extra configuration for the ``app`` fixture; override in a test module to change it."""
    return {}


@pytest.fixture
def app(database_url, app_config):
    """An application on a fresh database, with an application context pushed."""
    application = make_test_app(_test_config(database_url, **app_config))
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


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Waits between launch attempts: a machine at load 13 can take longer than one launch's timeout.
LAUNCH_BACKOFF = (1.0, 3.0, 9.0)


class Browsers:
    """This test process's one Chromium (one per pytest-xdist worker), launched when first needed.

    A launch that fails or times out is tried again after a pause (:data:`LAUNCH_BACKOFF`), and a
    browser that has gone (crashed, or killed by a busy machine) is replaced before the next test
    asks for it, so one lost browser costs at most the test it was under, never the tests after it.
    Tests themselves are never retried.
    """

    def __init__(self, playwright):
        self.playwright = playwright
        self._browser = None
        self.launches = 0

    def current(self):
        """A connected browser: the running one, or a new one if there is none or it is known to have gone."""
        if self._browser is None or not self._browser.is_connected():
            self._browser = self._launch()
        return self._browser

    def new_context(self, **options):
        """A new context of this worker's browser; if the browser turns out to have gone, of a new one.

        Playwright's sync API only learns that the browser has died when it next talks to it, so
        ``is_connected()`` can still say yes and the first call fails with ``TargetClosedError`` (the
        error four Zoom browser tests failed with at load 13). That call is where a new browser is launched.
        """
        from playwright.sync_api import Error as PlaywrightError

        browser = self.current()
        try:
            return browser.new_context(**options)
        except PlaywrightError as exc:
            if "closed" not in str(exc):  # "Target page, context or browser has been closed"
                raise
        self._browser = None  # gone: never ask it again
        return self.current().new_context(**options)

    def _launch(self):
        from playwright.sync_api import Error as PlaywrightError

        for attempt, pause in enumerate((*LAUNCH_BACKOFF, None)):
            try:
                browser = self.playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
            except PlaywrightError as exc:
                if pause is None:
                    raise
                import warnings

                warnings.warn(f"Chromium launch {attempt + 1} failed, trying again in {pause:.0f} s: {exc}".splitlines()[0])
                time.sleep(pause)
                continue
            self.launches += 1
            if self.launches > 1:
                import warnings

                warnings.warn(f"Chromium had gone and was launched again (launch {self.launches} of this worker)")
            return browser

    def close(self) -> None:
        if self._browser is not None and self._browser.is_connected():
            self._browser.close()


@pytest.fixture(scope="session")
def _browsers(_playwright) -> Iterator[Browsers | None]:
    if _playwright is None:
        yield None
        return
    from playwright.sync_api import expect

    # Assertions wait as long as actions do (the pages' default timeout): a busy machine is slow, not broken.
    expect.set_options(timeout=15_000)
    browsers = Browsers(_playwright)
    yield browsers
    browsers.close()


@pytest.fixture
def chromium(_browsers):
    """Debian's Chromium, driven by Playwright: this worker's one browser (see :class:`Browsers`)."""
    if _browsers is None:
        missing("browser (Chromium)", f"{CHROMIUM} is not installed (apt-get install chromium)")
    return _browsers.current()


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
def browser_page(chromium, _browsers):
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
        context = _browsers.new_context(**context_options)
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
