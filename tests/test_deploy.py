"""The files in deploy/ agree with the app and with each other (tests/test_fleet.py runs them for real)."""
from __future__ import annotations

import re
import runpy
import shutil
import subprocess

import pytest

from expertbook import create_app
from tests.conftest import ROOT, _test_config

DEPLOY = ROOT / "deploy"
NGINX_FILES = sorted((DEPLOY / "nginx").rglob("*.conf"))


def _nginx_text() -> str:
    return "\n".join(path.read_text() for path in NGINX_FILES)


def _directives(name: str) -> list[str]:
    """The arguments of every ``name ...;`` directive in deploy/nginx (comments left out)."""
    found = []
    for path in NGINX_FILES:
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith(name + " "):
                found.append(line[len(name):].strip().rstrip(";").strip())
    return found


def test_nginx_pages_carry_the_same_security_headers_as_the_app(tmp_path):
    app = create_app(_test_config(f"sqlite:///{tmp_path / 'db.sqlite3'}", PRODUCTION=True))
    response = app.test_client().get("/no-such-page")
    names = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy",
             "Permissions-Policy", "Cross-Origin-Opener-Policy", "Strict-Transport-Security")
    expected = {name: response.headers[name] for name in names}
    snippet = (DEPLOY / "nginx" / "snippets" / "expertbook-security-headers.conf").read_text()
    written = dict(re.findall(r'^add_header ([\w-]+) "([^"]*)" always;$', snippet, re.M))
    assert written == expected


def test_nginx_retries_only_idempotent_requests():
    retries = _directives("proxy_next_upstream")
    assert retries == ["error timeout"]
    assert "non_idempotent" not in re.sub(r"#.*", "", _nginx_text())


def test_nginx_includes_and_error_pages_exist():
    for snippet in re.findall(r"include snippets/([\w.-]+);", _nginx_text()):
        assert (DEPLOY / "nginx" / "snippets" / snippet).is_file(), snippet
    for error_page in _directives("error_page"):
        page = error_page.split()[-1]
        assert (ROOT / page.lstrip("/")).is_file(), page  # served from `root`, the checkout


def test_gunicorn_refuses_nothing_nginx_lets_through():
    settings = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    count, size = _directives("large_client_header_buffers")[0].split()
    buffer = int(size.rstrip("k")) * 1024
    assert settings["limit_request_line"] >= buffer - 2  # a line and its CRLF fit in one buffer
    assert settings["limit_request_field_size"] >= buffer + 2  # gunicorn counts the CRLF
    assert settings["limit_request_fields"] >= 1000 + 10  # nginx takes up to 1000 and adds its own
    assert int(count) * buffer <= 64 * 1024
    assert settings["graceful_timeout"] < _unit_value("expertbook-web.service", "TimeoutStopSec")


def _unit_value(unit: str, key: str) -> int:
    text = (DEPLOY / "systemd" / unit).read_text()
    return int(re.search(rf"^{key}=(\d+)", text, re.M).group(1))


def test_the_units_run_what_the_guide_says():
    web = (DEPLOY / "systemd" / "expertbook-web.service").read_text()
    worker = (DEPLOY / "systemd" / "expertbook-worker@.service").read_text()
    assert "ExecStart=/srv/expertbook/.venv/bin/gunicorn -c deploy/gunicorn.conf.py wsgi:app" in web
    assert "ExecStart=/srv/expertbook/.venv/bin/flask --app wsgi worker" in worker
    assert "Restart=always" in worker and "FLASK_SKIP_DOTENV=1" in worker
    for text in (web, worker):
        assert "WorkingDirectory=/srv/expertbook" in text
        # One environment file, the same for web nodes and workers, and no other source of settings.
        assert re.findall(r"^EnvironmentFile=(.*)$", text, re.M) == ["/etc/expertbook/expertbook.env"]
        assert re.findall(r"^Environment=(.*)$", text, re.M) == ["FLASK_SKIP_DOTENV=1"]


def test_web_nodes_apply_settings_by_a_restart_on_a_socket_systemd_holds():
    """A reload (gunicorn's SIGHUP) keeps the environment gunicorn started with, so the unit offers none; the
    socket unit keeps the port open across a restart, so restarting refuses no connection."""
    web = (DEPLOY / "systemd" / "expertbook-web.service").read_text()
    sock = (DEPLOY / "systemd" / "expertbook-web.socket").read_text()
    assert not re.search(r"^ExecReload=", web, re.M)
    assert re.search(r"^Requires=expertbook-web\.socket$", web, re.M)
    assert "expertbook-web.socket" in re.search(r"^After=(.*)$", web, re.M).group(1)
    assert re.findall(r"^ListenStream=(.*)$", sock, re.M) == ["127.0.0.1:8000"]
    backlog = int(re.search(r"^Backlog=(\d+)$", sock, re.M).group(1))
    assert backlog >= 1024  # a few seconds of requests wait there during a restart


def test_systemd_accepts_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed")
    (tmp_path / "expertbook.env").write_text("")
    units = []
    for unit in sorted([*(DEPLOY / "systemd").glob("*.service"), *(DEPLOY / "systemd").glob("*.socket")]):
        text = unit.read_text().replace("/srv/expertbook", str(ROOT)).replace("/etc/expertbook/expertbook.env", str(tmp_path / "expertbook.env"))
        name = unit.name.replace("@.service", "@1.service")  # an instance of the template
        (tmp_path / name).write_text(text)
        units.append(str(tmp_path / name))
    result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if str(tmp_path) in line]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr


def test_nginx_redacts_the_same_token_links_as_the_app():
    """The access log's map (over $request_uri and the Referer) names exactly the app's token paths."""
    from expertbook.observability import TOKEN_PATHS

    site = (DEPLOY / "nginx" / "expertbook.conf").read_text()
    maps = re.findall(r"^map \$(\w+) \$(\w+) \{(.*?)^\}", site, re.M | re.S)
    redacting = {source: body for source, _, body in maps if "[redacted]" in body}
    assert set(redacting) == {"request_uri", "http_referer"}
    for body in redacting.values():
        listed = re.search(r"\(\?:([a-z/|-]+)\)", body).group(1).split("|")
        assert sorted(listed) == sorted(TOKEN_PATHS)
        assert "video/zoom/callback" in body
    # Every server of the site logs in that format; nothing logs $request or $request_uri as they are.
    assert sorted(_directives("access_log")) == ["/var/log/nginx/expertbook.access.log expertbook"] * 2 + ["off", "off"]  # static files: off
    # nginx's error lines carry the raw request line: only critical ones are kept.
    assert _directives("error_log") == ["/var/log/nginx/expertbook.error.log crit"] * 2
    log_format = site[site.index("log_format expertbook"):]
    log_format = log_format[:log_format.index("';\n") + 3]
    assert "$expertbook_uri" in log_format and "$expertbook_referer" in log_format and "$request_id" in log_format
    assert not re.search(r"\$(request|request_uri|http_referer|uri|args|query_string)\b", log_format)


def test_gunicorn_logs_access_in_the_apps_redacted_format():
    settings = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert settings["accesslog"] == "-" and settings["errorlog"] == "-"
    formatter = settings["logconfig_dict"]["formatters"]["expertbook"]["()"]
    assert formatter == "expertbook.observability.LogFormatter"
    assert {"gunicorn.access", "gunicorn.error"} <= set(settings["logconfig_dict"]["loggers"])
    assert callable(settings["child_exit"]) and callable(settings["on_starting"])
