"""Cross-cutting protections: login loading, security headers and error pages."""
from __future__ import annotations


from flask import Flask, current_app, jsonify, make_response, render_template, request, url_for
from flask_login import current_user
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from expertbook.errors import NotFound
from expertbook.extensions import limiter, login_manager
from expertbook.web import NOT_ALLOWED, is_htmx, refused_character, wants_fragment


# htmx runs without eval and without its injected indicator <style> (see base.html's htmx-config),
# so the policy needs no 'unsafe-eval' and no 'unsafe-inline'.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)


def init_app(app: Flask) -> None:
    """Install the user loader, the headers and the error handlers on ``app``."""
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = None  # sessions are revocable server-side instead
    login_manager.user_loader(_load_user)
    login_manager.unauthorized_handler(_unauthorized)

    always = [
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
    if app.config["PRODUCTION"]:
        always.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))

    @app.after_request
    def _headers(response):
        headers = response.headers
        # One pass over the headers a view set, rather than a scan per header: this runs on every answer.
        present = {name.lower() for name in headers.keys()}
        for name, value in always:
            if name.lower() not in present:
                headers.add(name, value)
        if "cache-control" not in present and (is_htmx() or request.path.startswith("/api/")):
            # Personal fragments and API answers must not be replayed from a shared cache.
            headers.add("Cache-Control", "no-store")
        return response

    _skip_limiter_where_nothing_is_limited(app)
    app.before_request(_refuse_unstorable_characters)

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError):
        # The CSRF token lives as long as the login session, so a page of ours whose token no longer
        # matches, sent by someone no longer logged in, means their session ended under the open page.
        back = _page_sending_this() if not current_user.is_authenticated and not request.path.startswith("/api/") else None
        if back is not None:
            return _to_login(back, SESSION_EXPIRED)
        return _error_response(400, "Your form expired or was sent from another site. Please reload the page and try again.")

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(error: RateLimitExceeded):
        return _error_response(429, "Too many attempts. Please wait a minute and try again.")

    @app.errorhandler(NotFound)
    def _not_found(error: NotFound):
        # A service's NotFound (no such object, or not the caller's) is a 404 with its message: a page,
        # an htmx fragment, or under /api/ JSON {"error": ...}; views do not catch it.
        return _error_response(404, error.message)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        response = _error_response(error.code or 500, error.description or error.name)
        # What the error says beyond its body stays: Allow on a 405, WWW-Authenticate, Retry-After.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(InternalServerError)
    def _server_error(error: InternalServerError):
        # Flask sends every unhandled exception here after logging it with its traceback (in testing
        # and debug mode it re-raises instead), so no traceback ever reaches the page.
        return _error_response(500, "Something went wrong on our side. Please try again.")


FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def _refuse_unstorable_characters():
    """Refuse (400) a request whose address, query string or form holds a character no text column
    takes (NUL; see :func:`expertbook.web.refused_character`), before any view hands it to a query.
    JSON bodies are checked field by field by the API's reader (:mod:`expertbook.api.fields`)."""
    if refused_character(request.path):
        return _error_response(404, "Not found.")
    fields = _refused_fields(request.args)
    if request.mimetype in FORM_TYPES:
        fields += _refused_fields(request.form)
    if fields:
        message = "The request contains characters that are not allowed."
        if request.path.startswith("/api/"):
            return jsonify(error=message, fields={name: [NOT_ALLOWED] for name in fields}), 400
        return _error_response(400, message)
    return None


def _refused_fields(values) -> list[str]:
    """The names in a MultiDict whose name or any value holds a refused character."""
    return [name for name, items in values.lists() if refused_character(name) or any(map(refused_character, items))]


def _nothing_limited_here() -> bool:
    """Flask-Limiter request filter: True (skip the limiter's work) where no limit can apply.

    With no application-wide or default limits, only views decorated with ``limiter.limit`` are
    limited; Flask-Limiter marks their wrappers, and every other request is exempted up front.
    (Should Flask-Limiter stop marking them, the login throttling tests fail, not silently pass.)
    """
    config = current_app.config
    if config.get("RATELIMIT_DEFAULT") or config.get("RATELIMIT_APPLICATION"):
        return False
    view = current_app.view_functions.get(request.endpoint or "")
    return view is None or getattr(view, "__wrapper-limiter-instance", None) is None


_limiter_filter_installed = False


def _skip_limiter_where_nothing_is_limited(app: Flask) -> None:
    """Install :func:`_nothing_limited_here` on the shared limiter, once for every app."""
    global _limiter_filter_installed
    if not _limiter_filter_installed:
        limiter.request_filter(_nothing_limited_here)
        _limiter_filter_installed = True


def _load_user(token: str):
    from expertbook.auth import sessions

    return sessions.user_for_session(token)


SESSION_EXPIRED = "Your session has expired: log in again."


def _same_site_path(url: str | None) -> str | None:
    """The path (with query) of ``url`` if it is a page of this site, else None."""
    from expertbook.web import is_safe_next

    if not url:
        return None
    if url.startswith(request.host_url):
        url = "/" + url[len(request.host_url):]
    return url if is_safe_next(url) else None


def _page_sending_this() -> str | None:
    """The page of ours this request was sent from: htmx names it (HX-Current-URL), a form post's Referer."""
    return _same_site_path(request.headers.get("HX-Current-URL") if is_htmx() else request.referrer)


def _to_login(back: str | None, message: str):
    """Say ``message`` on the login page, which then returns to ``back``; htmx is made to go there."""
    from flask import flash, redirect

    login_url = url_for("auth.login", next=back) if back else url_for("auth.login")
    flash(message, "info" if message != SESSION_EXPIRED else "warning")
    if is_htmx():
        # Never swap a login page into a fragment: make the browser go there.
        response = make_response("", 401)
        response.headers["HX-Redirect"] = login_url
        return response
    return redirect(login_url)


def _unauthorized():
    """Send anonymous users to the login page (back to this page afterwards); htmx gets HX-Redirect, the API a
    JSON 401. A login that ended under an open page (its session revoked or expired, or an htmx request from a
    page shown while logged in) is told so."""
    from flask import session

    if request.path.startswith("/api/"):
        return jsonify(error="No login token found"), 401
    this_page = _same_site_path(request.full_path.rstrip("?")) if request.method == "GET" else None
    back = this_page if request.method == "GET" and not is_htmx() else (_page_sending_this() or this_page)
    expired = "_user_id" in session or is_htmx()
    return _to_login(back, SESSION_EXPIRED if expired else login_manager.login_message)


def _error_response(status: int, message: str):
    if request.path.startswith("/api/"):
        response = jsonify(error=message)
        response.status_code = status
        return response
    template = "errors/_error.html" if wants_fragment() else "errors/error.html"
    response = make_response(render_template(template, status=status, message=message), status)
    response.vary.add("HX-Request")
    return response
