"""Command-line commands: ``flask --app wsgi demo`` and friends."""
from __future__ import annotations

import click
from flask import Flask, current_app


def init_app(app: Flask) -> None:
    """Register the commands on ``app``."""
    app.cli.add_command(demo)

@click.command("demo")
def demo() -> None:
    """Load idempotent demo data and print the demo logins."""
    from expertbook import demo as demo_data

    logins = demo_data.load(current_app.config["DEMO_PASSWORD"])
    click.echo("Demo data is loaded. Log in at /login with any of these:")
    for role, email in logins:
        click.echo(f"  {role:<22} {email:<36} password: {current_app.config['DEMO_PASSWORD']}")
