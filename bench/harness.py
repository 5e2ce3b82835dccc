"""Generic benchmark plumbing: databases, gunicorn processes, wrk runs and memory readings.

Nothing here knows about ExpertBook's tables; bench/run.py does.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The floor app; BENCH_FLOOR_DIR points elsewhere when the checkout is not beside it (a git worktree).
SHARED_BENCH = Path(os.environ.get("BENCH_FLOOR_DIR") or ROOT / ".." / "shared" / "bench").resolve()


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def psql(dsn: str, sql: str | None = None, file: Path | None = None) -> None:
    """Run SQL through psql, stopping at the first error."""
    cmd = ["psql", "-q", "-v", "ON_ERROR_STOP=1", dsn]
    cmd += ["-f", str(file)] if file else ["-c", sql or ""]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def recreate_database(admin_dsn: str, name: str) -> None:
    """Drop and create database ``name`` through the admin connection."""
    psql(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql(admin_dsn, f'CREATE DATABASE "{name}"')


@dataclass
class Server:
    """A gunicorn master process and where it listens."""

    name: str
    process: subprocess.Popen
    url: str
    log: Path

    def worker_pids(self) -> list[int]:
        """The pids of the master's worker processes."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def worker_rss_mb(self) -> list[float]:
        """Resident memory of each worker, in MB (from /proc)."""
        sizes = []
        for pid in self.worker_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            if match:
                sizes.append(int(match.group(1)) / 1024)
        return sizes

    def stop(self) -> None:
        """Stop gunicorn gracefully, then firmly."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_gunicorn(
    name: str,
    app: str,
    env: Mapping[str, str],
    workers: int,
    chdir: Path | None = None,
    ready_path: str = "/",
    extra_args: tuple[str, ...] = (),
) -> Server:
    """Start ``gunicorn app`` on a free loopback port and wait until it answers ``ready_path``."""
    port = free_port()
    log = HERE / "results" / f"{name}.log"
    log.parent.mkdir(exist_ok=True)
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    cmd = [gunicorn, "-w", str(workers), "-b", f"127.0.0.1:{port}", "--log-level", "warning", *extra_args]
    if chdir:
        cmd += ["--chdir", str(chdir)]
    cmd.append(app)
    process = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early; see {log}")
        try:
            with urllib.request.urlopen(url + ready_path, timeout=2):
                break
        except Exception:
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError(f"{name} did not answer within 60 s; see {log}")
    return Server(name, process, url, log)


@dataclass
class WrkResult:
    """What one wrk run measured."""

    label: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    errors: int
    extra: dict = field(default_factory=dict)


def _ms(value: str) -> float:
    number = float(re.match(r"[\d.]+", value).group(0))
    if value.endswith("us"):
        return number / 1000
    if value.endswith("ms"):
        return number
    if value.endswith("m"):
        return number * 60000
    return number * 1000  # seconds


def parse_wrk(label: str, output: str) -> WrkResult:
    """Read throughput, p50/p99 and error counts out of ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors_match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = sum(int(x) for x in errors_match.groups()) if errors_match else 0
    seconds_match = re.search(r"requests in ([\d.]+)(\w+),", output)
    extra: dict = {name: int(value) for name, value in re.findall(r"^BENCH (\w+) (\d+)$", output, re.M)}
    if seconds_match:
        extra["seconds"] = _ms(seconds_match.group(1) + seconds_match.group(2)) / 1000
    return WrkResult(label, rps, p50, p99, total, int(non_2xx_match.group(1)) if non_2xx_match else 0, errors, extra)


def wrk(label: str, url: str, script: Path, connections: int, seconds: int, threads: int = 2, env: Mapping[str, str] | None = None) -> WrkResult:
    """Run wrk with a Lua script against ``url`` and parse its report."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency", "-s", str(script), url]
    done = subprocess.run(cmd, env={**os.environ, "BENCH_DIR": str(HERE), **(env or {})}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(label, done.stdout)


def combine(label: str, results: list[WrkResult]) -> WrkResult:
    """Several wrk runs of the same load as one: throughput over the total time, the mean p50, the
    median of the rounds' p99 (wrk prints percentiles, not histograms, so they cannot be merged
    exactly; the median keeps one round disturbed by another process from deciding it; every
    round's p99 is kept in ``extra``), and summed counters."""
    seconds = sum(r.extra.get("seconds", 0) for r in results)
    requests = sum(r.requests for r in results)
    extra: dict = {}
    for r in results:
        for name, value in r.extra.items():
            extra[name] = extra.get(name, 0) + value
    extra["rounds"] = [round(r.requests_per_s, 1) for r in results]
    extra["p99_rounds"] = [r.p99_ms for r in results]
    return WrkResult(
        label,
        requests / seconds if seconds else 0.0,
        sum(r.p50_ms for r in results) / len(results),
        statistics.median(r.p99_ms for r in results),
        requests,
        sum(r.non_2xx for r in results),
        sum(r.errors for r in results),
        extra,
    )
