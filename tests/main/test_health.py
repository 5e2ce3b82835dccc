"""The health endpoint and the demo command."""
import pytest

from tests.conftest import REDIS_URL, missing


def test_healthz_reports_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def test_healthz_reports_redis_down(app, client):
    """Redis down degrades the app but every page still works: 200, so a load balancer keeps it in."""
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "degraded" and body["redis"].startswith("error")
    assert body["degraded"] == ["redis"]


def test_healthz_is_503_when_the_database_is_down():
    """A database nobody answers on (a closed loopback port): the app cannot serve, so 503."""
    from expertbook import create_app
    from tests.conftest import _test_config, free_port

    app = create_app(_test_config(f"postgresql+psycopg://root@127.0.0.1:{free_port()}/nothing"))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "down" and body["degraded"] == ["database"] and body["database"].startswith("error")


def test_healthz_reports_redis_up(app, client):
    if not REDIS_URL:
        missing("Redis", "REDIS_URL is not set")
    app.config["REDIS_URL"] = REDIS_URL
    assert client.get("/healthz").get_json()["redis"] == "ok"


def test_demo_command_is_idempotent_and_prints_logins(app):
    from sqlalchemy import func, select

    from expertbook.auth.models import User
    from expertbook.extensions import db

    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    count = db.session.scalar(select(func.count()).select_from(User))
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0, second.output
    assert db.session.scalar(select(func.count()).select_from(User)) == count
    assert "patient@demo.expertbook.example" in second.output
    assert "password: " in second.output


@pytest.mark.parametrize("path", ["/", "/login", "/register"])
def test_public_pages_render(client, path):
    assert client.get(path).status_code == 200
