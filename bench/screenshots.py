"""Every page of the app at the widths people use it: 1400×1000, 1280×720 and 800×1000.

Opens the built-in demo in Chromium, embeds it (pixels), runs HDL, then saves a full-page
screenshot of each page, and of each Review tab, at each viewport under
test-artifacts/screens/<width>x<height>/. Also notes any page that shows an exception or
is wider than the window (a horizontal scroll bar). Not a benchmark: for looking at.

    .venv/bin/python bench/screenshots.py [--out test-artifacts/screens]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _browser import CHROMIUM, CHROMIUM_ARGS, idle, studio_server

VIEWPORTS = [(1400, 1000), (1280, 720), (800, 1000)]
PAGES = ["Data", "Embed", "Choose k", "Label", "Review", "Export", "Teach"]
REVIEW_TABS = ["Gallery", "Map", "Classes", "Label next", "Suspicious seeds", "History"]


def _go(page, title: str) -> None:
    link = page.locator('[data-testid="stSidebarNav"] a', has_text=title).first
    link.wait_for(state="attached")     # a new session draws the navigation after the page
    if not link.is_visible():       # narrow windows fold the sidebar away
        page.locator('[data-testid="stExpandSidebarButton"], [data-testid="stSidebarCollapsedControl"] button').first.click()
        page.wait_for_timeout(300)
    link.click()
    idle(page, 400)
    page.wait_for_timeout(800)      # charts and components draw after the run ends


def _problems(page, name: str) -> list[str]:
    found = []
    if page.locator('[data-testid="stException"]').count():
        found.append(f"{name}: exception shown")
    wide = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    if wide > 2:
        found.append(f"{name}: {wide}px wider than the window")
    return found


def prepare(page) -> None:
    """Demo opened, embedded with pixels, labeled once."""
    page.get_by_text("Open: Demo: handwritten digits").wait_for()
    idle(page)
    _go(page, "Embed")
    page.get_by_text("Pixels (baseline, not CLIP)").first.click()
    idle(page)
    page.get_by_role("button", name="Embed with pixels").click()
    page.get_by_text("1,797 images embedded with").wait_for()
    _go(page, "Label")
    page.get_by_role("button", name="Run HDL").click()
    page.locator('[data-testid="stSlider"]').first.wait_for(timeout=180_000)
    idle(page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent
                                             / "test-artifacts" / "screens"))
    args = parser.parse_args()
    out = Path(args.out)
    problems: list[str] = []
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory() as base, studio_server(Path(base)) as (url, _), \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        first = True
        for width, height in VIEWPORTS:
            folder = out / f"{width}x{height}"
            folder.mkdir(parents=True, exist_ok=True)
            page = browser.new_context(viewport={"width": width, "height": height}).new_page()
            page.set_default_timeout(180_000)
            page.goto(url)
            idle(page)
            if first:
                prepare(page)
                first = False
            for number, title in enumerate(PAGES, 1):
                _go(page, title)
                name = f"{number}-{title.lower().replace(' ', '-')}"
                page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
                problems += _problems(page, f"{width}x{height} {title}")
                if title == "Review":
                    for tab in REVIEW_TABS:
                        page.get_by_role("tab", name=tab).first.click()
                        idle(page, 400)
                        page.wait_for_timeout(800)
                        tab_name = f"{name}-{tab.lower().replace(' ', '-')}"
                        page.screenshot(path=str(folder / f"{tab_name}.png"), full_page=True)
                        problems += _problems(page, f"{width}x{height} Review/{tab}")
                    page.get_by_role("tab", name="Review").first.click()
                    idle(page)
            page.context.close()
        browser.close()
    (out / "problems.json").write_text(json.dumps(problems, indent=1))
    print("\n".join(problems) or "no exceptions, nothing wider than the window")
    print(f"screenshots under {out}")


if __name__ == "__main__":
    main()
