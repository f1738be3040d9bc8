"""Shared fixtures: private data and workspace roots, per test or (with the demo) per module.

No mutable state is shared between test modules: each module that needs the demo gets its
own data root, workspace root and demo workspace, so the modules pass in any order.
"""
from __future__ import annotations

import os

import pytest

# The app warms up imports and compiled kernels in the background when a server starts;
# in tests that only costs CPU (the browser test's server does it, it runs as a server).
os.environ.setdefault("HDL_WARM_UP", "0")


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """HDL_DATA_ROOT and HDL_WORKSPACE_ROOT pointed at fresh folders for one test."""
    data, workspaces = tmp_path / "data", tmp_path / "workspaces"
    data.mkdir()
    monkeypatch.setenv("HDL_DATA_ROOT", str(data))
    monkeypatch.setenv("HDL_WORKSPACE_ROOT", str(workspaces))
    return data, workspaces


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory):
    """The digits demo's images, generated once per session; tests only read them."""
    from hdl_core.data import make_demo
    return make_demo(tmp_path_factory.getbasetemp() / "demo-data")


@pytest.fixture(scope="module")
def app_roots(tmp_path_factory):
    """HDL_DATA_ROOT / HDL_WORKSPACE_ROOT pointing at fresh folders for one test module.

    Set in os.environ (not monkeypatch) because AppTest runs the pages in this process and
    the browser test starts a server that inherits the environment.
    """
    base = tmp_path_factory.mktemp("studio")
    saved = {name: os.environ.get(name) for name in ("HDL_DATA_ROOT", "HDL_WORKSPACE_ROOT")}
    os.environ["HDL_DATA_ROOT"] = str(base / "data")
    os.environ["HDL_WORKSPACE_ROOT"] = str(base / "workspaces")
    yield base
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def demo_workspace(app_roots):
    """The demo imported, embedded with the pixels encoder and labeled once by HDL (k=3)."""
    from hdl_core.auto_k import KIntent
    from hdl_core import data as images
    from hdl_core.workspace import pipeline
    from hdl_core.workspace.store import Workspace

    folder = images.make_demo()
    ws = Workspace(pipeline.workspace_for(folder))
    pipeline.import_dataset(ws, images.load_folder(folder))
    emb = pipeline.embed_workspace(ws, pipeline.EncoderSpec.of("pixels"))
    pipeline.run_labeling(ws, emb, KIntent.parse(3))
    return ws


def finish_jobs(at, timeout: float = 300.0):
    """Wait for the background jobs a page started (`hdl_core.jobs.BOARD`), then run the
    page again, as the browser would when the sidebar sees them done."""
    from hdl_core.jobs import BOARD
    assert BOARD.wait(timeout=timeout), "a background job did not finish in time"
    at.run()
    return at
