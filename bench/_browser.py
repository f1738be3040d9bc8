"""Measuring what a person waits for: the app in a real Chromium, driven by Playwright.

`studio_server` starts ``streamlit run app.py`` on a free loopback port with its own data
and workspace roots; `chromium` opens Debian's Chromium (``/usr/bin/chromium``, or
``HDL_CHROMIUM``). Timings are taken in the page (``performance.now()``) or around
Playwright calls that return once the page shows the awaited state, so they include
Streamlit's rerun, the websocket and the browser's drawing: click to updated view.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from _common import ROOT
from tests.streamlit_server import CHROMIUM, CHROMIUM_ARGS, streamlit_server


@contextlib.contextmanager
def studio_server(base: Path, *, extra_env: dict | None = None, processes: list | None = None):
    """`streamlit run app.py` with HDL_DATA_ROOT=base/data, HDL_WORKSPACE_ROOT=base/ws; yields
    (url, seconds until the health check answered). The server's `subprocess.Popen` is
    appended to `processes` when given (to read its memory)."""
    env = {"HDL_DATA_ROOT": str(base / "data"), "HDL_WORKSPACE_ROOT": str(base / "ws"),
           **(extra_env or {})}
    with streamlit_server(ROOT / "app.py", base / "server.log", env=env,
                          processes=processes) as served:
        yield served


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000):
    """A Chromium page of the given viewport (Playwright), closed afterwards."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": width, "height": height}).new_page()
        page.set_default_timeout(180_000)
        try:
            yield page
        finally:
            browser.close()


def idle(page, settle_ms: int = 150) -> None:
    """Wait until Streamlit has finished the current script run."""
    page.wait_for_timeout(settle_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=180_000)


def go(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    idle(page)


def memory_mib(pid: int) -> dict:
    """Resident memory of a process now and at its peak (MiB), from /proc/<pid>/status; now
    also split into private memory (``anon_mib``) and mapped file pages (``file_mib``)."""
    names = {"VmRSS": "rss_mib", "VmHWM": "peak_rss_mib", "RssAnon": "anon_mib",
             "RssFile": "file_mib"}
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in names:
            found[names[name]] = int(value.split()[0]) / 1024
    return found


class MemoryPeaks:
    """Peaks of a process's resident memory while the block runs, polled every 20 ms (MiB):
    ``VmRSS`` in all, ``RssAnon`` (its own private memory) and ``RssFile`` (file pages it
    maps, e.g. memory-mapped embeddings: page cache the kernel can take back)."""

    FIELDS = {"VmRSS": "rss_mib", "RssAnon": "anon_mib", "RssFile": "file_mib"}

    def __init__(self, pid: int):
        self.pid, self.peaks = pid, {}

    def _read(self) -> None:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name = line.split(":", 1)[0]
            if name in self.FIELDS:
                value = int(line.split(":", 1)[1].split()[0]) / 1024
                key = self.FIELDS[name]
                self.peaks[key] = max(self.peaks.get(key, 0.0), value)

    def __enter__(self):
        import threading
        self._stop = threading.Event()

        def poll():
            while not self._stop.is_set():
                self._read()
                self._stop.wait(0.02)
        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._read()
        return False


CAPTION_SHOWS_ROUND = """(r) => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
    .some((e) => e.innerText.startsWith(`Round ${r}:`) || e.innerText.startsWith(`Round ${r} is`))"""

# the caption names the round and the map has drawn it: plotly holds the figure whose
# first-level trace is round r's (plotly sets it and draws the traces in the same task;
# checked in a requestAnimationFrame, so that frame is painted right after)
ROUND_DRAWN = """(r) => {
    const caption = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
        .some((e) => e.innerText.startsWith(`Round ${r}:`) || e.innerText.startsWith(`Round ${r} is`));
    const gd = document.querySelector('.st-key-label_map .js-plotly-plot');
    const drawn = !!gd && (gd._fullData || []).some((t) => String(t.name).startsWith(`round ${r}:`));
    return caption && drawn;
}"""


def time_slider_moves(page, moves: int, settle=idle) -> list[float]:
    """Seconds per move of the Label page's round slider by the keyboard (two steps right,
    one left, ...), from the key press to the map drawn at the new round and its caption
    naming it (`ROUND_DRAWN`): the replay fragment reran and plotly drew the new figure.
    Starts from round 0."""
    import time
    handle = page.get_by_role("slider", name="Round")
    handle.focus()
    handle.press("Home")
    page.wait_for_function(CAPTION_SHOWS_ROUND, arg=0, polling="raf")
    settle(page)
    times, r = [], 0
    for i in range(moves):
        key, r = ("ArrowRight", r + 1) if i % 3 != 2 else ("ArrowLeft", r - 1)
        started = time.perf_counter()
        handle.press(key)
        page.wait_for_function(ROUND_DRAWN, arg=r, polling="raf")
        times.append(time.perf_counter() - started)
        settle(page)
    return times

