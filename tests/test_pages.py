"""AppTest of app.py and the Data, Embed, Choose k and Export pages on the demo."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from hdl_core.auto_k import KIntent
from hdl_core.workspace import labels, pipeline
from tests.conftest import finish_jobs

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    if page is not None:
        at.switch_page(page)
        at.run()
        assert not at.exception, at.exception
    return at


def _texts(at) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption]
    parts += [e.value for e in at.success] + [e.value for e in at.info] + [e.value for e in at.warning]
    parts += [e.value for e in at.error]
    return "\n".join(str(p) for p in parts)


def test_app_opens_the_demo_on_the_data_page(demo_workspace):
    at = _app()
    assert not at.error
    assert at.subheader[0].value == "Open: Demo: handwritten digits"
    images = next(m for m in at.metric if m.label == "Images")
    assert images.value == "1,797"          # as every other page writes counts
    seeds = next(m for m in at.metric if m.label == "Seeds")
    assert int(seeds.value.replace(",", "")) == len(demo_workspace.seeds())


def test_folder_outside_the_data_root_is_refused_without_traceback(demo_workspace):
    at = _app()
    at.radio(key="data_source").set_value("Folder on the server").run()
    at.text_input[0].input("../../etc").run()
    at.button[0].click().run()
    assert not at.exception
    assert any("outside the data root" in e.value for e in at.error)


def test_embed_page_embeds_with_pixels_and_reports_the_cache(demo_workspace):
    at = _app("app_pages/embed.py")
    at.radio[0].set_value("Pixels (baseline, not CLIP)").run()
    next(b for b in at.button if b.label == "Embed with pixels").click().run()
    finish_jobs(at)
    assert not at.exception, at.exception
    text = _texts(at)
    assert "1797 images from the cache" in text           # already embedded by the fixture
    assert "pixels" in text


def test_clip_without_weights_names_the_pages_own_ways_out(demo_workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = _app("app_pages/embed.py")
    at.radio[0].set_value("CLIP (open_clip)").run()
    next(b for b in at.button if b.label == "Embed with CLIP").click().run()
    finish_jobs(at)
    assert not at.exception, at.exception
    message = at.error[0].value.replace("\\", "")        # as rendered (Markdown escapes)
    assert "Local checkpoint file" in message and "Precomputed file" in message
    assert "--pretrained" not in message and "python -c" not in message   # no CLI flags
    assert "ViT-B-32" in message and not at.get("code")                    # plain, wrapping text


def test_choose_k_stores_the_intent_and_marks_the_k_used(demo_workspace):
    at = _app("app_pages/choose_k.py")
    assert not at.error
    chart = at.get("plotly_chart")
    assert len(chart) == 1
    # the default, class-balanced HDL: its own k (ten on the demo's classes of ~180)
    assert any("its automatic k is 10" in i.value for i in at.info)
    assert "used: k = 10" in chart[0].proto.spec
    pipeline.set_labeling_variant(demo_workspace, "paper")
    try:
        at.run()
        # 3 seeds per class: the paper's k* is unreliable, so its default k = 3 is used
        assert any("an automatic k is 3" in w.value for w in at.warning)
        assert "used: k = 3" in at.get("plotly_chart")[0].proto.spec
        at.toggle[0].set_value(True).run()
        at.number_input[0].set_value(7).run()
        assert pipeline.k_intent(demo_workspace) == KIntent(7)
        assert "used: k = 7" in at.get("plotly_chart")[0].proto.spec
        at.toggle[0].set_value(False).run()
        assert pipeline.k_intent(demo_workspace) == KIntent("auto")
    finally:
        pipeline.set_labeling_variant(demo_workspace, "balanced")


def test_export_csv_matches_the_store(demo_workspace):
    at = _app("app_pages/export.py")
    assert not at.error
    frame = labels.export_frame(demo_workspace)
    csv = pd.read_csv(io.BytesIO(pipeline.to_csv_bytes(frame)), keep_default_na=False)
    current = demo_workspace.current_labels()
    by_path = dict(zip(demo_workspace.ok_items()["path"], demo_workspace.ok_items()["id"]))
    assert len(csv) == len(by_path)
    for path, label, source in zip(csv["path"], csv["label"], csv["source"]):
        assert (str(label), source) == current[by_path[path]]
    by_hdl = int(csv["source"].isin(["hdl", "fallback"]).sum())
    assert next(m for m in at.metric if m.label == "By HDL").value == f"{by_hdl:,}"
    # the same accuracy as the Label page's "Final accuracy" (the run alone, seeds left out)
    from hdl_core.views import replay
    run = demo_workspace.load_run(method="hdl")
    truth = demo_workspace.truth()
    paths = demo_workspace.ok_items().set_index("id").loc[run.item_ids, "path"]
    codes = replay.truth_codes([truth.get(p) for p in paths], run.classes)
    final = replay.build_replay(run.result, np.zeros((len(paths), run.k), int), truth=codes).final_accuracy
    accuracy = next(m for m in at.metric if m.label == "Accuracy")
    assert accuracy.value == f"{final:.1%}" and accuracy.delta == f"run alone {final:.1%}"
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert f"{int((csv['source'] == 'seed').sum())} seeds" in sidebar and "0 corrected" in sidebar


def _second_dataset(app_roots):
    """Another dataset beside the demo: a few images in two class folders."""
    from PIL import Image

    from hdl_core import data
    from hdl_core.workspace.store import Workspace
    folder = app_roots / "data" / "shapes"
    for name, colour in (("dark", 20), ("light", 230)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            Image.new("L", (8, 8), colour + i).save(folder / name / f"{name}{i}.png")
    ws = Workspace(pipeline.workspace_for(folder))
    pipeline.import_dataset(ws, data.load_folder(folder))
    ws.set_setting("label", "Folder: shapes")
    return ws


def test_the_dataset_belongs_to_the_session_and_its_url(demo_workspace, app_roots):
    shapes = _second_dataset(app_roots)
    here = AppTest.from_file(APP, default_timeout=120)
    here.query_params["dataset"] = shapes.folder.name           # a link or a reload
    here.run()
    assert not here.exception, here.exception
    assert here.subheader[0].value == "Open: Folder: shapes"
    assert shapes.folder.name in str(here.query_params["dataset"])

    other = _app()                                               # another tab: the demo
    assert other.subheader[0].value == "Open: Demo: handwritten digits"
    assert demo_workspace.folder.name in str(other.query_params["dataset"])
    here.run()                                                   # not switched by the other tab
    assert here.subheader[0].value == "Open: Folder: shapes"

    # the other tab opens the shapes from its recent datasets
    opened = next(b for b in other.button if b.key == f"data_recent_{shapes.folder.name}")
    opened.click().run()
    assert other.subheader[0].value == "Open: Folder: shapes"
    here.query_params["dataset"] = "../../etc"                   # not a workspace: ignored
    here.run()
    assert not here.exception and here.subheader[0].value == "Open: Folder: shapes"


def test_a_url_cannot_open_another_browsers_private_upload(demo_workspace):
    from PIL import Image

    from hdl_core import data
    from hdl_core.data import uploads
    from hdl_core.workspace.store import Workspace
    image = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(image, format="PNG")
    upload = uploads.store_files([("theirs/a.png", image.getvalue())], "ab" * 16)   # not us
    ws = Workspace(pipeline.workspace_for(upload.dataset_folder))
    pipeline.import_dataset(ws, data.load_folder(upload.dataset_folder, root=upload.owner_folder))
    ws.set_setting("label", "Upload: theirs")
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["dataset"] = ws.folder.name                 # a guessed or shared link
    at.run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == "Open: Demo: handwritten digits"
    recent = " ".join(str(e.value) for e in at.markdown)
    assert "Upload: theirs" not in recent                       # not among recent datasets


def test_a_precomputed_npy_without_its_path_list_asks_for_the_path_list_upload(demo_workspace):
    # the library's message names its own parameter and the CLI flag; the page names its
    # own uploader, and nothing is imported
    buffer = io.BytesIO()
    np.save(buffer, np.ones((1797, 4), np.float32))
    at = _app("app_pages/embed.py")
    at.radio[0].set_value("Precomputed file").run()
    at.file_uploader[0].set_value(("my-vectors.npy", buffer.getvalue(), "application/octet-stream"))
    at.run()
    before = pipeline.current_embedding(demo_workspace).key
    next(b for b in at.button if b.label == "Use these embeddings").click().run()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert "my-vectors.npy needs its path list" in errors and "Path list" in errors
    assert "--paths" not in errors and "paths_file" not in errors
    assert pipeline.current_embedding(demo_workspace).key == before
