"""Keyboard review benchmark: 50 corrections by keyboard in Chromium, measured in the page.

Starts ``tests/review_keys_harness.py`` with ``streamlit run`` (every image wrong, a fake
store write of 40 ms per action, the widget inside a fragment and its actions stored from
the ``on_actions`` callback, as the Review page is meant to) and drives it with Playwright
and Debian's Chromium, one image at a time. For each correction it measures, inside the
page:

* ``key_to_next_image`` — from the key event's timestamp to the first moment after the
  frame that shows the next image has been painted (``requestAnimationFrame`` then
  ``setTimeout(0)``), with that image decoded. This is what the reviewer waits for.
* ``key_to_stored`` — from the key event to the harness having written that action to its
  fake store (wall clocks of browser and server; same machine). This is what a design that
  reruns Streamlit for every key would make the reviewer wait for.

Three runs: ``burst`` presses the next key as soon as the next image is shown (an upper
bound on speed: reruns pile up and coalesce); ``paced`` one key every 700 ms (a fast
reviewer reading each image); ``paced, slow page`` the same with every rerun made 1.5 s
slower (``page_ms``), like the Review page with its map and gallery (the issue measured
1.5–5 s per rerun). The total is from the first key to the last action stored.

Run ``.venv/bin/python bench/review_keys_bench.py [--quick]`` from the repository root;
writes ``bench/results/review_keys_bench.json``. Targets: each key ≤ 1.2 s to the next
image, 50 corrections ≤ 60 s.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, machine_info, print_table, verdict, write_json
from tests.streamlit_server import chromium_browser, streamlit_server

HARNESS = ROOT / "tests" / "review_keys_harness.py"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
KEY_OF = {name: "1234567890"[i] for i, name in enumerate(DIGITS)}
TARGET_KEY_S = 1.2
TARGET_TOTAL_S = 60.0
STORE_MS = 40
PACE_S = 0.7
SLOW_PAGE_MS = 1500

# Installed in the page: times each key press until the next image is painted.
PROBE = """() => {
  const root = document.querySelector('[data-testid=stBidiComponentIsolated]').shadowRoot;
  const probe = window.__reviewProbe = {results: [], expect: null};
  window.addEventListener('keydown', (event) => {
    const t0 = event.timeStamp, expect = probe.expect;
    const shown = () => {
      const box = root.querySelector('.rk-main-box');
      const img = box && box.querySelector('img');
      return box && box.dataset.id === expect && img && img.complete && img.naturalWidth > 0;
    };
    const frame = () => {
      if (!shown()) { requestAnimationFrame(frame); return; }
      // rAF runs before this frame's paint; a task queued from it runs after the paint.
      setTimeout(() => probe.results.push({id: expect, ms: performance.now() - t0,
                                           key_epoch_ms: performance.timeOrigin + t0}), 0);
    };
    requestAnimationFrame(frame);
  }, true);
}"""


def truth_labels(n: int) -> list[str]:
    from sklearn.datasets import load_digits
    return [DIGITS[t] for t in load_digits().target[:n]]


def stored(log_file: Path, run: str) -> list[dict]:
    if not log_file.exists():
        return []
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    return [line for line in lines if line["run"] == run]


def one_run(browser, url: str, log_file: Path, run: str, n: int, pace_s: float | None,
            page_ms: int = 0) -> dict:
    """Correct n images by keyboard; return the timings measured in the page."""
    truth = truth_labels(n + 1)
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{url}/?mode=one&n={n + 1}&wrong=1&store_ms={STORE_MS}&page_ms={page_ms}&run={run}")
    page.locator(".rk-stage").wait_for()
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    page.wait_for_timeout(500)
    page.evaluate(PROBE)
    start = time.perf_counter()
    for i in range(n):
        page.evaluate("(id) => { window.__reviewProbe.expect = id; }", str(i + 1))
        page.keyboard.press(KEY_OF[truth[i]])
        page.wait_for_function("(k) => window.__reviewProbe.results.length >= k", arg=i + 1)
        if pace_s:
            time.sleep(max(0.0, pace_s - (time.perf_counter() - start - i * pace_s)))
    keys_done = time.perf_counter() - start
    deadline = time.monotonic() + 120
    while len(stored(log_file, run)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    total = time.perf_counter() - start
    results = page.evaluate("() => window.__reviewProbe.results")
    context.close()
    actions = stored(log_file, run)
    if len(actions) != n or [a["seq"] for a in actions] != list(range(1, n + 1)):
        raise SystemExit(f"{run}: the harness stored {len(actions)} actions "
                         f"({[a['seq'] for a in actions][:10]}…), expected 1..{n} in order")
    wrong = [a for a, label in zip(actions, truth) if a["kind"] != "assign" or a["label"] != label]
    if wrong:
        raise SystemExit(f"{run}: {len(wrong)} actions are not the corrections typed: {wrong[:2]}")
    shown_ms = [r["ms"] for r in results]
    stored_ms = [a["stored_at"] * 1000 - r["key_epoch_ms"] for a, r in zip(actions, results)]
    batches = [a["batch"] for a in actions]
    return {
        "rhythm": ("burst" if not pace_s else f"paced {pace_s:g} s")
                  + (f", page +{page_ms / 1000:g} s/rerun" if page_ms else ""),
        "page_ms": page_ms,
        "corrections": n,
        "key_to_next_image_ms": summary(shown_ms),
        "key_to_stored_ms": summary(stored_ms),
        "keys_done_s": round(keys_done, 2),
        "total_s": round(total, 2),
        "store_calls": len({a["batch_first"] for a in actions}),
        "largest_batch": max(batches),
        "per_key_ms": [round(x, 1) for x in shown_ms],
    }


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"median": round(statistics.median(ordered), 1), "p95": round(p95, 1),
            "max": round(ordered[-1], 1), "min": round(ordered[0], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 corrections instead of 50")
    args = parser.parse_args()
    n = 10 if args.quick else 50
    with tempfile.TemporaryDirectory() as tmp:
        log_file, server_log = Path(tmp) / "actions.jsonl", Path(tmp) / "server.log"
        with streamlit_server(HARNESS, server_log, env={"HDL_REVIEW_KEYS_LOG": str(log_file)}
                              ) as (url, _), chromium_browser() as browser:
            chromium_version = browser.version
            # A first session warms the server (imports, digits, caches) and is not kept.
            one_run(browser, url, log_file, "warm-up", 3, None)
            runs = [one_run(browser, url, log_file, "burst", n, None),
                    one_run(browser, url, log_file, "paced", n, PACE_S),
                    one_run(browser, url, log_file, "slow", n, PACE_S, SLOW_PAGE_MS)]

    rows = [[r["rhythm"], r["corrections"], r["key_to_next_image_ms"]["median"],
             r["key_to_next_image_ms"]["p95"], r["key_to_next_image_ms"]["max"],
             r["key_to_stored_ms"]["median"], r["key_to_stored_ms"]["max"],
             r["keys_done_s"], r["total_s"], r["store_calls"], r["largest_batch"]] for r in runs]
    table = print_table(["rhythm", "corrections", "key→image median ms", "p95 ms", "max ms",
                         "key→stored median ms", "max ms", "keys done s", "total s",
                         "store calls", "largest batch"], rows, title=f"Keyboard review, {n} corrections (Chromium)")
    key_met = all(r["key_to_next_image_ms"]["max"] <= TARGET_KEY_S * 1000 for r in runs)
    total_met = all(r["total_s"] <= TARGET_TOTAL_S * n / 50 for r in runs)
    print(f"\nkey → next image ≤ {TARGET_KEY_S} s for every key: {verdict(key_met)}")
    print(f"{n} corrections ≤ {TARGET_TOTAL_S * n / 50:g} s (every run, until all stored): "
          f"{verdict(total_met)}")
    write_json("review_keys_bench_quick" if args.quick else "review_keys_bench", {
        "benchmark": "review_keys_bench", "quick": args.quick,
        "what": "corrections by keyboard in the review widget, one image at a time, in Chromium",
        "targets": {"key_to_next_image_s": TARGET_KEY_S, "total_s_for_50": TARGET_TOTAL_S},
        "target_met": {"key_to_next_image": key_met, "total": total_met},
        "setup": {"harness": "tests/review_keys_harness.py", "images": "scikit-learn digits, 8x8 PNG",
                  "fake_store_write_ms_per_action": STORE_MS, "viewport": "1280x720",
                  "actions_from": "on_actions callback, widget inside st.fragment",
                  "chromium": chromium_version, "paced_interval_s": PACE_S,
                  "slow_page_ms_per_rerun": SLOW_PAGE_MS},
        "results": runs, "table": table,
        "notes": ["key_to_next_image: key event timestamp to the task after the paint of the "
                  "frame showing the next image (rAF then setTimeout 0), measured in the page",
                  "key_to_stored: key event to the harness's fake store write (browser and "
                  "server wall clocks, same machine): the wait a rerun per key would impose",
                  "largest_batch > 1 means reruns coalesced and one run stored several actions"],
        "machine": machine_info("streamlit"),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
