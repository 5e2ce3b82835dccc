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
    """Machine-readable health of the parts ExpertBook uses.

    ``ok``: all is well. ``degraded`` (still 200: every page works, so a load balancer must keep
    sending traffic): Redis is configured but down, so jobs wait for the relay and login throttling
    counts per process; ``degraded`` lists the parts. ``down`` (503): the database does not answer.
    """
    config = current_app.config
    checks = {"database": service.database_status()}
    redis = service.redis_status(config["REDIS_URL"])
    if redis is not None:
        checks["redis"] = redis
    rate_limits = service.rate_limit_status(config["RATELIMIT_STORAGE_URI"])
    if rate_limits is not None:
        checks["rateLimits"] = rate_limits
    failing = [part for part, value in checks.items() if value != "ok"]
    if "database" in failing:
        return jsonify(status="down", degraded=failing, **checks), 503
    if failing:
        return jsonify(status="degraded", degraded=failing, **checks), 200
    return jsonify(status="ok", **checks), 200
