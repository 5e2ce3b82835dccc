"""ExpertBook: booking for hospitals and for independent experts, in one Flask + htmx app."""
from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import import_module
from pathlib import Path
from typing import Any

from flask import Flask

from expertbook import config as config_module
from expertbook import jobs as _jobs
from expertbook import observability

ROOT = Path(__file__).resolve().parent.parent

# Each area is a package with a ``views.bp`` blueprint; the order is the order of registration.
AREAS = ("main", "auth", "clinic", "experts", "api", "calendars", "video", "webhooks", "notifications")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Create and configure an ExpertBook application.

    ``config`` overrides what the environment says; tests pass their database and options here.
    """
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.update(config_module.from_env(instance_path=app.instance_path))
    if config:
        app.config.update(config)
    config_module.validate(app.config)
    from expertbook import keys

    # Flask checks session cookies against SECRET_KEY_FALLBACKS itself; Flask-WTF does not, but signs
    # and checks CSRF tokens with an itsdangerous serializer, which takes a list of keys (signs with
    # the last, accepts any): a form opened before a key rotation can still be sent after it.
    app.config["WTF_CSRF_SECRET_KEY"] = keys.for_itsdangerous(app.config)
    app.debug = app.debug and not app.config["PRODUCTION"]
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        os.makedirs(app.instance_path, exist_ok=True)
    # JSON lines in production, plain text in development (LOG_FORMAT); every line redacted.
    observability.configure_logging(app.config["LOG_FORMAT"])

    _init_extensions(app)
    import_module("expertbook.models")
    from expertbook.web import IdConverter

    # Before any route is added: every <int:...> in a URL is an id, 1 to 2^31-1; anything else is a 404.
    app.url_map.converters["int"] = IdConverter
    for area in AREAS:
        app.register_blueprint(import_module(f"expertbook.{area}.views").bp)

    from expertbook import cli, security

    security.init_app(app)
    cli.init_app(app)
    # Request ids and request metrics: inside ProxyFix, around everything the app does.
    observability.init_app(app)
    if app.config["PROXY_HOPS"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    return app


def _init_extensions(app: Flask) -> None:
    from expertbook.database import configure_engine
    from expertbook import i18n
    from expertbook.extensions import babel, csrf, db, limiter, login_manager, mail, migrate

    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine, app.config["SQLITE_BUSY_TIMEOUT_MS"])
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    mail.init_app(app)
    from expertbook.auth import limits as account_limits

    # Before the limiter's own after_request, so it runs after the limiter has written its headers.
    app.after_request(account_limits.drop_headers)
    limiter.init_app(app)
    login_manager.init_app(app)
    babel.init_app(app, locale_selector=i18n.select_locale, default_translation_directories=str(ROOT / "translations"))


# Jobs run by a plain ``rq worker`` build their app with this factory (see expertbook.jobs), without importing it.
_jobs.set_app_factory(create_app)
