"""What every page test checks in the browser: no sideways scrolling, no CSP violation, axe-core.

The ``browser_page`` fixture (tests/conftest.py) launches Debian's Chromium, opens pages at a chosen
viewport and fails the test on any console error or CSP violation. :func:`audit` adds the per-page
checks of issue 14: the page is no wider than the window, the document saw no CSP violation, and
axe-core finds nothing serious or critical.

axe-core is the npm package's ``axe.min.js``, vendored under tests/browser_vendor/ (refresh it with
``npm pack axe-core@<version>`` in a temporary folder). The page's CSP allows only same-origin scripts,
so Playwright's ``add_script_tag(path=...)`` (an inline script) would be refused; instead the file is
served at a same-origin test-only path through ``page.route`` and added with ``add_script_tag(url=...)``.
"""
from __future__ import annotations

import json
from pathlib import Path

AXE_VERSION = "4.14.1"
AXE = Path(__file__).resolve().parent / "browser_vendor" / f"axe-core-{AXE_VERSION}.min.js"
AXE_PATH = "/__test__/axe-core.min.js"

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
VIEWPORTS = {"phone": PHONE, "desktop": DESKTOP}

# Recorded on every document by the browser_page fixture's init script.
CSP_VIOLATIONS = "() => (window.__cspViolations || []).slice()"

OVERFLOW = """() => {
  const width = window.innerWidth;
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width && box.right > width + 1) {
      wide.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '') + ' right=' + Math.round(box.right));
    }
    if (wide.length >= 8) break;
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: width, wide: wide};
}"""


def serve_axe(page) -> None:
    """Answer AXE_PATH on the page's own origin with the vendored axe-core (call once per page)."""
    page.route(f"**{AXE_PATH}", lambda route: route.fulfill(path=str(AXE), content_type="application/javascript"))


def assert_no_overflow(page) -> None:
    """The page does not scroll sideways: ``document.documentElement.scrollWidth <= innerWidth``."""
    found = page.evaluate(OVERFLOW)
    assert found["scrollWidth"] <= found["innerWidth"], (
        f"{page.url} is {found['scrollWidth']} px wide in a {found['innerWidth']} px window; too wide: {found['wide']}"
    )


def assert_no_csp_violation(page) -> None:
    """This document has seen no Content-Security-Policy violation."""
    violations = page.evaluate(CSP_VIOLATIONS)
    assert violations == [], f"CSP violations on {page.url}: {violations}"


def axe_problems(page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """axe-core's violations of the given impacts on the current page, one line per rule."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(url=AXE_PATH)
    result = page.evaluate("async () => (await window.axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {json.dumps([n['target'] for n in v['nodes']][:5])}"
        for v in result
        if v.get("impact") in impacts
    ]


def audit(page, what: str = "") -> None:
    """Every check of issue 14 on the page as it is now: no overflow, no CSP violation, axe-core clean."""
    page.wait_for_load_state("load")
    assert_no_overflow(page)
    assert_no_csp_violation(page)
    problems = axe_problems(page)
    assert not problems, f"axe-core on {what or page.url}:\n" + "\n".join(problems)


def log_in(page, base: str, email: str, password: str | None = None) -> None:
    """Log in through the login form, as a person would, and wait for the page it goes to."""
    from tests.factories import PASSWORD

    page.goto(base + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password or PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")
