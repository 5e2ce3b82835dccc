"""Screenshots of the phone pages (360 x 740), taken from the demo data in a throwaway database.

    .venv/bin/python docs/screenshots/phone_screenshots.py            # writes docs/screenshots/phone-*.png
    .venv/bin/python docs/screenshots/phone_screenshots.py --check    # also checks each page (overflow, CSP, axe-core)
    .venv/bin/python docs/screenshots/phone_screenshots.py --only calendars   # only the expert's calendar page

It builds a fresh SQLite database in a temporary folder, loads ``flask demo``'s data, serves the app on a
free loopback port and drives Debian's Chromium (``/usr/bin/chromium``, or ``$CHROMIUM``) through
Playwright, logged in as the demo patient and the demo hospital staff. Nothing outside the temporary
folder and docs/screenshots/ is touched. ``--width``/``--height`` take other sizes (the files are then
named ``<width>-*.png``). The calendar page is taken with a real Radicale CalDAV server and the Google
stand-in, both on loopback, which the script starts and stops.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from expertbook import create_app  # noqa: E402
from tests import browser as checks  # noqa: E402

OUT = Path(__file__).resolve().parent
PASSWORD = "demo-password-1"
PATIENT = "patient@demo.expertbook.example"
STAFF = "staff@demo.expertbook.example"
EXPERT = "expert@demo.expertbook.example"


def _app(folder: Path, extra: dict | None = None):
    from flask_migrate import upgrade

    from expertbook import demo
    from expertbook.extensions import db

    app = create_app(
        {
            "PRODUCTION": False,
            "SECRET_KEY": "screenshots-only",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'screens.sqlite3'}",
            "REDIS_URL": None,
            "RUN_JOBS_INLINE": True,
            "MAIL_SERVER": None,
            "RATELIMIT_STORAGE_URI": "memory://",
            "SESSION_COOKIE_SECURE": False,
            # The webhook screenshots send to a receiver on loopback (see _receiver).
            "WEBHOOK_ALLOW_HTTP": True,
            "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True,
            "WEBHOOK_RETRY_BASE_SECONDS": 0.1,
            "WEBHOOK_RETRY_MAX_SECONDS": 0.2,
        } | (extra or {})
    )
    with app.app_context():
        upgrade()
        demo.load(PASSWORD)
        db.session.remove()
    return app


def _serve(app) -> tuple[str, object]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def _receiver(answers: list[int]) -> tuple[str, object]:
    """A webhook receiver on loopback that answers ``answers`` in turn, then 200."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = answers.pop(0) if answers else 200
            body = b"ok" if status == 200 else b"upstream HMIS is restarting"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/hmis/expertbook-events", server


class Shooter:
    def __init__(self, base: str, browser, viewport: dict, check: bool, prefix: str, app=None):
        self.base, self.browser, self.viewport, self.check, self.prefix = base, browser, viewport, check, prefix
        self.app = app
        self.problems: list[str] = []
        self.taken: list[str] = []

    def page(self):
        context = self.browser.new_context(viewport=self.viewport)
        context.add_init_script(
            "window.__cspViolations = [];"
            "document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(e.violatedDirective));"
        )
        page = context.new_page()
        page.set_default_timeout(15000)
        page.on("console", lambda msg: msg.type == "error" and self.problems.append(f"console on {page.url}: {msg.text}"))
        checks.serve_axe(page)
        return page

    def log_in(self, page, email: str) -> None:
        page.goto(self.base + "/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(self.base + "/")

    def shot(self, page, name: str, full_page: bool = False, audit: bool = True) -> None:
        page.wait_for_load_state("load")
        if self.check and audit:
            try:
                checks.audit(page, name)
            except AssertionError as error:
                self.problems.append(f"{name}: {error}")
        path = OUT / f"{self.prefix}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path.name)


def run_calendars(shooter: Shooter, radicale) -> None:
    """The demo expert's calendar page: CalDAV (Radicale) and Google (the stand-in) connected, then CalDAV down."""
    base = shooter.base
    radicale.calendar("Work")
    radicale.calendar("Personal")
    radicale.calendar("ExpertBook bookings")
    expert = shooter.page()
    shooter.log_in(expert, EXPERT)
    expert.goto(base + "/calendars/")
    form = expert.locator("#caldav-form")
    form.get_by_label("Server address").fill(radicale.url)
    form.get_by_label("User name").fill("expert")
    form.get_by_label("App password").fill("app-password-1234")
    form.get_by_role("button", name="Connect CalDAV").click()
    expert.wait_for_url(base + "/calendars/")
    caldav = expert.locator(".calendar-connection").first
    caldav.get_by_label("ExpertBook bookings").nth(1).check()  # the second one: "Write bookings into"
    caldav.get_by_role("button", name="Save choices").click()
    caldav = expert.locator(".calendar-connection").first
    caldav.get_by_text("Saved.").wait_for()
    expert.get_by_role("button", name="Connect Google Calendar").click()
    expert.wait_for_url(base + "/calendars/")
    shooter.shot(expert, "calendars", full_page=True)
    radicale.stop()
    expert.locator(".calendar-connection").first.get_by_role("button", name="Check now").click()
    expert.locator('.calendar-connection [data-state="unreachable"]').wait_for()
    expert.locator(".calendar-connection").first.scroll_into_view_if_needed()
    shooter.shot(expert, "calendars-error")


def run(shooter: Shooter) -> None:
    base = shooter.base
    patient = shooter.page()
    patient.goto(base + "/")
    shooter.shot(patient, "home")
    if patient.locator(".menu-toggle").is_visible():
        patient.locator(".menu-toggle").click()
        shooter.shot(patient, "menu-open")

    shooter.log_in(patient, PATIENT)
    patient.goto(base + "/clinic/search?specialization=Cardiology")
    shooter.shot(patient, "search")
    patient.locator("#slot-results tbody tr").first.get_by_role("button", name="Select").click()
    patient.locator("#booking-form").wait_for()
    shooter.shot(patient, "book-form")
    patient.get_by_label("Patient's name").fill("Priya Raman")
    patient.get_by_label("Contact number").fill("9876543210")
    patient.get_by_role("button", name="Book appointment").click()
    patient.wait_for_url(re.compile(r"/clinic/appointments/\d+$"))
    shooter.shot(patient, "confirmation", full_page=True)
    confirmation = patient.url
    patient.emulate_media(media="print")
    shooter.shot(patient, "token-slip-print", full_page=True, audit=False)  # a print preview, not a screen
    patient.emulate_media(media="screen")

    patient.goto(base + "/clinic/my-appointments")
    shooter.shot(patient, "my-appointments")
    patient.goto(confirmation)
    patient.get_by_role("button", name="Cancel this appointment").click()
    shooter.shot(patient, "cancel-question")
    patient.get_by_role("button", name=re.compile(r"^Yes, cancel token")).click()
    patient.wait_for_url(confirmation)
    shooter.shot(patient, "cancelled")

    patient.goto(base + "/expert/sivakumar/technology-consulting-session")
    patient.locator("#month-calendar").wait_for()
    shooter.shot(patient, "expert-booking", full_page=True)
    patient.goto(base + "/my-bookings")
    shooter.shot(patient, "my-bookings", full_page=True)

    staff = shooter.page()
    shooter.log_in(staff, STAFF)
    staff.goto(base + "/clinic/staff/slots")
    shooter.shot(staff, "staff-slots")
    # A session with a few bookings, whose first patient the desk calls.
    busy = staff.evaluate(
        "() => [...document.querySelectorAll('#staff-slots tbody tr')].map(r => [r.querySelector('a').href,"
        " parseInt(r.querySelector('[id$=-count]').textContent)]).filter(([, n]) => n >= 3)[0][0]"
    )
    staff.goto(busy)
    staff.get_by_role("button", name="Call next").click()
    staff.locator("#staff-now-serving").filter(has_text=re.compile(r"\d")).wait_for()
    shooter.shot(staff, "staff-slot", full_page=True)
    slot_id = staff.url.rsplit("/", 1)[1]
    # A walk-in at the desk, and the slip the desk prints for them (the patient's slip design).
    walk_in = staff.locator("#walk-in")
    walk_in.get_by_label("Patient's name").fill("Ravi Kumar")
    walk_in.get_by_label("Contact number").fill("9123456780")
    walk_in.get_by_role("button", name="Give the next token").click()
    slip = staff.locator("#print-slip")
    slip.wait_for()
    staff.goto(base + slip.get_attribute("href").replace("print=1", ""))
    staff.emulate_media(media="print")
    shooter.shot(staff, "desk-slip-print", full_page=True, audit=False)  # a print preview, not a screen
    staff.emulate_media(media="screen")

    screen = shooter.page()
    screen.goto(f"{base}/clinic/slots/{slot_id}/now-serving")
    shooter.shot(screen, "now-serving")
    screen.goto(f"{base}/clinic/slots/{slot_id}/now-serving?theme=dark")
    shooter.shot(screen, "now-serving-dark")

    # Webhooks: the staff admin adds one (the secret is shown once), sends two test events to a receiver
    # that fails once, and reads the delivery log after the retry.
    url, receiver = _receiver([500])
    try:
        staff.goto(base + "/webhooks/new")
        staff.get_by_label("Endpoint URL").fill(url)
        staff.get_by_label("appointment.booked", exact=False).check()
        staff.get_by_label("appointment.cancelled", exact=False).check()
        staff.get_by_label("Description (optional)").fill("Hospital HMIS")
        staff.get_by_role("button", name="Add the webhook").click()
        staff.locator("#secret-value").wait_for()
        shooter.shot(staff, "webhook-secret")
        staff.get_by_role("button", name="I have saved it: open the webhook").click()
        staff.get_by_role("button", name="Send test event").click()
        staff.locator(".delivery").first.wait_for()
        staff.get_by_role("button", name="Send test event").click()
        staff.locator(".delivery").nth(1).wait_for()
        if shooter.app is not None:
            import time

            from sqlalchemy import select

            from expertbook.extensions import db
            from expertbook.webhooks import delivery
            from expertbook.webhooks.models import UNFINISHED, WebhookDelivery

            with shooter.app.app_context():
                for _ in range(100):  # the retry falls due a fraction of a second later
                    time.sleep(0.1)
                    delivery.relay()
                    if db.session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.status.in_(UNFINISHED))) is None:
                        break
                db.session.remove()
        staff.reload()
        staff.locator(".delivery-delivered").nth(1).wait_for()
        staff.eval_on_selector_all("details.attempts", "all => all.forEach(d => { d.open = true; })")
        shooter.shot(staff, "webhook-log", full_page=True)
    finally:
        receiver.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="check each page: no overflow, no CSP violation, axe-core clean")
    parser.add_argument("--width", type=int, default=checks.PHONE["width"])
    parser.add_argument("--height", type=int, default=checks.PHONE["height"])
    parser.add_argument("--only", choices=["calendars"], help="take only these pages")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from expertbook.devtools.google_standin import GoogleServer
    from tests.calendars.radicale_server import Radicale

    prefix = "phone" if (args.width, args.height) == (checks.PHONE["width"], checks.PHONE["height"]) else str(args.width)
    with tempfile.TemporaryDirectory() as folder, GoogleServer() as google:
        (Path(folder) / "radicale").mkdir()
        radicale = Radicale(Path(folder) / "radicale").start()
        calendars = {"CALDAV_ALLOW_HTTP": True, "CALDAV_ALLOW_PRIVATE_ADDRESSES": True} | google.config()
        app = _app(Path(folder), calendars)
        base, server = _serve(app)
        app.config["BASE_URL"] = base  # the Google redirect comes back here
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=["--no-sandbox", "--disable-gpu"])
                shooter = Shooter(base, browser, {"width": args.width, "height": args.height}, args.check, prefix, app)
                try:
                    if args.only != "calendars":
                        run(shooter)
                    run_calendars(shooter, radicale)
                finally:
                    browser.close()
        finally:
            server.shutdown()
            radicale.stop()
    print("wrote " + ", ".join(shooter.taken))
    for problem in shooter.problems:
        print("PROBLEM " + problem)
    return 1 if shooter.problems else 0


if __name__ == "__main__":
    sys.exit(main())
