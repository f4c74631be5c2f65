"""The shop page in a real browser: Playwright driving Debian's Chromium against a real uvicorn server.

Clicking three products of one category changes the recommendations and the profile panel without a reload
(the page re-renders from its event stream), nothing is fetched from anywhere but the service, and a
screenshot is saved for the README. Without Chromium the test is skipped with the install line, unless
ATELIER_REQUIRE_BROWSER=1 (CI), which turns the skip into a failure.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import REPO, find_chromium

from atelier.core import paths

from .conftest import customer_with_arm


def test_a_missing_browser_is_skipped_with_the_install_line_unless_ci_requires_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ATELIER_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        find_chromium(str(tmp_path / "chromium"))
    monkeypatch.setenv("ATELIER_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="ATELIER_REQUIRE_BROWSER=1 but Chromium is missing"):
        find_chromium(str(tmp_path / "chromium"))


def test_clicks_change_the_page_live_in_chromium(chromium, live, service):
    customer = customer_with_arm(service, "treatment")
    first = service.page(customer)
    category = first["products"][-1]["category"]  # the runner-up category: three views make it the favourite
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    hosts = []
    page.on("request", lambda request: hosts.append(urlparse(request.url).hostname))
    page.goto(f"{live.url}/")
    select = page.get_by_test_id("customer")
    select.locator("option").first.wait_for(state="attached")
    options = select.locator("option").evaluate_all("nodes => nodes.map(n => n.value)")
    assert len(options) >= 4 and options[-1] == str(service._next_visitor)  # segments' examples, then a new visitor
    page.evaluate(f"() => {{ const s = document.getElementById('customer'); s.add(new Option('test', '{customer}'));"
                  f" s.value = '{customer}'; s.dispatchEvent(new Event('change')); }}")
    page.wait_for_function(f"() => document.getElementById('p-customer').textContent.startsWith('{customer}')")
    page.evaluate("() => { window.notReloaded = true; }")
    before_products = page.get_by_test_id("product").evaluate_all("n => n.map(x => x.dataset.product)")
    before_views = page.locator("[data-field=views_per_session]").inner_text()
    updates = int(page.get_by_test_id("updates").inner_text())
    for _ in range(3):
        card = page.locator(f"[data-testid=product][data-category={category}]").first
        card.click()
        updates += 1
        page.wait_for_function(f"() => document.getElementById('p-updates').textContent === '{updates}'")
    after_products = page.get_by_test_id("product").evaluate_all("n => n.map(x => x.dataset.product)")
    after_categories = page.get_by_test_id("product").evaluate_all("n => n.map(x => x.dataset.category)")
    assert after_products != before_products and after_categories[0] == category
    assert page.locator("[data-field=views_per_session]").inner_text() != before_views
    assert page.get_by_test_id("reason").inner_text() == "personalized"
    assert "ms (click → new page)" in page.get_by_test_id("latency").inner_text()
    assert page.evaluate("() => window.notReloaded") is True  # the same document: re-rendered, never reloaded
    page.get_by_test_id("add-to-cart").first.click()
    updates += 1
    page.wait_for_function(f"() => document.getElementById('p-updates').textContent === '{updates}'")
    assert set(hosts) == {"127.0.0.1"}  # nothing fetched from outside (no CDN)
    screenshot = REPO / paths.SHOP_SCREENSHOT
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    assert Path(screenshot).stat().st_size > 10_000
