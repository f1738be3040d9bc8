"""Teach page speed at 500 points: one step (figure build and whole page run) and a k change.

The issue's target: ≤ 200 ms per step at 500 points, k re-running everything live.

Measured three ways:
* library: `hdl_core` on the toy alone (the Euclidean graph, a whole `teach_run` per k, the
  k curves from the seeds and from the truth, one step's state);
* figure: building the HDL plane for one step and serialising it as Streamlit does
  (`plotly.io.to_json`), using the page's own functions;
* page: the whole page script under `streamlit.testing.v1.AppTest`, timed inside the
  script (AppTest's polling is left out), for "step ▶" clicks and for k changes.

Run: .venv/bin/python bench/teach_bench.py  (writes bench/results/teach.json)
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hdl_core import build_knn_graph, choose_k  # noqa: E402
from hdl_core.views import toy as teach  # noqa: E402
from hdl_core.views import walkthrough  # noqa: E402

PAGE = ROOT / "app_pages" / "teach.py"
OUT = ROOT / "bench" / "results" / "teach.json"
N_POINTS = 500
TOYS = [("moons", N_POINTS, 2, 0.1, 2, 0), ("blobs", N_POINTS, 4, 0.1, 3, 1),
        ("circles", N_POINTS, 3, 0.05, 3, 2)]
KS = [1, 3, 5, 10, 20]


def summary(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {"n": len(ms), "median_ms": round(float(np.median(ms)), 2),
            "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "max_ms": round(float(ms.max()), 2)}


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def k_curves(toy: teach.Toy):
    """What the page computes for its k chart: choose_k from the seeds and from the truth."""
    return (choose_k(toy.X, toy.y, k_max=teach.K_MAX, random_state=0, metric="euclidean"),
            choose_k(toy.X, toy.truth, k_max=teach.K_MAX, sample_fraction=None,
                     metric="euclidean"))


def library() -> dict:
    out = {}
    teach.teach_run(*_toy_args(TOYS[0]), k=5)        # compile numba kernels once
    k_curves(teach.make_toy(*TOYS[0]))                # and load scipy's special functions
    for params in TOYS:
        toy = teach.make_toy(*params)
        graph, t_graph = timed(build_knn_graph, toy.X, teach.K_MAX, metric="euclidean")
        runs = {}
        for k in KS:
            run, t_run = timed(teach.teach_run, toy.X, toy.y, toy.truth, k=k, graph=graph)
            states = [timed(walkthrough.step_state, graph.indices[:, :k], run.hdl, s)[1]
                      for s in run.steps[::max(1, len(run.steps) // 50)]]
            runs[str(k)] = {"run_ms": round(t_run * 1000, 2), "steps": len(run.steps),
                            "rounds": run.hdl.n_rounds, "bridges": int(run.hdl.fallback.sum()),
                            "accuracy_hdl": round(run.accuracy_hdl, 4),
                            "accuracy_knn_dv": round(run.accuracy_knn_dv, 4),
                            "step_state": summary(states)}
        _, t_k = timed(k_curves, toy)
        out["/".join(map(str, params))] = {"graph_ms": round(t_graph * 1000, 2),
                                           "k_curves_ms": round(t_k * 1000, 2), "by_k": runs}
    return out


def _toy_args(params):
    toy = teach.make_toy(*params)
    return toy.X, toy.y, toy.truth


def page_functions() -> dict:
    """The page's drawing functions, without running the page (it ends with `main()`)."""
    source = PAGE.read_text()
    body = source.rstrip()
    assert body.endswith("main()"), "app_pages/teach.py is expected to end with main()"
    namespace = {"__name__": "teach_page_bench"}
    exec(compile(body[: -len("main()")], str(PAGE), "exec"), namespace)
    return namespace


def figures() -> dict:
    import plotly.io as pio

    page = page_functions()
    out = {}
    for params in TOYS:
        toy = teach.make_toy(*params)
        run = teach.teach_run(toy.X, toy.y, toy.truth, k=5)
        picks = np.linspace(0, len(run.steps) - 1, 40).astype(int)
        page["hdl_figure"](toy, run, 0, toy.y)        # warm up plotly's lazy imports
        build, total = [], []
        for i in picks:
            fig, t_build = timed(page["hdl_figure"], toy, run, int(i), toy.y)
            _, t_json = timed(lambda: pio.to_json(fig.to_dict(), validate=False))
            build.append(t_build)
            total.append(t_build + t_json)
        out["/".join(map(str, params))] = {"hdl_figure": summary(build),
                                           "hdl_figure_and_json": summary(total)}
    return out


WRAPPER = """
import runpy, time
import streamlit as st
_start = time.perf_counter()
runpy.run_path({page!r}, run_name="__main__")
st.session_state["_bench_script_s"] = time.perf_counter() - _start
"""


def page_runs(n_clicks: int = 30) -> dict:
    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "teach_timed.py"
        wrapper.write_text(WRAPPER.format(page=str(PAGE)))
        at = AppTest.from_file(str(wrapper), default_timeout=120)
        at.run()
        at.sidebar.slider(key="teach_points").set_value(N_POINTS).run()
        at.sidebar.slider(key="teach_k").set_value(5).run()
        script = lambda: at.session_state["_bench_script_s"]
        for _ in range(3):                                   # warm the caches
            at.button(key="teach_next_step").click().run()
        steps, rounds = [], []
        for _ in range(n_clicks):
            at.button(key="teach_next_step").click().run()
            steps.append(script())
        for _ in range(10):
            at.button(key="teach_next_round").click().run()
            rounds.append(script())
        new_k, seen_k = [], []
        for k in (3, 8, 12, 15, 20):
            at.sidebar.slider(key="teach_k").set_value(k).run()
            new_k.append(script())
        for k in (3, 8, 12, 15, 20):
            at.sidebar.slider(key="teach_k").set_value(k).run()
            seen_k.append(script())
        assert not at.exception, at.exception
    return {"toy": "moons/500/2 classes/noise 0.1/2 seeds per class", "step": summary(steps),
            "round": summary(rounds), "k_change_new": summary(new_k),
            "k_change_cached": summary(seen_k)}


def main() -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = {
        "what": "Teach page at 500 points: hdl_core on the toy alone, the HDL plane figure, and "
                "the whole page script per step / per k change (AppTest, timed inside the script)",
        "target": "≤ 200 ms per step at 500 points",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": load},
        "library": library(),
        "figure": figures(),
        "page": page_runs(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    page = result["page"]
    print(f"page step: median {page['step']['median_ms']} ms, p90 {page['step']['p90_ms']} ms; "
          f"k change (new): median {page['k_change_new']['median_ms']} ms; "
          f"written to {OUT.relative_to(ROOT)}")
    print(json.dumps(result["figure"], indent=1))


if __name__ == "__main__":
    main()
