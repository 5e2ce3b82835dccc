"""Command-line commands of the whole app: ``flask --app wsgi demo``, ``zoom-standin``, ``google-standin``.

Each area registers its own commands on its blueprint (``flask worker``, ``flask make-admin``...).
The development tools of :mod:`expertbook.devtools` are imported inside their command only, so the web
app never loads them.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import Flask, current_app


def init_app(app: Flask) -> None:
    """Register the commands on ``app``."""
    app.cli.add_command(demo)
    app.cli.add_command(zoom_standin)
    app.cli.add_command(google_standin)



@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Only warnings and errors of ``logger_name`` (and its children) while the block runs."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


@click.command("demo")
def demo() -> None:
    """Load idempotent demo data; print the demo logins and a one-line summary."""
    from expertbook import demo as demo_data

    if current_app.config["PRODUCTION"]:
        # Its accounts, a site administrator among them, share a password printed in the README.
        raise click.ClickException(
            "flask demo refuses to run in production (EXPERTBOOK_ENV=production): the demo accounts' password is public.")
    before = demo_data.summary()
    # The demo's bookings cause dozens of emails; without MAIL_SERVER each would be written to the log
    # in full. They are in the outbox (/notifications) for whoever wants to read them.
    with _quiet("expertbook"):
        logins = demo_data.load(current_app.config["DEMO_PASSWORD"])
    after = demo_data.summary()
    new_emails = after["emails"] - before["emails"]
    delivery = "queued for MAIL_SERVER" if current_app.config.get("MAIL_SERVER") else "not printed: the site admin sees them on /notifications"
    click.echo(
        f"Demo data: {after['sessions']} clinic sessions, {after['appointments']} appointments, "
        f"{after['experts']} experts, {after['bookings']} expert bookings; "
        f"{new_emails} new emails ({delivery})."
    )
    click.echo("Log in at /login with any of these:")
    for role, email in logins:
        click.echo(f"  {role:<22} {email:<36} password: {current_app.config['DEMO_PASSWORD']}")


@click.command("zoom-standin")
@click.option("--port", default=5001, show_default=True, help="port on 127.0.0.1")
@click.option("--email", default="expert.zoom@example.com", show_default=True, help="the Zoom user's email")
@click.option("--access-ttl", default=3599, show_default=True, help="seconds an access token lives")
def zoom_standin(port: int, email: str, access_ttl: int) -> None:
    """Serve the Zoom stand-in on 127.0.0.1 for local trials (never for production)."""
    from werkzeug.serving import run_simple

    from expertbook.devtools.zoom_standin import ZoomStandIn, standin_config

    standin = ZoomStandIn(user_email=email, access_ttl=access_ttl)
    url = f"http://127.0.0.1:{port}"
    click.echo("Start the app with these settings to use this stand-in instead of Zoom:")
    for key, value in standin_config(url, standin).items():
        click.echo(f"  export {key}={value}")
    run_simple("127.0.0.1", port, standin, threaded=True)


@click.command("google-standin")
@click.option("--port", default=5002, show_default=True, help="port on 127.0.0.1")
@click.option("--email", default="expert.google@example.com", show_default=True, help="the Google account's email")
def google_standin(port: int, email: str) -> None:
    """Serve the Google (OAuth and Calendar API) stand-in on 127.0.0.1 for local trials (never for production)."""
    from werkzeug.serving import run_simple

    from expertbook.devtools.google_standin import GoogleStandIn, standin_config

    standin = GoogleStandIn(email=email)
    url = f"http://127.0.0.1:{port}"
    click.echo("Start the app with these settings to use this stand-in instead of Google:")
    for key, value in standin_config(url, standin).items():
        click.echo(f"  export {key}={value}")
    run_simple("127.0.0.1", port, standin, threaded=True)
