"""The web interface in a real browser: headless Chromium from the system packages, driven by
Playwright's Python package (never a downloaded browser). Skips with the reason when either is absent.

``ARTIFACTD_SCREENSHOTS=1`` also writes docs/ui-home.png and docs/ui-package.png.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.webutil import configure, populate

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.integration

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium chromium-driver; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e '.[test]')")
    profile = tempfile.mkdtemp(prefix="artifactd-chromium-")
    with sync_api.sync_playwright() as p:
        try:
            ctx = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                viewport={"width": 1280, "height": 860}, java_script_enabled=False)
        except Exception as exc:  # e.g. a broken chromium install
            shutil.rmtree(profile, ignore_errors=True)
            pytest.skip(f"chromium at {CHROMIUM} could not be started: {exc}")
        ctx.set_default_timeout(15_000)
        yield ctx
        ctx.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    chromium.clear_cookies()
    pg = chromium.new_page()
    blocked: list[str] = []

    def only_loopback(route: Any) -> None:  # nothing may leave the machine
        if route.request.url.startswith(("http://127.0.0.1", "data:", "about:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    pg.route("**/*", only_loopback)
    yield pg
    pg.close()
    assert not blocked, f"the page tried to reach {blocked}"


@pytest.fixture
def site(server: Any, tmp_path: Path) -> Any:
    configure(server.app, tmp_path)
    populate(server.app, tmp_path)
    return server


def _shot(page: Any, name: str) -> None:
    if os.environ.get("ARTIFACTD_SCREENSHOTS") == "1":
        page.screenshot(path=str(ROOT / "docs" / name), full_page=False)


def test_log_in_browse_to_a_package_see_its_advisory_and_preview_cleanup(page: Any, site: Any) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)  # CSP violations land here
    page.goto(site.url + "/")
    assert page.url.endswith("/ui/")
    assert page.locator("table").first.is_visible()
    assert "secret" not in page.locator("main").inner_text()  # private repository hidden when logged out

    page.click("text=Log in")
    page.fill("input[name=username]", "__token__")
    page.fill("input[name=password]", site.token)
    page.click("form.login button[type=submit]")
    assert page.url.endswith("/ui/")
    assert page.locator("nav.top .who").inner_text().startswith("admin")
    assert page.locator("main a", has_text="secret").count() == 1
    _shot(page, "ui-home.png")

    page.click("main >> text=pypi-local")
    page.fill("input[name=q]", "req")
    page.click("form.search button")
    page.click("main table >> text=requests")
    page.click("main table >> text=2.2.1")
    assert page.locator("h1").inner_text() == "requests 2.2.1"
    advisories = page.locator("table.advisories")
    assert "PYSEC-2014-14" in advisories.inner_text() and "2.3.0" in advisories.inner_text()
    assert advisories.locator(".badge-high").count() == 1
    page.locator("#advisories").scroll_into_view_if_needed()
    _shot(page, "ui-package.png")

    page.click("nav.top >> text=Health")
    assert page.locator("svg").count() >= 2
    page.click("nav.top >> text=Cleanup")
    assert "requests-2.2.1-py3-none-any.whl" in page.locator("main").inner_text()
    page.click("text=Run cleanup")
    assert "1 file deleted" in page.locator("main").inner_text()

    page.click("nav.top >> text=Log out")
    assert page.url.endswith("/ui/")
    assert "secret" not in page.locator("main").inner_text()
    assert page.locator("nav.top >> text=Log in").count() == 1
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_private_repository_hidden_and_xss_inert(page: Any, site: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    response = page.goto(site.url + "/ui/repo/secret/")
    assert response.status == 404
    assert "hidden-thing" not in page.content()
    page.goto(site.url + "/ui/repo/pypi-local/?q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert page.locator("input[name=q]").input_value() == "<script>alert(1)</script>"
    assert page.locator("script").count() == 0
    assert not dialogs
