"""The app on 100k and 1M images, measured where a person waits: in Chromium.

On the synthetic workspaces of bench/_large.py (built on first use, kept under
/tmp/hdl-large), with `streamlit run app.py`:

* ``pages``: each page's first render in a fresh browser session, once right after the
  store was loaded (``first``: the Data page opened the workspace; the page's own results,
  e.g. the label arrays, are computed on this visit) and once more (``again``). Target: every
  page <= 3 s at 1M.
* ``slider``: Label page, round slider moved by the keyboard, key to the map drawn at the
  new round with its caption naming it (`_browser.ROUND_DRAWN`). Target <= 300 ms.
* ``lasso``: Review page, Map tab: a lasso drawn with the mouse, mouse up to the page
  saying how many images it selected (every point inside, drawn as a marker or not).
  Target <= 1 s at 1M.
* ``gallery``: Review page, Gallery tab: next page, key to the first tile changing.
* ``correction``: a class picked under a gallery tile, to the page saying it is saved, then
  undone, to the page saying so (median of 7 of each).
* ``rerun``: Re-run HDL, click to the page saying the new run is done (HDL and the new run's
  review queue, in the background; kNN-DV follows in a job of its own at these sizes).
* ``first_map``: with the workspace's map removed, the Label page from opening to the
  first map drawn (a PCA of a sample, computed in the background) and to the UMAP map
  replacing it.
* ``memory``: the server process's resident memory at the end and its peak; during the
  re-run also the peaks of its private memory (``RssAnon``) and of the file pages it maps
  (``RssFile``: the memory-mapped embeddings, page cache the kernel can take back).

    .venv/bin/python bench/large_browser_bench.py [--sizes 100000,1000000] [--skip first_map]

Numbers are taken on the shared 2-core machine unless the JSON's load average says
otherwise; run it again on an idle machine to compare.
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import time
from pathlib import Path

from _browser import (CHROMIUM, CHROMIUM_ARGS, MemoryPeaks, memory_mib, studio_server,
                      time_slider_moves)
from _common import machine_info, print_table, verdict, write_json
from _large import build_workspace

BASE = Path("/tmp/hdl-large")
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "large"
READY = {
    "Data": "text=Open: Synthetic",
    "Embed": "text=images embedded with",
    "Choose k": "text=The next run uses",
    # the round slider, or where the run has one round (the default, reach-ordered HDL, on
    # these clusters: every point's reach share is 1) the caption that says so
    "Label": '[data-testid="stSlider"], [data-testid="stCaptionContainer"]'
             ':has-text("This run has a single round.")',
    "Review": "text=Since run",
    "Export": "text=Download CSV",
    "Teach": '[data-testid="stSlider"]',
}
PATHS = {"Data": "", "Embed": "embed", "Choose k": "choose_k", "Label": "label",
         "Review": "review", "Export": "export", "Teach": "teach"}
def idle(page, settle_ms: int = 200) -> None:
    page.wait_for_timeout(settle_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=600_000)


def open_page(browser, url: str, title: str, name: str, *, width=1400, height=1000, shot=None):
    """A fresh session on one page; seconds until its content is drawn (and the page)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(600_000)
    started = time.perf_counter()
    page.goto(f"{url}/{PATHS[title]}?dataset={name}")
    page.locator(READY[title]).first.wait_for()
    drawn = time.perf_counter() - started
    if shot:
        idle(page)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / shot), full_page=True)
    return drawn, page, context


def pages(browser, url, name, n) -> dict:
    out = {}
    for attempt in ("first", "again"):
        for title in PATHS:
            seconds, page, context = open_page(browser, url, title, name,
                                               shot=f"{n}-{title.lower().replace(' ', '-')}-1400.png"
                                               if attempt == "again" else None)
            out.setdefault(title, {})[attempt] = seconds
            context.close()
            print(f"  {title} ({attempt}): {seconds:.2f} s", flush=True)
    return out


def screenshots(browser, url, name, n) -> None:
    for width, height in ((1280, 720), (800, 1000)):
        for title in ("Data", "Label", "Review", "Export"):
            _, page, context = open_page(browser, url, title, name, width=width, height=height,
                                         shot=f"{n}-{title.lower()}-{width}.png")
            context.close()


def slider(browser, url, name, moves: int) -> dict:
    _, page, context = open_page(browser, url, "Label", name)
    idle(page)
    times = time_slider_moves(page, moves, settle=idle)
    page.screenshot(path=str(SHOTS / f"{name}-slider.png"))
    context.close()
    return {"moves_s": times, "median_s": statistics.median(times), "max_s": max(times)}


def _review_tab(browser, url, name, tab):
    _, page, context = open_page(browser, url, "Review", name)
    idle(page)
    page.get_by_role("tab", name=tab).click()
    idle(page)
    return page, context


def lasso(browser, url, name, tries: int) -> dict:
    page, context = _review_tab(browser, url, name, "Map")
    plot = page.locator(".st-key-review_map .js-plotly-plot")
    plot.wait_for()
    page.wait_for_timeout(1500)
    box = page.evaluate("""() => {
        const gd = document.querySelector('.st-key-review_map .js-plotly-plot');
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const rect = gd.getBoundingClientRect();
        return {left: rect.left + xa._offset, top: rect.top + ya._offset,
                width: xa._length, height: ya._length};
    }""")
    times, counts = [], []
    selected = page.get_by_text(re.compile(r"image\(s\) selected"))
    for attempt in range(tries):
        before = selected.inner_text()
        cx = box["left"] + box["width"] * (0.35 + 0.1 * attempt)
        cy = box["top"] + box["height"] * 0.5
        radius = min(box["width"], box["height"]) * 0.18
        import math
        path = [(cx + radius * math.cos(a / 12 * 2 * math.pi),
                 cy + radius * math.sin(a / 12 * 2 * math.pi)) for a in range(13)]
        page.mouse.move(*path[0])
        page.mouse.down()
        for x, y in path[1:]:
            page.mouse.move(x, y, steps=3)
        started = time.perf_counter()
        page.mouse.up()
        page.wait_for_function(
            "(before) => [...document.querySelectorAll('p')].some((p) => p.innerText.includes("
            "'image(s) selected') && p.innerText !== before)", arg=before, polling="raf")
        times.append(time.perf_counter() - started)
        counts.append(int(re.sub(r"\D", "", selected.inner_text().split("image")[0]) or 0))
        idle(page)
    page.screenshot(path=str(SHOTS / f"{name}-lasso.png"))
    context.close()
    return {"responses_s": times, "median_s": statistics.median(times), "max_s": max(times),
            "selected": counts}


def _first_tile(page) -> str:
    return page.evaluate("""() => {
        const el = document.querySelector('[class*="st-key-review_fix_gallery_"]');
        return el ? [...el.classList].find((c) => c.startsWith('st-key-review_fix_gallery_')) : '';
    }""")


def gallery(browser, url, name, pages_to_turn: int) -> dict:
    page, context = _review_tab(browser, url, name, "Gallery")
    page.locator('[class*="st-key-review_fix_gallery_"]').first.wait_for()
    idle(page)
    times = []
    plus = page.locator('[data-testid="stNumberInputStepUp"]').first
    for _ in range(pages_to_turn):
        before = _first_tile(page)
        started = time.perf_counter()
        plus.click()
        page.wait_for_function(
            """(before) => { const el = document.querySelector('[class*="st-key-review_fix_gallery_"]');
                return el && ![...el.classList].includes(before); }""", arg=before, polling="raf")
        times.append(time.perf_counter() - started)
        idle(page)
    page.screenshot(path=str(SHOTS / f"{name}-gallery.png"))
    return {"pages_s": times, "median_s": statistics.median(times), "page": page,
            "context": context}


def correction(page, context, repeats: int) -> dict:
    """Pick another class under a gallery tile; time to "Labeled 1 image as", then undo it
    and time to "Undid" (the tiles in turn, `repeats` times; the labels end as they were)."""
    fixes, undos = [], []
    for i in range(repeats):
        picker = page.locator('[class*="st-key-review_fix_gallery_"]').nth(i % 8)
        picker.click()
        options = page.locator('[role="option"]')
        options.first.wait_for()
        shown = picker.inner_text().strip()
        choice = next(o for o in options.all() if o.inner_text().strip() != shown)
        started = time.perf_counter()
        choice.click()
        page.get_by_text("Labeled 1 image as").first.wait_for()
        fixes.append(time.perf_counter() - started)
        idle(page)
        started = time.perf_counter()
        page.get_by_role("button", name="Undo my last change").first.click()
        page.get_by_text("Undid").first.wait_for()
        undos.append(time.perf_counter() - started)
        idle(page)
    context.close()
    return {"seconds": statistics.median(fixes), "fixes_s": fixes, "undos_s": undos,
            "undo_median_s": statistics.median(undos)}


def rerun(browser, url, name) -> dict:
    _, page, context = open_page(browser, url, "Review", name)
    idle(page)
    started = time.perf_counter()
    page.get_by_role("button", name="Re-run HDL").click()
    page.get_by_text(re.compile(r"HDL run #\d+ done in")).first.wait_for(timeout=1_800_000)
    seconds = time.perf_counter() - started
    message = page.get_by_text(re.compile(r"HDL run #\d+ done in")).first.inner_text()
    context.close()
    return {"seconds": seconds, "message": message}


def first_map(browser, name, folder: Path) -> dict:
    """Remove the stored map (and its PCA preview), then time the Label page's map on a
    fresh server (a running one keeps the map it computed in memory)."""
    from hdl_core.workspace import maps, pipeline
    from hdl_core.workspace.store import Workspace
    ws = Workspace(folder)
    emb = pipeline.current_embedding(ws, mmap=True)
    for key in (maps.map_key(emb), f"{emb.key}|pca"):
        ws.embeddings_path(key).unlink(missing_ok=True)
    ws.close()
    with studio_server(BASE) as (url, _):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(1_800_000)
        started = time.perf_counter()
        page.goto(f"{url}/label?dataset={name}")
        page.locator(READY["Label"]).first.wait_for()
        page_drawn = time.perf_counter() - started
        # a first look: the PCA preview, or the note that the map is on its way
        page.get_by_text("Map: PCA for now").or_(
            page.get_by_text("The map is being computed")).or_(
            page.get_by_text("Map: UMAP of the embeddings")).first.wait_for()
        pca = time.perf_counter() - started
        page.get_by_text("Map: UMAP of the embeddings").first.wait_for()
        umap = time.perf_counter() - started
        context.close()
    return {"page_drawn_s": page_drawn, "pca_map_s": pca, "umap_map_s": umap}


def measure(n: int, args) -> dict:
    from playwright.sync_api import sync_playwright
    folder = build_workspace(n, BASE)
    name = folder.name
    record = {"n": n}
    processes = []
    with studio_server(BASE, processes=processes) as (url, server_s), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        pid = processes[0].pid
        record["server_start_s"] = server_s
        seconds, page, context = open_page(browser, url, "Data", name)     # the store loads
        context.close()
        record["store_loaded_s"] = seconds
        time.sleep(args.settle)                       # the server's background warm-up
        record["pages"] = pages(browser, url, name, n)
        record["memory_after_pages"] = memory_mib(pid)
        if "screenshots" not in args.skip:
            screenshots(browser, url, name, n)
        if "slider" not in args.skip:
            record["slider"] = slider(browser, url, name, args.moves)
            print(f"  slider: median {record['slider']['median_s']:.3f} s", flush=True)
        if "lasso" not in args.skip:
            record["lasso"] = lasso(browser, url, name, args.lassos)
            print(f"  lasso: median {record['lasso']['median_s']:.3f} s", flush=True)
        if "gallery" not in args.skip:
            result = gallery(browser, url, name, args.pages)
            page, context = result.pop("page"), result.pop("context")
            record["gallery"] = result
            record["correction"] = correction(page, context, args.corrections)
            print(f"  gallery page: median {result['median_s']:.3f} s; one correction "
                  f"{record['correction']['seconds']:.3f} s, its undo "
                  f"{record['correction']['undo_median_s']:.3f} s (medians)", flush=True)
        if "rerun" not in args.skip:
            with MemoryPeaks(pid) as peaks:
                record["rerun"] = rerun(browser, url, name)
            record["rerun"]["memory_peaks"] = peaks.peaks
            print(f"  re-run HDL: {record['rerun']['seconds']:.1f} s, memory peaks "
                  f"{record['rerun']['memory_peaks']}", flush=True)
        record["memory"] = memory_mib(pid)
        if "first_map" not in args.skip:
            record["first_map"] = first_map(browser, name, folder)
            print(f"  first map: {record['first_map']}", flush=True)
        browser.close()
    shutil.copy(BASE / "server.log", SHOTS / f"server-{n}.log")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--moves", type=int, default=12)
    parser.add_argument("--lassos", type=int, default=4)
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--corrections", type=int, default=7)
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds to let the server warm up after the store loaded")
    parser.add_argument("--name", default="large_browser_bench",
                        help="results file bench/results/<name>.json")
    parser.add_argument("--skip", default="", help="comma-separated: screenshots, slider, "
                        "lasso, gallery, rerun, first_map")
    args = parser.parse_args()
    args.skip = set(filter(None, args.skip.split(",")))
    SHOTS.mkdir(parents=True, exist_ok=True)
    records = [measure(int(n), args) for n in args.sizes.split(",")]
    rows = []
    for r in records:
        worst_first = max(v["first"] for v in r["pages"].values())
        worst_again = max(v["again"] for v in r["pages"].values())
        rows.append([f"{r['n']:,}", f"{worst_first:.2f} {verdict(worst_first <= 3)}",
                     f"{worst_again:.2f}",
                     f"{r['slider']['median_s']:.3f} {verdict(r['slider']['median_s'] <= 0.3)}"
                     if "slider" in r else "–",
                     f"{r['lasso']['median_s']:.3f} {verdict(r['lasso']['median_s'] <= 1)}"
                     if "lasso" in r else "–",
                     f"{r['gallery']['median_s']:.3f}" if "gallery" in r else "–",
                     f"{r['correction']['seconds']:.3f}" if "correction" in r else "–",
                     f"{r['rerun']['seconds']:.1f}" if "rerun" in r else "–",
                     f"{r['first_map']['pca_map_s']:.1f} / {r['first_map']['umap_map_s']:.1f}"
                     if "first_map" in r else "–",
                     f"{r['memory']['rss_mib']:,.0f} / {r['memory']['peak_rss_mib']:,.0f} "
                     f"{verdict(r['memory']['peak_rss_mib'] <= 4096)}"])
    print_table(["images", "slowest page, first s", "again s", "slider move s", "lasso s",
                 "gallery page s", "1 correction s", "re-run HDL s", "first map: first look / UMAP s",
                 "server RSS now / peak MiB"], rows, title="The app at scale, in Chromium")
    for r in records:
        print_table(["page", "first s", "again s"],
                    [[t, f"{v['first']:.2f}", f"{v['again']:.2f}"] for t, v in r["pages"].items()],
                    title=f"Pages at {r['n']:,} images")
    write_json(args.name, {
        "machine": machine_info("streamlit", "playwright", "plotly"),
        "what": "the app on synthetic 100k / 1M workspaces in Chromium: page renders, round "
                "slider, lasso, gallery page, one correction, re-run HDL, first map, memory",
        "targets": {"page_s": 3.0, "slider_s": 0.3, "lasso_s": 1.0, "server_peak_rss_mib": 4096},
        "results": records})


if __name__ == "__main__":
    main()
