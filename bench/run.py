"""``make bench``: ExpertBook against the bare floor, in one run, on this machine's PostgreSQL.

Creates two databases (the app's, migrated with ``flask db upgrade``, and the floor's), seeds them,
starts both apps under gunicorn with the same settings, measures them with wrk, checks the bookings
in SQL, loads the scale data and times the big pages in-process. Prints a table with every figure,
its target and PASS/MISS, and writes the same as JSON under bench/results/. Servers are stopped and
databases dropped at the end (``BENCH_KEEP_DBS=1`` keeps the databases).

Environment: ``BENCH_ADMIN_DSN`` (a database to connect to for CREATE/DROP DATABASE, default
``postgresql://root@127.0.0.1:5432/test``), ``BENCH_SECONDS`` (each wrk run, default 10),
``BENCH_WORKERS`` (gunicorn ``-w`` for both apps, default 2), ``BENCH_CONNECTIONS`` (default 32),
``BENCH_SCALE=0`` to skip the scale phase, ``BENCH_PROFILE=1`` to record py-spy flame graphs of one
app worker during each app run (under bench/results/).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench import harness, seed, servertime

HERE = harness.HERE
ROOT = harness.ROOT
RESULTS = HERE / "results"

ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://root@127.0.0.1:5432/test")
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
KEEP = os.environ.get("BENCH_KEEP_DBS") == "1"
SCALE = os.environ.get("BENCH_SCALE", "1") != "0"
PROFILE = os.environ.get("BENCH_PROFILE", "") in ("1", "raw")
# "raw": collapsed stacks (one "frame;frame;... count" line each) to grep and sum, instead of an SVG.
PROFILE_RAW = os.environ.get("BENCH_PROFILE") == "raw"
# For working on one figure: e.g. BENCH_ONLY=book,fragment (the table then shows what was measured).
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
APP_DB = os.environ.get("BENCH_APP_DB", "expertbook_bench")
FLOOR_DB = os.environ.get("BENCH_FLOOR_DB", "expertbook_floor")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SLOTS = 1000
RUSH_SLOTS, RUSH_CAPACITY = 20, 10
PATIENTS = 200
WARMUP_SECONDS = 2
# Floor and app are measured alternately in this many pieces of BENCH_SECONDS / ROUNDS each.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def dsn_for(database: str) -> str:
    """``ADMIN_DSN`` pointed at another database on the same server."""
    parts = urlsplit(ADMIN_DSN)
    return urlunsplit(parts._replace(path="/" + database))


def banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


class Run:
    """One benchmark run: its servers, its figures, and the cleanup."""

    def __init__(self) -> None:
        self.secret_key = "bench-" + secrets.token_hex(24)
        self.run_id = secrets.token_hex(4)
        self.servers: list[harness.Server] = []
        self.results: dict = {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "settings": {"workers": WORKERS, "connections": CONNECTIONS, "seconds": SECONDS, "cpus": os.cpu_count()},
            "load_average_before": load_average(),
            "wrk": {},
            "checks": {},
            "scale": {},
        }
        self.app_env = {
            "EXPERTBOOK_ENV": "production",
            "SECRET_KEY": self.secret_key,
            "DATABASE_URL": dsn_for(APP_DB),
            "BASE_URL": "http://127.0.0.1",
            # Production's shape: each booking writes its outbox email in its transaction and, after the
            # commit, only enqueues it on Redis (no worker runs, so no SMTP is measured). The queue lives in a
            # Redis database of the bench's own (BENCH_REDIS_URL), emptied before and after the run.
            "REDIS_URL": REDIS_URL,
            "RATELIMIT_STORAGE_URI": "",
            "MAIL_SERVER": "",
            "MAIL_BACKEND": "log",  # no worker sends anything here; production wants it said
        }

    # ------------------------------------------------------------------ setup

    def databases(self) -> None:
        banner(f"databases {APP_DB} and {FLOOR_DB} (via {ADMIN_DSN})")
        for name in (APP_DB, FLOOR_DB):
            harness.recreate_database(ADMIN_DSN, name)
        harness.psql(dsn_for(FLOOR_DB), file=harness.SHARED_BENCH / "baseline_setup.sql")
        flask = str(Path(sys.executable).with_name("flask"))
        subprocess.run([flask, "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env={**os.environ, **self.app_env}, check=True, capture_output=True)
        self.seeded = seed.seed_load(dsn_for(APP_DB), PATIENTS, SLOTS, RUSH_SLOTS, RUSH_CAPACITY)
        RESULTS.mkdir(exist_ok=True)
        self.tokens_file = RESULTS / "tokens.txt"
        self.tokens_file.write_text("\n".join(seed.bearer_tokens(dsn_for(APP_DB), self.seeded.patient_ids, self.secret_key)) + "\n")
        # The in-process app signs the browsers' cookies (and later times the scale pages).
        os.environ.update(self.app_env)
        from expertbook import create_app

        self.app = create_app()
        self.cookies_file = RESULTS / "cookies.txt"
        patients = self.seeded.patient_ids[:CONNECTIONS]
        self.cookies_file.write_text("\n".join(seed.session_cookie(self.app, self.seeded.session_tokens[p]) for p in patients) + "\n")
        print(f"  {SLOTS} slots + {RUSH_SLOTS} rush slots of {RUSH_CAPACITY}, {PATIENTS} patients, migrations applied")

    def servers_up(self) -> None:
        banner(f"gunicorn -w {WORKERS} (sync) for both apps")
        self.floor = harness.start_gunicorn(
            "floor", "baseline_app:app", {"BASE_DSN": dsn_for(FLOOR_DB)}, WORKERS, chdir=harness.SHARED_BENCH, ready_path="/hello"
        )
        self.servers.append(self.floor)
        self.app_server = harness.start_gunicorn("app", "wsgi:app", self.app_env, WORKERS, ready_path="/healthz")
        self.servers.append(self.app_server)
        print(f"  floor {self.floor.url}   app {self.app_server.url}")

    # ------------------------------------------------------------------ load

    def wrk(self, key: str, server: harness.Server, script: Path, env: dict | None = None, threads: int = 2, seconds: int | None = None, record: bool = True) -> harness.WrkResult:
        """One recorded wrk run (after a short unrecorded warm-up: workers import lazily and fill their pools)."""
        env = self._env(key, env)
        harness.wrk(key + "-warmup", server.url, script, CONNECTIONS, WARMUP_SECONDS, threads, {**env, "BENCH_RUN": f"{self.run_id}{key}w"})
        profiler = self.profile(key, server) if PROFILE and server is self.app_server else None
        result = harness.wrk(key, server.url, script, CONNECTIONS, seconds or SECONDS, threads, env)
        if profiler:
            profiler.wait()
        if record:
            self.results["wrk"][key] = asdict(result)
        self._print(result)
        return result

    def pair(self, *loads: tuple) -> None:
        """Measure the floor and the app's loads in turn, ROUNDS times each (the order reversed every
        other round), so a burst of load from elsewhere on the machine falls on both sides of a ratio."""
        runs: dict[str, list[harness.WrkResult]] = {}
        for key, server, script, env in loads:
            harness.wrk(key + "-warmup", server.url, script, CONNECTIONS, WARMUP_SECONDS, 2, {**self._env(key, env), "BENCH_RUN": f"{self.run_id}{key}w"})
        piece = max(SECONDS // ROUNDS, 2)
        for round_number in range(ROUNDS):
            for key, server, script, env in loads if round_number % 2 == 0 else reversed(loads):
                profiler = self.profile(key, server, piece) if PROFILE and server is self.app_server and round_number == 0 else None
                env = self._env(key, env, round_number)
                runs.setdefault(key, []).append(harness.wrk(key, server.url, script, CONNECTIONS, piece, 2, env))
                if profiler:
                    profiler.wait()
        for key, results in runs.items():
            combined = harness.combine(key, results)
            self.results["wrk"][key] = asdict(combined)
            self._print(combined)

    def _env(self, key: str, env: dict | None, round_number: int = 0) -> dict:
        return {"BENCH_RUN": f"{self.run_id}{key}{round_number}", "BENCH_TOKENS": str(self.tokens_file), "BENCH_COOKIES": str(self.cookies_file), **(env or {})}

    @staticmethod
    def _print(result: harness.WrkResult) -> None:
        extra = {k: v for k, v in result.extra.items() if k not in ("rounds", "p99_rounds")}
        print(f"  {result.label:<22} {result.requests_per_s:>9.1f} req/s   p50 {result.p50_ms:7.1f} ms   p99 {result.p99_ms:7.1f} ms   {extra}", flush=True)

    def profile(self, key: str, server: harness.Server, seconds: int | None = None):
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        pid = server.worker_pids()[0]
        out = RESULTS / (f"profile-{key}.txt" if PROFILE_RAW else f"profile-{key}.svg")
        fmt = ["-f", "raw"] if PROFILE_RAW else []
        return subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(seconds or SECONDS), "-o", str(out), "--nonblocking", *fmt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def load(self) -> None:
        s = self.seeded
        slots = {"SLOT_FIRST": str(s.slot_first), "SLOTS": str(s.slot_count)}
        banner(f"load: wrk, {CONNECTIONS} connections, {SECONDS} s per run (after a {WARMUP_SECONDS} s warm-up)")
        wanted = lambda part: not ONLY or part in ONLY  # noqa: E731
        floor_book = ("floor_book", self.floor, harness.SHARED_BENCH / "book.lua", {"SLOTS": str(SLOTS)})
        if wanted("book"):
            self.pair(floor_book, ("api_book", self.app_server, HERE / "book_api.lua", slots))
        elif wanted("flow"):
            self.wrk(*floor_book)
        if wanted("fragment"):
            self.pair(
                ("floor_avail", self.floor, harness.SHARED_BENCH / "avail.lua", {"SLOTS": str(SLOTS)}),
                ("fragment", self.app_server, HERE / "avail.lua", {**slots, "WITH_COOKIE": "1"}),
                # The polling path: each thread keeps the ETags it saw; 100 slots, as open pages re-poll theirs.
                ("fragment_304", self.app_server, HERE / "avail.lua", {"SLOT_FIRST": str(s.slot_first), "SLOTS": "100", "CONDITIONAL": "1", "WITH_COOKIE": "1"}),
            )
        if wanted("flow"):
            # One connection per wrk thread: each thread is one browser walking the flow.
            self.wrk("browser_flow", self.app_server, HERE / "flow.lua", {"BENCH_DATES": ",".join(s.dates[:30])}, threads=CONNECTIONS)
        if wanted("rush"):
            # The rush: every connection on a few small sessions at once, until all are full (at most 3 rounds),
            # to check that nothing is overbooked and every refusal is a clean 409.
            rush = {"SLOT_FIRST": str(s.rush_first), "SLOTS": str(s.rush_count)}
            rounds = []
            for round_number in range(3):
                # No warm-up here: it would take the places the recorded run is meant to fight over.
                rounds.append(harness.wrk("rush", self.app_server.url, HERE / "book_api.lua", CONNECTIONS, 5, 2, self._env("rush", rush, round_number)))
                if self.rush_full() == s.rush_count:
                    break
            result = harness.combine("rush", rounds)
            self.results["wrk"]["rush"] = asdict(result)
            self._print(result)
        rss = self.app_server.worker_rss_mb()
        self.results["rss_mb"] = {"app_workers": rss, "floor_workers": self.floor.worker_rss_mb()}
        print(f"  app worker RSS after the load: {', '.join(f'{x:.1f}' for x in rss)} MB")

    def rush_full(self) -> int:
        with psycopg.connect(dsn_for(APP_DB)) as conn:
            return conn.execute(
                "SELECT count(*) FROM slots WHERE id >= %s AND id < %s AND booked_count = capacity",
                (self.seeded.rush_first, self.seeded.rush_first + self.seeded.rush_count),
            ).fetchone()[0]

    def check_bookings(self) -> None:
        banner("bookings checked in SQL")
        with psycopg.connect(dsn_for(APP_DB)) as conn:
            overbooked = conn.execute("SELECT count(*) FROM slots WHERE booked_count > capacity").fetchone()[0]
            miscounted = conn.execute(
                """SELECT count(*) FROM slots s LEFT JOIN (
                       SELECT slot_id, count(*) FILTER (WHERE status <> 'cancelled') AS live, count(*) AS issued
                       FROM appointments GROUP BY slot_id) a ON a.slot_id = s.id
                   WHERE s.booked_count <> coalesce(a.live, 0) OR s.tokens_issued <> coalesce(a.issued, 0)"""
            ).fetchone()[0]
            gaps = conn.execute(
                """SELECT count(*) FROM (SELECT slot_id FROM appointments GROUP BY slot_id
                   HAVING min(token_number) <> 101 OR max(token_number) <> 100 + count(*)
                       OR count(DISTINCT token_number) <> count(*)) g"""
            ).fetchone()[0]
            booked, rush_full = conn.execute(
                "SELECT (SELECT count(*) FROM appointments), (SELECT count(*) FROM slots WHERE id >= %s AND id < %s AND booked_count = capacity)",
                (self.seeded.rush_first, self.seeded.rush_first + self.seeded.rush_count),
            ).fetchone()
        self.results["checks"] = {
            "appointments": booked,
            "slots_overbooked": overbooked,
            "slots_whose_counters_disagree_with_rows": miscounted,
            "slots_with_token_gaps_or_duplicates": gaps,
            "rush_slots_filled_exactly": f"{rush_full}/{self.seeded.rush_count}",
        }
        for key, value in self.results["checks"].items():
            print(f"  {key:<42} {value}")

    # ------------------------------------------------------------------ scale

    def scale(self) -> None:
        banner("scale: 100,000 slots and 1,000,000 appointments")
        started = time.monotonic()
        data = seed.seed_scale(dsn_for(APP_DB), 100_000, 1_000_000)
        self.results["scale"]["load_seconds"] = round(time.monotonic() - started, 1)
        print(f"  loaded in {self.results['scale']['load_seconds']} s; timing pages in-process (WSGI call + body), p50 of 200")
        pages = [
            ("search", "/clinic/search", data.patient_session),
            ("search_filtered", f"/clinic/search?date={data.search_date}&specialization=cardio", data.patient_session),
            ("staff_slot_list", "/clinic/staff/slots", data.staff_session),
            ("my_appointments", "/clinic/my-appointments", data.patient_session),
        ]
        self.results["scale"]["my_appointments_rows"] = data.patient_appointments
        cookies = {}
        for label, path, token in pages:
            cookie = cookies.setdefault(token, seed.session_cookie(self.app, token))
            measured = servertime.measure(self.app, label, path, cookie)
            if measured.status != 200:
                raise RuntimeError(f"{path} answered {measured.status} during the scale timing")
            self.results["scale"][label] = asdict(measured)
            print(f"  {label:<18} p50 {measured.p50_ms:6.2f} ms   p90 {measured.p90_ms:6.2f} ms   {measured.bytes:,} bytes   {path}")

    # ------------------------------------------------------------------ report

    def verdicts(self) -> list[tuple[str, str, str, str]]:
        """(figure, value, target, verdict) rows; verdict is PASS, MISS or "" for information only."""
        w = self.results["wrk"]
        rows: list[tuple[str, str, str, str]] = []

        def ratio(name: str, mine: str, floor: str, target: float | None, mine_value: float | None = None) -> None:
            value = mine_value if mine_value is not None else w[mine]["requests_per_s"]
            r = value / w[floor]["requests_per_s"]
            self.results.setdefault("ratios", {})[name] = round(r, 3)
            rows.append((f"{name} / floor", f"{r:.2f}x", f">= {target}x" if target else "(info)", ("PASS" if r >= target else "MISS") if target else ""))

        def rate(key: str, label: str) -> None:
            r = w[key]
            rows.append((label, f"{r['requests_per_s']:.0f}/s  p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms", "", ""))

        def p99(key: str, label: str) -> None:
            value = w[key]["p99_ms"]
            rows.append((label, f"{value:.1f} ms", "<= 150 ms", "PASS" if value <= 150 else "MISS"))

        if "floor_book" in w:
            rate("floor_book", "floor POST /book")
        if "api_book" in w:
            rate("api_book", "API booking (bookings/s)")
            ratio("API booking", "api_book", "floor_book", 0.6)
            p99("api_book", "API booking p99")
            bad = w["api_book"]["extra"].get("other", 0) + w["api_book"]["errors"]
            rows.append(("API booking answers other than 201", str(bad), "0", "PASS" if bad == 0 else "MISS"))
        if "fragment" in w:
            rate("floor_avail", "floor GET /avail")
            rate("fragment", "fragment, 200 path")
            ratio("fragment 200", "fragment", "floor_avail", 0.6)
            p99("fragment", "fragment p99")
            r = w["fragment_304"]
            rate("fragment_304", f"fragment, conditional ({r['extra'].get('not_modified', 0)} of {r['requests']} were 304)")
            ratio("fragment conditional", "fragment_304", "floor_avail", None)
        if "browser_flow" in w:
            flow = w["browser_flow"]
            flow_rate = flow["extra"].get("bookings", 0) / flow["extra"].get("seconds", SECONDS)
            self.results["browser_flow_bookings_per_s"] = round(flow_rate, 1)
            rows.append(("browser flow (5 requests per booking)", f"{flow_rate:.1f} bookings/s  ({flow['requests_per_s']:.0f} req/s, p99 {flow['p99_ms']:.0f} ms, {flow['extra'].get('broken', 0)} broken)", "", ""))
            ratio("browser flow", "browser_flow", "floor_book", None, mine_value=flow_rate)
        c = self.results["checks"]
        broken = c["slots_overbooked"] + c["slots_whose_counters_disagree_with_rows"] + c["slots_with_token_gaps_or_duplicates"]
        rows.append(("overbooked / miscounted / token gaps", f"{c['slots_overbooked']} / {c['slots_whose_counters_disagree_with_rows']} / {c['slots_with_token_gaps_or_duplicates']}", "0 / 0 / 0", "PASS" if broken == 0 else "MISS"))
        if "rush" in w:
            rush_ok = c["rush_slots_filled_exactly"] == f"{RUSH_SLOTS}/{RUSH_SLOTS}"
            rows.append(("rush: slots filled exactly to capacity", c["rush_slots_filled_exactly"], f"{RUSH_SLOTS}/{RUSH_SLOTS}", "PASS" if rush_ok else "MISS"))
        for label in ("search", "search_filtered", "staff_slot_list", "my_appointments"):
            if label in self.results["scale"]:
                value = self.results["scale"][label]["p50_ms"]
                rows.append((f"scale: {label} p50 (server time)", f"{value:.2f} ms", "<= 20 ms", "PASS" if value <= 20 else "MISS"))
        rss = max(self.results["rss_mb"]["app_workers"] or [0])
        rows.append(("worker RSS after the load (max)", f"{rss:.1f} MB", "<= 120 MB", "PASS" if rss <= 120 else "MISS"))
        return rows

    def report(self) -> None:
        self.results["load_average_after"] = load_average()
        rows = self.verdicts()
        self.results["table"] = [dict(zip(("figure", "value", "target", "verdict"), row)) for row in rows]
        banner(f"results (load average before {self.results['load_average_before']}, after {self.results['load_average_after']})")
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for figure, value, target, verdict in rows:
            print(f"  {figure:<{widths[0]}}  {value:<{widths[1]}}  {target:<{widths[2]}}  {verdict}")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = RESULTS / f"bench-{stamp}.json"
        out.write_text(json.dumps(self.results, indent=2, default=str))
        misses = [r[0] for r in rows if r[3] == "MISS"]
        print(f"\n  {'all targets met' if not misses else 'MISSED: ' + '; '.join(misses)}\n  saved {out.relative_to(ROOT)}")

    def cleanup(self) -> None:
        for server in self.servers:
            server.stop()
        flush_bench_redis()
        if getattr(self, "app", None) is not None:
            from expertbook.extensions import db

            with self.app.app_context():
                db.engine.dispose()
        if KEEP:
            print(f"  kept databases {APP_DB}, {FLOOR_DB} (BENCH_KEEP_DBS=1)")
            return
        for name in (APP_DB, FLOOR_DB):
            try:
                harness.psql(ADMIN_DSN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except subprocess.CalledProcessError as error:
                print(f"  could not drop {name}: {error}", file=sys.stderr)
        for name in ("tokens.txt", "cookies.txt"):
            (RESULTS / name).unlink(missing_ok=True)


def flush_bench_redis() -> None:
    """Empty the bench's own Redis database (never any other)."""
    if REDIS_URL:
        from redis import Redis

        Redis.from_url(REDIS_URL).flushdb()


def main() -> int:
    if not REDIS_URL:
        print("set BENCH_REDIS_URL: the bench measures the app as production runs it, with Redis", file=sys.stderr)
        return 2
    flush_bench_redis()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    run = Run()
    try:
        run.databases()
        run.servers_up()
        run.load()
        for server in run.servers:
            server.stop()
        run.check_bookings()
        if SCALE:
            run.scale()
        run.report()
    finally:
        run.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
