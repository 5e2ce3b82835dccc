"""Regenerate the README's screenshots: ``make screenshots`` (or ``.venv/bin/python docs/screenshots/make_screenshots.py``).

It needs nothing running. It makes a throwaway SQLite database with the demo data, starts
``flask run`` on a free loopback port, drives Debian's Chromium (``/usr/bin/chromium``, or
``$CHROMIUM``) headless through Playwright, saves the PNGs next to this file, and stops the server
and deletes the database, whatever happens.

- ``clinic-token-phone.png``: a patient's clinic booking confirmation with its token number, 390 px wide (a phone).
- ``expert-booking-desktop.png``: an expert's booking page with a day's free times, 1280 px wide.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
FLASK = [str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi"]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PATIENT = "patient@demo.expertbook.example"
PASSWORD = "demo-password-1"  # the demo's default (DEMO_PASSWORD is cleared below so it stays so)
START_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(database: Path) -> dict[str, str]:
    """The server's environment: development mode, the throwaway database, no Redis and no mail server."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "MAIL_SERVER", "DEMO_PASSWORD", "RATELIMIT_STORAGE_URI"}}
    env.update(EXPERTBOOK_ENV="development", DATABASE_URL=f"sqlite:///{database}")
    return env


@contextmanager
def demo_server():
    """Yield the base URL of a development server with fresh demo data; stop it and remove its data afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="expertbook-shots-"))
    env = _environment(workdir / "demo.sqlite3")
    server = None
    try:
        # The demo writes every email it causes to the log: keep that out of the terminal.
        with open(workdir / "setup.log", "w") as log:
            subprocess.run([*FLASK, "db", "upgrade"], cwd=ROOT, env=env, stdout=log, stderr=log, check=True, timeout=120)
            subprocess.run([*FLASK, "demo"], cwd=ROOT, env=env, stdout=log, stderr=log, check=True, timeout=120)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [*FLASK, "run", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=open(workdir / "server.log", "w"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start; see {workdir / 'server.log'}")
                time.sleep(0.2)
        yield base
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def _log_in(page, base: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("Email").fill(PATIENT)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")


def clinic_token_phone(browser, base: str) -> Path:
    """A patient books a cardiology session on a 390 px phone and gets the confirmation with the token number."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, timezone_id="Asia/Kolkata", locale="en-GB")
    page = context.new_page()
    _log_in(page, base)
    page.goto(base + "/clinic/search")
    page.get_by_label("Specialization").fill("Cardiology")
    page.get_by_role("button", name="Search").click()
    page.locator("#slot-results tbody tr").first.wait_for()
    page.get_by_role("button", name="Select").first.click()
    page.get_by_label("Patient's name").fill("Priya Raman")
    page.get_by_label("Contact number").fill("9876543210")
    page.get_by_role("button", name="Book appointment").click()
    page.locator("#token-number").wait_for()
    page.get_by_role("link", name="Confirmation page").click()
    page.get_by_role("heading", name="Appointment confirmed").wait_for()
    path = OUT / "clinic-token-phone.png"
    page.screenshot(path=path, full_page=True)
    context.close()
    return path


def expert_booking_desktop(browser, base: str) -> Path:
    """The booking page of an expert who accepts each booking herself: the first day with free times, a time chosen."""
    context = browser.new_context(viewport={"width": 1280, "height": 960}, timezone_id="Europe/London", locale="en-GB")
    page = context.new_page()
    _log_in(page, base)
    page.goto(base + "/expert/meera-iyer/follow-up-video")
    if page.locator("a.day-open").count() == 0:  # late in the month: the free times start next month
        page.get_by_label("Next month").click()
        page.locator("a.day-open").first.wait_for()
    page.locator("a.day-open").first.click()
    page.locator("a.time-slot").nth(1).click()
    page.locator("#booking-form").wait_for()
    path = OUT / "expert-booking-desktop.png"
    page.screenshot(path=path)
    context.close()
    return path


def main() -> None:
    """Make every screenshot and print where each went."""
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium (or set CHROMIUM)")
    with demo_server() as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for shot in (clinic_token_phone, expert_booking_desktop):
                path = shot(browser, base)
                print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")
        finally:
            browser.close()


if __name__ == "__main__":
    sys.exit(main())
