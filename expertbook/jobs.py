"""What every area's RQ jobs share: an application context, also when a plain ``rq worker`` runs them.

``flask worker`` (:class:`expertbook.notifications.jobs.AppWorker`) gives each job the context of its
app. A plain ``rq worker`` gives none: the job then builds the app from the environment with the app
factory, which ``expertbook/__init__.py`` registers here when the package is imported (always before
any job module), so the jobs never import the factory, which imports every area.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import Flask, has_app_context

_app_factory: Callable[[], Flask] | None = None


def set_app_factory(factory: Callable[[], Flask]) -> None:
    """Register ``create_app``; called once, by the package itself."""
    global _app_factory
    _app_factory = factory


@contextmanager
def app_context() -> Iterator[None]:
    """Keep the current app context, or enter one of an app built from the environment."""
    if has_app_context():
        yield
        return
    if _app_factory is None:
        raise RuntimeError("no app factory is registered: import expertbook first")
    with _app_factory().app_context():
        yield
