"""Home page, ``/healthz`` and ``/metrics``."""
from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

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
    counts per process; or no worker has been seen for 2 minutes while emails are due (``workers``);
    ``degraded`` lists the parts. ``down`` (503): the database does not answer.
    """
    config = current_app.config
    checks = {"database": service.database_status()}
    redis = service.redis_status(config["REDIS_URL"])
    if redis is not None:
        checks["redis"] = redis
    rate_limits = service.rate_limit_status(config["RATELIMIT_STORAGE_URI"])
    if rate_limits is not None:
        checks["rateLimits"] = rate_limits
    if redis == "ok" and checks["database"] == "ok":
        workers = service.workers_status(config["REDIS_URL"])
        if workers is not None:
            checks["workers"] = workers
    failing = [part for part, value in checks.items() if value != "ok"]
    if "database" in failing:
        return jsonify(status="down", degraded=failing, **checks), 503
    if failing:
        return jsonify(status="degraded", degraded=failing, **checks), 200
    return jsonify(status="ok", **checks), 200


def _metrics_allowed() -> bool:
    """From an address in ``METRICS_ALLOW``, or with ``Authorization: Bearer <METRICS_TOKEN>``."""
    config = current_app.config
    secret = config.get("METRICS_TOKEN")
    given = request.headers.get("Authorization", "")
    if secret and given.startswith("Bearer ") and hmac.compare_digest(given[len("Bearer "):].encode(), secret.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in config.get("METRICS_ALLOW") or ())


@bp.get("/metrics")
@limiter.exempt
def metrics():
    """Prometheus metrics of this machine's web processes, and of the outbox and the workers as they are now.

    Only for the addresses in ``METRICS_ALLOW`` or a bearer of ``METRICS_TOKEN``; anyone else gets a 404,
    as if there were no such page (docs/operations.md, "What to monitor").
    """
    if not _metrics_allowed():
        abort(404)
    body, content_type = service.metrics_exposition(current_app.config)
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
