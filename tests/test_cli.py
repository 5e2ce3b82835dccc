"""``flask demo`` (what ``make demo`` and ``make run`` print) and the Makefile's run port."""
from __future__ import annotations

import logging
import subprocess

from tests.conftest import ROOT
from tests.notifications.conftest import Records


def test_demo_prints_logins_and_one_summary_line_not_the_emails(app):
    assert not app.config["MAIL_SERVER"]  # the case of `make demo` on a laptop: emails would be logged
    collect = Records()
    root = logging.getLogger()
    # The migrations' logging.config.fileConfig disabled every logger that existed then; a real
    # `flask demo` has them enabled, so enable them here too, or the check below would see nothing.
    ours = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict) if name.startswith("expertbook")]
    disabled = {logger: logger.disabled for logger in ours}
    for logger in ours:
        logger.disabled = False
    level = root.level
    root.setLevel(logging.INFO)  # as create_app's logging.basicConfig sets it outside the tests
    root.addHandler(collect)
    try:
        result = app.test_cli_runner().invoke(args=["demo"])
    finally:
        root.removeHandler(collect)
        root.setLevel(level)
        for logger, was in disabled.items():
            logger.disabled = was
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    summary = lines[0]
    assert summary.startswith("Demo data: ") and " appointments, " in summary
    new_emails = int(summary.split("; ")[-1].split()[0])
    assert new_emails > 10  # the demo's bookings do cause emails ...
    # ... but only the summary, one heading and the logins are printed.
    assert "Subject:" not in result.output and lines[1].startswith("Log in at /login")
    assert len(lines) >= 5 and all("password: " in line for line in lines[2:])
    # ... and nothing from the app reaches the log below a warning while it loads.
    chatty = [r for r in collect.records if r.name.startswith("expertbook") and r.levelno < logging.WARNING]
    assert chatty == [], [r.getMessage()[:200] for r in chatty]

    again = app.test_cli_runner().invoke(args=["demo"])
    assert again.exit_code == 0 and "; 0 new emails " in again.output


def test_make_run_serves_on_the_port_given():
    dry = subprocess.run(["make", "-n", "run", "PORT=5050"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert dry.returncode == 0, dry.stderr
    assert "run --host 127.0.0.1 --port 5050" in dry.stdout
    default = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert "run --host 127.0.0.1 --port 5000" in default.stdout


def test_demo_refuses_to_run_in_production(app):
    """Its accounts (a site administrator among them) share the password the README publishes."""
    from sqlalchemy import func, select

    from expertbook.auth.models import User
    from expertbook.extensions import db

    app.config["PRODUCTION"] = True
    before = db.session.scalar(select(func.count()).select_from(User))
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code != 0 and "refuses to run in production" in result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == before


def test_production_refuses_to_start_without_a_mail_server_unless_told_to_log_emails(tmp_path):
    import pytest

    from expertbook import create_app
    from expertbook.config import ConfigError, from_env, validate

    production = {"EXPERTBOOK_ENV": "production", "SECRET_KEY": "k" * 32}
    with pytest.raises(ConfigError, match="MAIL_SERVER must be set in production"):
        validate(from_env(production))
    validate(from_env({**production, "MAIL_BACKEND": "log"}))
    validate(from_env({**production, "MAIL_SERVER": "smtp.example.org"}))
    with pytest.raises(ConfigError, match="MAIL_BACKEND"):
        from_env({**production, "MAIL_BACKEND": "sendmail"})
    validate(from_env({"EXPERTBOOK_ENV": "development"}))  # a laptop logs emails, as always
    from tests.conftest import _test_config

    with pytest.raises(ConfigError):
        create_app(_test_config(f"sqlite:///{tmp_path / 'x.sqlite3'}", PRODUCTION=True, MAIL_BACKEND="smtp"))
