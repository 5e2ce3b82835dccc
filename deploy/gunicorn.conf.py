"""gunicorn settings for ExpertBook behind nginx: ``gunicorn -c deploy/gunicorn.conf.py wsgi:app``.

Used by ``deploy/expertbook-web.service``; command-line options override it. ``GUNICORN_BIND``,
``WEB_CONCURRENCY``, ``FORWARDED_ALLOW_IPS`` and ``PROMETHEUS_MULTIPROC_DIR`` come from the environment
file; see docs/operations.md.
"""
import multiprocessing
import os
import shutil
import tempfile

# Where nginx reaches this node: loopback when nginx runs on the same machine, a private address otherwise.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: one request each. The app waits on PostgreSQL more than it computes, so 2 per core + 1.
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)

# A worker silent for longer than this is killed and replaced (nginx gives up at 60 s, proxy_read_timeout).
timeout = 30
# On SIGTERM (systemctl stop / restart) workers finish the requests they have for this long.
# Keep it below the unit's TimeoutStopSec (30 s), so systemd never SIGKILLs a request half done.
graceful_timeout = 20
# Sync workers close the connection after each answer, so nginx opens one per request (no upstream
# keepalive): no POST is ever written to an idle connection the worker was closing.

# Request limits. nginx refuses what is too large before it reaches gunicorn (large_client_header_buffers
# 4 8k: a request line or one header line of at most 8190 bytes, 32 KiB of headers in all), with its own
# error pages that carry the security headers. gunicorn's limits are set at or above nginx's, so gunicorn
# never writes its own 414/400 page (which has no security headers) for a request nginx let through:
# - the longest request line nginx forwards is 8190 bytes, gunicorn's maximum limit;
limit_request_line = 8190
# - gunicorn counts a header line with its CRLF, nginx without: give one more buffer's worth of room;
limit_request_field_size = 16384
# - nginx refuses more than 1000 header lines (and more than 32 KiB of them), gunicorn by default more than 100:
#   allow gunicorn's maximum, so that nginx is the one that refuses.
limit_request_fields = 32768

# Which peers may tell gunicorn the scheme (X-Forwarded-Proto): the nginx host(s) only. The app itself
# trusts one hop of X-Forwarded-For/-Proto through PROXY_HOPS=1.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# gunicorn's control socket (gunicornc) is not used; several instances on one host would share its path.
control_socket_disable = True

# Errors and the access log to stderr (the journal), in the app's format (LOG_FORMAT: one JSON object per
# line in production) and redacted like every line the app writes: no link token reaches them. The access
# line carries the request id the app answered with (X-Request-ID), the one nginx logged.
errorlog = "-"
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms'
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"expertbook": {"()": "expertbook.observability.LogFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "expertbook", "stream": "ext://sys.stderr"}},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
    },
    "root": {"level": "INFO", "handlers": []},
}


# Metrics (GET /metrics): each worker process writes its numbers to files in PROMETHEUS_MULTIPROC_DIR and
# /metrics adds up every process's (prometheus_client's multiprocess mode). The directory is emptied when
# gunicorn starts (numbers of an earlier run would be counted again), made if it is not set (under the
# unit's RuntimeDirectory, else a temporary one, removed at exit), and a worker's live gauges are dropped
# when it exits.
_made_metrics_dir = []


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.unlink(os.path.join(directory, name))
    else:
        runtime = "/run/expertbook-web"  # the unit's RuntimeDirectory
        directory = tempfile.mkdtemp(prefix="metrics-", dir=runtime if os.access(runtime, os.W_OK) else None)
        _made_metrics_dir.append(directory)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # inherited by every worker gunicorn forks


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    for directory in _made_metrics_dir:
        shutil.rmtree(directory, ignore_errors=True)
