"""Headless Chromium for the browser tests: where it is, how it starts, and the accessibility
check with axe-core (installed from npm by scripts/ensure-agents.sh).

Playwright's sync API runs an event loop in the test's thread while the browser is open, so
every database read and write happens before the browser starts or after it closes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "artifacts" / "screenshots"
AXE = Path(settings.BASE_DIR) / "tests" / "agents" / "node_modules" / "axe-core" / "axe.min.js"
# Impacts that fail the check: axe's "serious" and "critical" (not "moderate" or "minor").
AXE_FAILING = ("serious", "critical")


@contextmanager
def chromium(*, axe: bool = False) -> Iterator[Any]:
    """A Playwright Browser, closed on exit; skips the test when Chromium (or, with AXE,
    axe-core) is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    if axe and not AXE.exists():
        pytest.skip(f"{AXE} is missing: run scripts/ensure-agents.sh")
    sync_api = pytest.importorskip("playwright.sync_api")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def axe_violations(page: Any) -> list[str]:
    """The serious and critical WCAG 2.x A/AA violations axe-core finds on PAGE, one line
    each: rule, impact, and the first few offending elements with axe's summary."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    results = page.evaluate(
        """async () => {
            const found = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                                 "best-practice"]},
                resultTypes: ["violations"],
            });
            return found.violations.map(v => ({
                id: v.id, impact: v.impact,
                nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary
                    .replace(/\\s+/g, " ")),
            }));
        }"""
    )
    return [
        f"{v['id']} ({v['impact']}): " + " | ".join(v["nodes"][:3])
        for v in results
        if v["impact"] in AXE_FAILING
    ]
