"""Home page and ``/healthz``."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template

from expertbook.extensions import limiter
from expertbook.main import service

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    """The landing page: find a doctor or an expert."""
    return render_template("main/index.html")


@bp.get("/healthz")
@limiter.exempt
def healthz():
    """Machine-readable health: the database, and Redis when configured. 503 if anything is down."""
    checks = {"database": service.database_status()}
    redis = service.redis_status(current_app.config["REDIS_URL"])
    if redis is not None:
        checks["redis"] = redis
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if healthy else "degraded", **checks), 200 if healthy else 503
