"""Start ``streamlit run`` on a free loopback port and stop it, and launch Debian's Chromium:
for the browser tests and the browser benchmarks (bench/_browser.py imports it too)."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("HDL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


class ServerDidNotStart(RuntimeError):
    """streamlit exited or did not answer its health check in time; the message has its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(script: Path, log_file: Path, *, env: dict | None = None,
                     timeout_s: float = 120, processes: list | None = None):
    """Serve `script` on 127.0.0.1; yields (url, seconds until the health check answered).
    The server's `subprocess.Popen` is appended to `processes` when given (to read its
    memory)."""
    port = free_port()
    environment = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", **(env or {}))
    log = open(log_file, "wb")
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port),
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    if processes is not None:
        processes.append(process)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServerDidNotStart(f"{script.name} did not start: "
                                        f"{Path(log_file).read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
        yield url, time.perf_counter() - started
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextlib.contextmanager
def chromium_browser():
    """Debian's Chromium, headless, driven by Playwright (its own browser download is not
    used); closed afterwards."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
