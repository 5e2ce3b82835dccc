"""The deployment of docs/operations.md, for real: nginx in front of two web nodes and two workers.

One PostgreSQL database and one Redis server of this test's own, an SMTP server that keeps every
message, two ``gunicorn -c deploy/gunicorn.conf.py wsgi:app`` instances on different ports, two
``flask --app wsgi worker`` processes, and Debian's nginx running the site in ``deploy/nginx/`` as it
is (only its addresses, paths and certificate are replaced) over TLS. Everything below goes through
nginx, as a client's requests would.
"""
from __future__ import annotations

import datetime as dt
import getpass
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from aiosmtpd.controller import Controller
from sqlalchemy import select

from expertbook import create_app
from expertbook.clinic.models import Appointment
from expertbook.extensions import db
from expertbook.notifications.models import OutboxEmail
from expertbook.observability import TOKEN_PATHS
from tests.conftest import (
    NGINX,
    ROOT,
    GUNICORN_SECRET_KEY,
    Process,
    stop_all,
    _test_config,
    answers_http,
    free_port,
    missing,
    require_postgres,
    throwaway_postgres,
    wait_until,
)
from tests.factories import PASSWORD, api_token, make_slot, make_users
from tests.notifications.conftest import ScriptedSMTPHandler

pytestmark = pytest.mark.fleet

SITE = ROOT / "deploy" / "nginx" / "expertbook.conf"
UNITS = ROOT / "deploy" / "systemd"
SNIPPETS = ROOT / "deploy" / "nginx" / "snippets"
# Every wait is bounded; on this (shared, 2-core) machine they take a fraction of these.
EMAILS_WITHIN = 90


@dataclass
class Fleet:
    url: str  # https://localhost:<port>, nginx (by name: the site refuses other names, and TLS without SNI)
    http_url: str  # nginx's plain-HTTP server (redirects)
    cert: str
    redis_url: str
    smtp: ScriptedSMTPHandler
    nginx: Process
    access_log: Path
    env_file: Path  # /etc/expertbook/expertbook.env of every web node and worker
    log_dir: Path
    webs: list[Service] = field(default_factory=list)
    workers: list[Service] = field(default_factory=list)

    def session(self) -> requests.Session:
        session = requests.Session()
        session.verify = self.cert
        session.trust_env = False  # neither a proxy nor a CA bundle from the environment: loopback, this certificate
        return session

    def check_alive(self) -> None:
        """Fail if a process of the fleet died that the test did not kill."""
        for process in [self.nginx, *(service.process for service in (*self.workers, *self.webs))]:
            process.check_alive()


# ---------------------------------------------------------------------------- building the fleet


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


def _replace(text: str, pattern: str, replacement: str, count: int) -> str:
    """``re.subn`` that insists on finding exactly ``count`` matches, so a changed site file fails loudly here."""
    result, found = re.subn(pattern, replacement, text)
    assert found == count, f"expected {count} match(es) of {pattern!r} in {SITE}, found {found}"
    return result


def site_config(upstreams: list[str], http_port: int, https_port: int, cert: Path, key: Path, access_log: Path) -> str:
    """deploy/nginx/expertbook.conf with this machine's addresses, checkout, certificate and log file put in."""
    site = SITE.read_text()
    server_params = re.search(r"upstream expertbook \{.*?^\s*server \S+ ([^;]*);", site, re.S | re.M).group(1)
    servers = "".join(f"    server {address} {server_params};\n" for address in upstreams)
    site = _replace(site, r"(?ms)^upstream expertbook \{.*?^\}", "upstream expertbook {\n" + servers + "}", 1)
    site = _replace(site, r"(?m)^\s*listen \[::\]:\d+[^;]*;\n", "", 4)
    site = _replace(site, r"listen 80\b", f"listen 127.0.0.1:{http_port}", 2)
    site = _replace(site, r"listen 443\b", f"listen 127.0.0.1:{https_port}", 2)
    site = _replace(site, r"server_name book\.example\.org;", "server_name localhost;", 2)
    site = _replace(site, r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", 1)
    site = _replace(site, r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", 1)
    site = _replace(site, r"root /srv/expertbook;", f"root {ROOT};", 2)
    site = _replace(site, r"access_log /var/log/nginx/expertbook\.access\.log expertbook;", f"access_log {access_log} expertbook;", 2)
    site = _replace(site, r"error_log /var/log/nginx/expertbook\.error\.log crit;", f"error_log {access_log.parent / 'site-error.log'} crit;", 2)
    return site


def nginx_config(prefix: Path, site: Path) -> Path:
    """A main nginx.conf (as Debian's, but everything under ``prefix``) that includes the site; returns its path."""
    prefix.mkdir(exist_ok=True)
    (prefix / "snippets").symlink_to(SNIPPETS, target_is_directory=True)  # `include snippets/...` as in /etc/nginx
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "temp" / name).mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
user {getpass.getuser()};
worker_processes 2;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    client_body_temp_path {prefix}/temp/body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    access_log {prefix}/other.log;  # the site's servers log to their own file, in the site's format
    include {site};
}}
"""
    )
    return conf


def environment_file(path: Path) -> dict[str, str]:
    """The variables of a systemd ``EnvironmentFile``, read as systemd reads it: ``KEY=VALUE`` lines, ``#`` and
    ``;`` comments, values in double or single quotes unquoted."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def write_environment_file(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))


class Service:
    """One of the units in deploy/systemd, run the way systemd runs it, on this checkout.

    Its command is the unit's ``ExecStart`` and its environment the unit's ``Environment=`` lines and
    the fleet's environment file (the unit's ``EnvironmentFile``), read again at every start, as systemd
    does; nothing of this process's environment but ``PATH``. With ``socket_unit`` the unit's listening
    socket is held here, as systemd holds it (``expertbook-web.socket``), and handed to every start of
    the service as ``LISTEN_FDS``: :meth:`restart` (``systemctl restart``) keeps it open, :meth:`kill`
    (the machine dies) closes it.
    """

    def __init__(self, unit: str, name: str, env_file: Path, log_dir: Path, socket_unit: str | None = None):
        text = (UNITS / unit).read_text()
        assert re.search(r"^EnvironmentFile=/etc/expertbook/expertbook\.env$", text, re.M), unit
        self.unit, self.name, self.env_file, self.log_dir = unit, name, env_file, log_dir
        self.exec_start = re.search(r"^ExecStart=(.+)$", text, re.M).group(1)
        self.unit_environment = dict(re.findall(r"^Environment=([A-Z_]+)=(\S*)$", text, re.M))
        self.stop_timeout = int(re.search(r"^TimeoutStopSec=(\d+)$", text, re.M).group(1))
        self.listen_address: tuple[str, int] | None = None
        self.listener: socket.socket | None = None
        if socket_unit:
            socket_text = (UNITS / socket_unit).read_text()
            assert re.search(rf"^Requires={re.escape(socket_unit)}$", text, re.M), f"{unit} does not require {socket_unit}"
            assert re.search(r"^ListenStream=127\.0\.0\.1:\d+$", socket_text, re.M)  # the port is replaced by a free one
            backlog = int(re.search(r"^Backlog=(\d+)$", socket_text, re.M).group(1))
            self.listen_address = ("127.0.0.1", free_port())
            self._backlog = backlog
        self.starts = 0
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://{self.listen_address[0]}:{self.listen_address[1]}"

    def _listen(self) -> socket.socket:
        if self.listener is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(self.listen_address)
            listener.listen(self._backlog)
            self.listener = listener
        return self.listener

    def start(self) -> Process:
        environment = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **self.unit_environment, **environment_file(self.env_file)}
        bin_dir = str(Path(sys.executable).parent) + "/"
        command = self.exec_start.replace("/srv/expertbook/.venv/bin/", bin_dir).split()
        pass_fds: tuple[int, ...] = ()
        if self.listen_address:
            # systemd's socket activation: the socket as fd 3, LISTEN_FDS=1 and LISTEN_PID = the service's pid.
            listener = self._listen()
            pass_fds = (listener.fileno(),)
            command = [sys.executable, "-c", _SOCKET_ACTIVATION, str(listener.fileno()), *command]
        self.starts += 1
        self.process = _Process(f"{self.name} (start {self.starts})", command, environment,
                               self.log_dir / f"{self.name}-{self.starts}.log", pass_fds=pass_fds)
        return self.process

    def wait_ready(self, timeout: float = 60) -> None:
        if self.listen_address:
            wait_until(answers_http(self.url + "/healthz"), f"{self.name} did not answer /healthz", timeout=timeout, watch=(self.process,))

    def restart(self) -> None:
        """``systemctl restart``: stop (SIGTERM, SIGKILL after the unit's TimeoutStopSec), then start; the socket stays."""
        self.process.stop(timeout=self.stop_timeout)
        self.start()
        self.wait_ready()

    def kill(self) -> None:
        """The machine dies: SIGKILL to the whole service, and its listening socket is gone."""
        self.process.kill()
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    @property
    def killed(self) -> bool:
        return self.process.killed


class _Process(Process):
    """conftest's :class:`Process`, with file descriptors handed down (a listening socket)."""

    def __init__(self, name: str, args: list[str], env: dict, log_path: Path, pass_fds: tuple[int, ...] = ()):
        self.name = name
        self.log_path = log_path
        self.killed = False
        self._log = open(log_path, "w+b")
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True, pass_fds=pass_fds)


_SOCKET_ACTIVATION = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); "
    "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid())); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Start the whole deployment; yield a :class:`Fleet`; stop it all."""
    if not NGINX:
        missing("nginx", "nginx is not installed (apt-get install nginx)")
    redis_server = shutil.which("redis-server")
    if not redis_server:
        missing("Redis", "redis-server is not installed (apt-get install redis-server)")
    base = tmp_path_factory.mktemp("fleet")
    started: list[Process] = []
    services: list[Service] = []
    with throwaway_postgres("fleet") as database_url:
        database_url = require_postgres(database_url)
        app = create_app(_test_config(database_url))
        context = app.app_context()
        context.push()
        smtp = ScriptedSMTPHandler()
        controller = Controller(smtp, hostname="127.0.0.1", port=free_port(), ready_timeout=10)
        controller.start()
        try:
            redis_port = free_port()
            redis = Process("redis-server", [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                             "--dir", str(base)], {}, base / "redis.log")
            started.append(redis)
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            wait_until(lambda: _redis_answers(redis_url), "redis-server did not answer", timeout=20, watch=(redis,))

            http_port, https_port = free_port(), free_port()
            url = f"https://localhost:{https_port}"
            # The environment file of docs/operations.md, the same for every web node and worker.
            env_file = base / "expertbook.env"
            write_environment_file(env_file, {
                "EXPERTBOOK_ENV": "production",
                "SECRET_KEY": GUNICORN_SECRET_KEY,  # the test's own key, so it can sign API tokens
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "BASE_URL": url,
                "MAIL_SERVER": "127.0.0.1",
                "MAIL_PORT": str(controller.port),
                "MAIL_TIMEOUT": "5",
                "PROXY_HOPS": "1",
                "WEB_CONCURRENCY": "2",
                "PYTHONUNBUFFERED": "1",
                # The workers' periodic pass (relay and reminders) every second, and every booking due a reminder.
                "WORKER_TICK_SECONDS": "1",
                "REMINDER_HOURS": "10000",
            })
            workers = [Service("expertbook-worker@.service", f"worker-{n}", env_file, base) for n in (1, 2)]
            webs = [Service("expertbook-web.service", f"web-{n}", env_file, base, socket_unit="expertbook-web.socket") for n in (1, 2)]
            services = [*workers, *webs]
            for service in services:
                service.start()
            for web in webs:
                web.wait_ready()
            wait_until(lambda: _rq_workers(redis_url) == 2, "two RQ workers did not register", timeout=60, watch=tuple(w.process for w in workers))

            cert, key = _self_signed_certificate(base)
            upstreams = [f"{web.listen_address[0]}:{web.listen_address[1]}" for web in webs]
            site = base / "site.conf"
            (base / "nginx").mkdir()
            site.write_text(site_config(upstreams, http_port, https_port, cert, key, base / "nginx" / "access.log"))
            conf = nginx_config(base / "nginx", site)
            nginx = Process("nginx", [NGINX, "-p", str(base / "nginx"), "-c", str(conf), "-e", str(base / "nginx" / "error.log")], {}, base / "nginx.out")
            started.append(nginx)
            wait_until(answers_http(url + "/healthz", verify=str(cert)), "nginx did not answer /healthz", timeout=20, watch=(nginx,))
            yield Fleet(url=url, http_url=f"http://localhost:{http_port}", cert=str(cert), redis_url=redis_url, smtp=smtp, nginx=nginx,
                        access_log=base / "nginx" / "access.log", env_file=env_file, log_dir=base, webs=webs, workers=workers)
        finally:
            # Redis last: a worker that loses it while stopping waits to reconnect instead of stopping.
            stop_all([service.process for service in services if service.process is not None] + [p for p in started if p.name != "redis-server"],
                     timeout=10)
            for service in services:
                if service.listener is not None:
                    service.listener.close()
            stop_all([process for process in started if process.name == "redis-server"], timeout=10)
            controller.stop()
            db.session.remove()
            db.engine.dispose()
            context.pop()


def _redis_answers(url: str) -> bool:
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        return bool(Redis.from_url(url, socket_connect_timeout=1).ping())
    except RedisError:
        return False


def _rq_workers(url: str) -> int:
    from redis import Redis
    from rq import Worker

    return len(Worker.all(connection=Redis.from_url(url)))


def _rq_worker_pids(url: str) -> set[int]:
    from redis import Redis
    from rq import Worker

    return {worker.pid for worker in Worker.all(connection=Redis.from_url(url))}


def bearer(user) -> dict:
    # The app's key is the gunicorns' (conftest's GUNICORN_SECRET_KEY); the token's login session is a row.
    return {"Authorization": f"Bearer {api_token(user)}"}


def patient_headers(fleet: Fleet, count: int) -> list[dict]:
    """Bearer headers of ``count`` patients: two registered and two logged in through the API, the rest
    signed here (Argon2 makes each real login cost a quarter of a second of CPU)."""
    session = fleet.session()
    headers = []
    for n in range(2):
        email = f"fleet-{uuid.uuid4().hex[:8]}@example.com"
        registered = session.post(fleet.url + "/api/auth/register", timeout=30,
                                  json={"name": f"Fleet Patient {n}", "email": email, "password": PASSWORD})
        assert registered.status_code == 202, registered.text  # registration never returns a token
        logged_in = session.post(fleet.url + "/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=30)
        assert logged_in.status_code == 200, logged_in.text
        headers.append({"Authorization": f"Bearer {logged_in.json()['token']}"})
    users = make_users(count - 2)
    for user in users[:2]:
        logged_in = session.post(fleet.url + "/api/auth/login", json={"email": user.email, "password": PASSWORD}, timeout=30)
        assert logged_in.status_code == 200, logged_in.text
        headers.append({"Authorization": f"Bearer {logged_in.json()['token']}"})
    headers += [bearer(user) for user in users[2:]]
    return headers


def book(session: requests.Session, fleet: Fleet, slot_id: int, headers: dict, key: str, timeout: float = 30) -> requests.Response:
    return session.post(
        fleet.url + "/api/appointments",
        json={"slotId": slot_id, "patientName": "Fleet Patient", "contactNumber": "9876543210"},
        headers={**headers, "Idempotency-Key": key},
        timeout=timeout,
    )


def _appointments(slot_id: int) -> list[Appointment]:
    db.session.rollback()  # a fresh snapshot: the servers committed since
    return list(db.session.scalars(select(Appointment).where(Appointment.slot_id == slot_id)))


# ---------------------------------------------------------------------------- the tests


def test_200_patients_racing_through_nginx_get_exactly_10_places_with_tokens_101_to_110(fleet):
    slot_id = make_slot(capacity=10).id
    headers = patient_headers(fleet, 200)
    local = threading.local()

    def attempt(h: dict):
        local.session = getattr(local, "session", None) or fleet.session()
        response = book(local.session, fleet, slot_id, h, uuid.uuid4().hex)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=40) as pool:
        outcomes = list(pool.map(attempt, headers))
    booked = sorted(body["tokenNumber"] for status, body in outcomes if status == 201)
    refused = [(status, body) for status, body in outcomes if status != 201]
    assert booked == list(range(101, 111))
    assert len(refused) == 190 and all(r == (409, {"error": "This slot is fully booked"}) for r in refused), Counter(s for s, _ in refused)
    assert sorted(a.token_number for a in _appointments(slot_id)) == list(range(101, 111))
    # Both web nodes took part in the race.
    served = _upstreams_of("POST", "/api/appointments", fleet.access_log)
    assert len({address for _, addresses in served for address in addresses}) == 2, served[:5]
    fleet.check_alive()


def _restarts_for(setting: str) -> set[str]:
    """What docs/operations.md ("Changing settings") says a change of ``setting`` needs: {"web"}, {"workers"} or both."""
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text[text.index("## Changing settings"):]
    section = section[:section.index("\n## ", 1)]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| ") and "`" in line]
    listed = {name: row[-2].strip() for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row[2])}
    restart = listed.get(setting) or next(row[-2].strip() for row in rows if "every other setting" in row[1])
    return {"web": {"web"}, "workers": {"workers"}, "both": {"web", "workers"}}[restart.split()[0].strip("*:")]


def test_a_changed_setting_applies_after_the_documented_restarts_and_no_request_is_lost(fleet):
    """Edit the environment file, then restart what docs/operations.md says, one machine at a time, while
    clients book through nginx: every booking is answered by the app (nginx passes on no POST that reached a
    node, so a request lost in a restart would be a 502), and the new values are in use."""
    session = fleet.session()
    user = make_users(1)[0]
    web_urls = [web.url for web in fleet.webs]

    def token_hours(url: str) -> float:
        logged_in = session.post(url + "/api/auth/login", json={"email": user.email, "password": PASSWORD}, timeout=30)
        assert logged_in.status_code == 200, logged_in.text
        return logged_in.json()["expiresIn"] / 3600

    assert [token_hours(url) for url in web_urls] == [12, 12]
    changes = {"API_TOKEN_HOURS": "3", "MAIL_DEFAULT_SENDER": '"Fleet Clinic <clinic@fleet.example>"'}
    assert _restarts_for("API_TOKEN_HOURS") == {"web"} and _restarts_for("MAIL_DEFAULT_SENDER") == {"web", "workers"}
    write_environment_file(fleet.env_file, {**environment_file(fleet.env_file), **changes})

    # A full slot: every POST runs the whole booking and is refused (409), so the traffic sends no email.
    slot_id = make_slot(capacity=1).id
    headers = [bearer(patient) for patient in make_users(2)]
    assert book(session, fleet, slot_id, headers[0], uuid.uuid4().hex).status_code == 201
    answers: list[int | str] = []
    restarting = threading.Event()
    restarting.set()

    def client(h: dict) -> None:
        own = fleet.session()
        while restarting.is_set():
            try:
                # A request that arrives during a restart waits in the socket's queue until the new gunicorn
                # answers it (seconds; more on a loaded machine): longer than nginx's proxy_read_timeout (60 s)
                # it would be a 504, which counts as lost below.
                answers.append(book(own, fleet, slot_id, h, uuid.uuid4().hex, timeout=120).status_code)
            except requests.RequestException as exc:
                answers.append(exc.__class__.__name__)
            time.sleep(0.05)  # steady traffic, not a flood that would slow the restarts down

    with ThreadPoolExecutor(max_workers=len(headers)) as pool:
        clients = [pool.submit(client, h) for h in headers]
        try:
            # "both": the workers first, then the web nodes, one at a time.
            for service in (*fleet.workers, *fleet.webs):
                before = len(answers)
                service.restart()
                if service in fleet.workers:
                    pid = service.process.process.pid
                    wait_until(lambda: pid in _rq_worker_pids(fleet.redis_url), f"{service.name} did not register again",
                               timeout=60, watch=(service.process,))
                wait_until(lambda: len(answers) > before + 3, f"no booking was answered after restarting {service.name}", timeout=60)
        finally:
            restarting.clear()
        for done in clients:
            done.result()
    assert answers and Counter(answers) == {409: len(answers)}, Counter(answers)  # every POST was answered by the app
    assert all(web.starts == 2 for web in fleet.webs) and all(worker.starts == 2 for worker in fleet.workers)

    assert [token_hours(url) for url in web_urls] == [3, 3]
    # The restarted workers send with the new sender.
    assert book(session, fleet, make_slot(capacity=1).id, headers[1], uuid.uuid4().hex).status_code == 201
    wait_until(lambda: any(str(m["From"]) == "Fleet Clinic <clinic@fleet.example>" for m in fleet.smtp.messages),
               "no email was sent with the new MAIL_DEFAULT_SENDER", timeout=EMAILS_WITHIN)
    fleet.check_alive()


def _upstreams_of(method: str, path: str, access_log: Path) -> list[tuple[int, list[str]]]:
    """For each logged request ``method path``: nginx's answer and the upstream addresses it tried, in order."""
    found = []
    for line in access_log.read_text().splitlines():
        entry = json.loads(line)  # the site's log_format: one JSON object per line
        if (entry["method"], entry["uri"]) == (method, path):
            found.append((entry["status"], [a.strip() for a in entry["upstream"].split(",") if a.strip() not in ("", "-")]))
    return found


SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Strict-Transport-Security")


def _has_security_headers(response: requests.Response) -> bool:
    return all(response.headers.get(name) for name in SECURITY_HEADERS)


def test_requests_too_large_for_nginx_are_refused_by_nginx_with_security_headers_never_by_gunicorn(fleet):
    """Around nginx's limits, every answer carries the security headers: what nginx lets through, the app
    answers (gunicorn's limits are higher, deploy/gunicorn.conf.py); the rest nginx refuses with its own pages."""
    session = fleet.session()
    # Request lines of 8180 to 8200 bytes ("GET /aaa... HTTP/1.1"), across nginx's 8 KiB buffer.
    lines = {n: session.get(fleet.url + "/" + "a" * (n - len("GET / HTTP/1.1")), timeout=30) for n in range(8180, 8201)}
    assert {r.status_code for r in lines.values()} == {404, 414}, {n: r.status_code for n, r in lines.items()}
    assert [n for n, r in lines.items() if not _has_security_headers(r)] == []
    # One header line of 8180 to 8200 bytes.
    fields = {n: session.get(fleet.url + "/healthz", headers={"X-Long": "a" * (n - len("X-Long: "))}, timeout=30) for n in range(8180, 8201)}
    assert {r.status_code for r in fields.values()} == {200, 400}, {n: r.status_code for n, r in fields.items()}
    assert [n for n, r in fields.items() if not _has_security_headers(r)] == []
    # Many header lines: far more than gunicorn's default limit of 100 reach the app; nginx refuses over 1000.
    for count, status in ((990, 200), (1200, 400)):
        response = session.get(fleet.url + "/healthz", headers={f"X-H{i}": "v" for i in range(count)}, timeout=30)
        assert response.status_code == status and _has_security_headers(response), (count, response.status_code)
    # Bodies over client_max_body_size: JSON under /api/, a page elsewhere.
    big = "x" * (2 * 1024 * 1024)
    api = session.post(fleet.url + "/api/appointments", data=big, headers={"Content-Type": "application/json"}, timeout=30)
    assert api.status_code == 413 and _has_security_headers(api) and "error" in api.json()
    form = session.post(fleet.url + "/login", data={"email": big}, timeout=30)
    assert form.status_code == 413 and _has_security_headers(form) and form.headers["Content-Type"].startswith("text/html")


def test_nginx_serves_static_files_with_their_cache_policy_and_moves_http_to_https(fleet):
    session = fleet.session()
    vendored = next((ROOT / "static" / "vendor").glob("htmx-*.js"))
    immutable = session.get(f"{fleet.url}/static/vendor/{vendored.name}", timeout=30)
    assert immutable.status_code == 200 and immutable.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert immutable.content == vendored.read_bytes() and _has_security_headers(immutable)
    css = session.get(f"{fleet.url}/static/app.css", timeout=30)
    assert css.status_code == 200 and css.headers["Cache-Control"] == "no-cache" and css.headers["Content-Type"].startswith("text/css")
    stat = (ROOT / "static" / "app.css").stat()
    # nginx's ETag (weak once gzipped): served from the file, not by the app.
    assert css.headers["ETag"].removeprefix("W/") == f'"{int(stat.st_mtime):x}-{stat.st_size:x}"'
    again = session.get(f"{fleet.url}/static/app.css", headers={"If-None-Match": css.headers["ETag"]}, timeout=30)
    assert again.status_code == 304

    moved = session.get(f"{fleet.http_url}/login?next=/my-bookings", allow_redirects=False, timeout=30)
    assert moved.status_code == 301 and moved.headers["Location"] == "https://localhost/login?next=/my-bookings"


def test_nginx_refuses_names_it_does_not_serve(fleet):
    session = fleet.session()
    for url in (fleet.http_url, fleet.url):
        with pytest.raises(requests.ConnectionError):  # 444 / a refused TLS handshake: the connection just closes
            session.get(url.replace("localhost", "127.0.0.1") + "/healthz", timeout=30)
    with pytest.raises(requests.ConnectionError):
        session.get(fleet.http_url + "/healthz", headers={"Host": "evil.example"}, timeout=30)


def test_the_app_sees_https_through_nginx(fleet):
    """X-Forwarded-Proto with PROXY_HOPS=1: the app knows the request is HTTPS, so its CSRF check also wants a
    same-site Referer (Flask-WTF does that only on HTTPS)."""
    session = fleet.session()
    page = session.get(f"{fleet.url}/login", timeout=30)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text) or re.search(r'"X-CSRFToken": "([^"]+)"', page.text)
    form = {"email": "nobody@example.com", "password": "wrong password", "csrf_token": token.group(1)}
    without_referer = session.post(f"{fleet.url}/login", data=form, timeout=30)
    assert without_referer.status_code == 400 and _has_security_headers(without_referer)
    same_site = session.post(f"{fleet.url}/login", data=form, headers={"Referer": f"{fleet.url}/login"}, timeout=30)
    assert same_site.status_code not in (400, 500) and "Invalid email or password" in same_site.text


def test_killing_a_web_node_during_a_booking_burst_loses_and_duplicates_no_booking(fleet):
    """SIGKILL one gunicorn (its whole process group) while 20 clients book; every POST carries an
    Idempotency-Key and a failed one is retried once with the same key. Meanwhile a reader polls a GET."""
    slot_id = make_slot(capacity=1000).id
    headers = patient_headers(fleet, 20)
    victim = fleet.webs[0]
    victim_address = victim.url.removeprefix("http://")
    answers: list[tuple[str, int, dict, bool]] = []  # (key, status, body, replayed) of every POST, retries included
    failures: list[tuple[str, str]] = []
    lock = threading.Lock()
    killed = threading.Event()
    stop_reading = threading.Event()
    per_client = 5

    def client(h: dict) -> None:
        session = fleet.session()
        for _ in range(per_client):
            key = uuid.uuid4().hex
            for _attempt in range(2):
                try:
                    response = book(session, fleet, slot_id, h, key)
                    status, body = response.status_code, response.json()
                    replayed = response.headers.get("Idempotent-Replayed") == "true"
                except (requests.RequestException, ValueError) as exc:
                    status, body, replayed = 0, {"error": f"{exc.__class__.__name__}: {exc}"}, False
                with lock:
                    answers.append((key, status, body, replayed))
                if status == 201:
                    break
                assert status == 0 or status >= 500, (status, body)  # nothing else is expected: the slot is large
                with lock:
                    failures.append((key, f"{status} {body}"))
                # As a client should, wait a moment: a node killed this instant may still accept a connection
                # or two in its dying socket's backlog, before the kernel and nginx notice it is gone.
                time.sleep(0.5)

    get_answers: list[int] = []

    def reader() -> None:
        session = fleet.session()
        h = headers[0]
        while not stop_reading.is_set():
            try:
                get_answers.append(session.get(fleet.url + "/api/appointments/my", headers=h, timeout=30).status_code)
            except requests.RequestException as exc:
                get_answers.append(f"{exc.__class__.__name__}")  # type: ignore[arg-type]

    answered_at_kill = []

    def killer() -> None:
        deadline = time.monotonic() + 60
        while len(answers) < 30 and time.monotonic() < deadline:
            time.sleep(0.005)
        victim.kill()
        answered_at_kill.append(len(answers))
        killed.set()

    reading = threading.Thread(target=reader, daemon=True)
    reading.start()
    kill_thread = threading.Thread(target=killer, daemon=True)
    kill_thread.start()
    with ThreadPoolExecutor(max_workers=len(headers)) as pool:
        list(pool.map(client, headers))
    stop_reading.set()
    reading.join(timeout=30)
    kill_thread.join(timeout=60)
    assert killed.is_set() and len(answers) - answered_at_kill[0] >= 40, "the burst was (nearly) over before the kill"

    # Every 201 names an appointment that exists, with the key that was sent; a replay names the first one.
    created = {}
    for key, status, body, replayed in answers:
        if status == 201:
            assert created.setdefault(key, body["appointment"]["appointmentId"]) == body["appointment"]["appointmentId"]
    rows = _appointments(slot_id)
    by_key = Counter(row.idempotency_key for row in rows)
    assert all(n == 1 for n in by_key.values()), "an Idempotency-Key booked twice"
    stored = {row.idempotency_key: row.id for row in rows}
    odd = set(stored.items()) ^ set(created.items())
    assert not odd, ("bookings without a 201, or 201s without a booking", [a for a in answers if a[0] in {k for k, _ in odd}])
    assert len(rows) == len(created) and len({row.token_number for row in rows}) == len(rows)
    unanswered = {key for key, _ in failures} - set(created)
    assert not unanswered, f"POSTs that failed twice: {sorted(unanswered)[:5]}"
    # The kill did hit requests in flight: some POSTs failed and were reported to the client (nginx did not
    # pass them on to the other node after sending them), and their retries were answered.
    assert failures, "no POST was in flight on the killed node"
    posts = _upstreams_of("POST", "/api/appointments", fleet.access_log)
    assert (502, [victim_address]) in posts, ("no POST failed on the killed node alone", failures[:5], [p for p in posts if p[0] != 201][:10])
    # Idempotent requests were retried on the other node: the reader never saw an error.
    assert get_answers and set(get_answers) == {200}, Counter(get_answers)
    assert len(created) == len(headers) * per_client


def test_every_email_is_sent_exactly_once_and_reminders_once_by_two_workers(fleet):
    # Bookings of this test's own, so it checks something when run alone too.
    slot_id = make_slot(capacity=20).id
    session = fleet.session()
    for h in patient_headers(fleet, 6):
        assert book(session, fleet, slot_id, h, uuid.uuid4().hex).status_code == 201

    def done() -> bool:
        db.session.rollback()
        booked = db.session.scalar(select(db.func.count()).select_from(Appointment).where(Appointment.status == "booked"))
        reminders = db.session.scalar(select(db.func.count()).select_from(OutboxEmail).where(OutboxEmail.kind.like("reminder-%")))
        unsent = db.session.scalar(select(db.func.count()).select_from(OutboxEmail).where(OutboxEmail.status != "sent"))
        return reminders == booked and unsent == 0 and len(fleet.smtp.messages) >= _sent_rows()

    wait_until(done, "the outbox was not all sent (and every reminder queued)", timeout=EMAILS_WITHIN, watch=tuple(worker.process for worker in fleet.workers))
    time.sleep(2 * 1.0 + 1)  # two more ticks of both workers: a late duplicate would show up now
    db.session.rollback()
    rows = list(db.session.execute(select(OutboxEmail.kind, OutboxEmail.status, OutboxEmail.message_id)))
    messages = list(fleet.smtp.messages)
    message_ids = Counter(message["Message-ID"] for message in messages)
    assert [mid for mid, n in message_ids.items() if n > 1] == [], "an email was sent twice"
    assert len(messages) == len(rows) and all(status == "sent" for _, status, _ in rows)
    assert set(message_ids) == {message_id for _, _, message_id in rows}
    booked = db.session.scalar(select(db.func.count()).select_from(Appointment).where(Appointment.status == "booked"))
    kinds = Counter(kind for kind, _, _ in rows)
    assert kinds["reminder-clinic"] == booked and booked >= 6
    assert sum(1 for message in messages if str(message["Subject"]).startswith("Reminder:")) == booked
    # Both workers are still alive and were ticking (and so queueing reminders) all along.
    for worker in fleet.workers:
        worker.process.check_alive()
    assert _rq_workers(fleet.redis_url) == 2


def _sent_rows() -> int:
    return db.session.scalar(select(db.func.count()).select_from(OutboxEmail).where(OutboxEmail.status == "sent")) or 0


# ---------------------------------------------------------------------------- logs: request ids, and no secret


def _body(message) -> str:
    """Every text part of an email, decoded."""
    return "\n".join(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")


def _log_files(fleet: Fleet) -> list[Path]:
    """Every log the run wrote: nginx's (access, error, other servers), and each start of each web node and worker."""
    files = [path for path in fleet.log_dir.rglob("*") if path.is_file() and path.suffix in (".log", ".out")]
    assert {path.name for path in files} >= {"access.log", "error.log", "site-error.log", "web-1-1.log", "web-2-1.log", "worker-1-1.log", "worker-2-1.log"}
    return files


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_one_booking_is_followed_by_its_request_id_from_nginx_through_the_worker_to_the_email(fleet):
    """nginx's $request_id goes to the app (X-Request-Id), is answered in X-Request-ID, logged by the web node
    (gunicorn's access line and the app's), carried in the email job's meta to the worker, logged there with
    the send, and written into the email's X-Request-ID header. Every line of every app log is one JSON object."""
    slot_id = make_slot(capacity=5).id
    patient = make_users(1)[0]
    answer = book(fleet.session(), fleet, slot_id, bearer(patient), uuid.uuid4().hex)
    assert answer.status_code == 201
    request_id = answer.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)  # nginx's $request_id
    wait_until(lambda: any(patient.email in str(m["To"]) for m in fleet.smtp.messages), "the booking's email was not sent", timeout=EMAILS_WITHIN)
    email = next(m for m in fleet.smtp.messages if patient.email in str(m["To"]))
    assert email["X-Request-ID"] == request_id

    nginx = [entry for entry in _json_lines(fleet.access_log) if entry["request_id"] == request_id]
    assert [(e["method"], e["uri"], e["status"]) for e in nginx] == [("POST", "/api/appointments", 201)]
    web, worker = [], []
    for path in _log_files(fleet):
        if path.name.startswith(("web-", "worker-")):
            lines = [line for line in path.read_text().splitlines() if line.strip()]
            # One JSON object per line: nothing else reaches the services' output.
            entries = [json.loads(line) for line in lines]
            found = [entry for entry in entries if entry.get("request_id") == request_id]
            (web if path.name.startswith("web-") else worker).extend((path.name, entry) for entry in found)
    assert any(entry["logger"] == "gunicorn.access" and entry["path"] == "/api/appointments" and entry["status"] == "201" for _, entry in web), web
    sent = [entry for _, entry in worker if re.fullmatch(r"email \d+ sent \(attempt 1\)", entry["message"])]
    assert len(sent) == 1, worker
    # /metrics of the node that took the booking, read directly (loopback is in METRICS_ALLOW's default).
    node = next(web for web in fleet.webs if web.url.endswith(nginx[0]["upstream"].rsplit(":", 1)[1]))
    metrics = requests.get(node.url + "/metrics", timeout=30)
    assert metrics.status_code == 200 and 'expertbook_bookings_total{kind="clinic",outcome="made"}' in metrics.text
    (fleet.log_dir / "metrics-after-booking.txt").write_text(metrics.text)
    # The excerpt docs/operations.md shows ("Following one request").
    excerpt = [json.dumps(nginx[0])] + [f"{name}: {json.dumps(entry)}" for name, entry in web + worker] + [f"X-Request-ID: {email['X-Request-ID']}"]
    (fleet.log_dir / "request-id-excerpt.txt").write_text("\n".join(excerpt) + "\n")


def test_no_token_issued_during_the_run_is_in_any_log(fleet):
    """Issue every kind of link token (verification, reset, a guest's manage link, a clinic move link, a calendar
    feed) and bearer token, use each link through nginx as a browser would (each from the previous one, so the
    Referer carries a token too), then read every log line of the whole run: nginx's, the web nodes', the
    workers'. None holds a token issued during the run."""
    from tests.experts.helpers import next_weekday_at
    from tests.factories import make_expert, make_hospital, make_service, make_staff

    session = fleet.session()
    address = f"scan-{uuid.uuid4().hex[:8]}@example.com"
    assert session.post(fleet.url + "/api/auth/register", json={"name": "Scan Person", "email": address, "password": PASSWORD}, timeout=30).status_code == 202
    assert session.post(fleet.url + "/api/auth/forgot-password", json={"email": address}, timeout=30).status_code == 202
    logged_in = session.post(fleet.url + "/api/auth/login", json={"email": address, "password": PASSWORD}, timeout=30)
    assert logged_in.status_code == 200
    bearers = [logged_in.json()["token"]]

    expert = make_expert("Scan Expert")
    consult = make_service(expert)
    guest = session.post(fleet.url + "/api/bookings", timeout=30, json={
        "serviceId": consult.id, "start": next_weekday_at(11).isoformat().replace("+00:00", "Z"), "name": "Gita Guest",
        "email": f"guest-{uuid.uuid4().hex[:8]}@example.com"})
    assert guest.status_code == 201, guest.text
    expert_login = session.post(fleet.url + "/api/auth/login", json={"email": expert.user.email, "password": PASSWORD}, timeout=30)
    bearers.append(expert_login.json()["token"])
    feed = session.post(fleet.url + "/api/calendar-feed/reset", headers={"Authorization": f"Bearer {bearers[1]}"}, timeout=30)
    assert feed.status_code == 200 and feed.json()["url"]

    hospital = make_hospital()
    staff = make_staff(hospital)
    slot = make_slot(hospital, capacity=5)
    patient = make_users(1)[0]
    assert book(session, fleet, slot.id, bearer(patient), uuid.uuid4().hex).status_code == 201
    cancelled = session.post(fleet.url + f"/api/organization/slots/{slot.id}/cancel", json={"reason": "The doctor is ill"},
                             headers=bearer(staff), timeout=30)
    assert cancelled.status_code == 200, cancelled.text

    def emailed(to: str, path: str) -> bool:
        return any(to in str(m["To"]) and path in _body(m) for m in fleet.smtp.messages)

    wait_until(lambda: emailed(address, "/verify-email/") and emailed(address, "/reset-password/") and emailed(patient.email, "/clinic/move/"),
               "the links were not all emailed", timeout=EMAILS_WITHIN)
    bodies = [_body(m) for m in fleet.smtp.messages]
    link = re.compile(r"https?://[^\s\"'<>]*?/(?:" + "|".join(TOKEN_PATHS) + r")/[^\s\"'<>]+")
    links = sorted({found.rstrip(".,)") for body in bodies for found in link.findall(body)} | {guest.json()["manageUrl"], feed.json()["url"]})
    kinds = {kind for kind in TOKEN_PATHS if any(f"/{kind}/" in url for url in links)}
    assert kinds == set(TOKEN_PATHS), (kinds, links)
    tokens = {re.search(r"/(?:" + "|".join(TOKEN_PATHS) + r")/([^/?#]+)", url).group(1).removesuffix(".ics") for url in links}
    tokens |= set(bearers)

    # Through nginx, as a browser follows them: the path carries the token, and the Referer the previous link.
    referer = None
    for url in links:
        path = url.split("://", 1)[1].split("/", 1)[1]
        response = session.get(f"{fleet.url}/{path}", headers={"Referer": referer} if referer else {}, allow_redirects=False, timeout=30)
        assert response.status_code < 500, (url, response.status_code)
        referer = f"{fleet.url}/{path}"
    time.sleep(1)  # the last access lines are written

    leaks = [(path.name, token) for path in _log_files(fleet) for token in tokens if token in path.read_text(errors="replace")]
    assert leaks == []
    # The links were logged, with their tokens redacted, by nginx and by the web nodes.
    access = fleet.access_log.read_text()
    assert all(f"/{kind}/[redacted]" in access for kind in TOKEN_PATHS)
    web_logs = "".join(path.read_text() for path in _log_files(fleet) if path.name.startswith("web-"))
    assert all(f"/{kind}/[redacted]" in web_logs for kind in TOKEN_PATHS)
