"""What the pages share: the open workspace, cached heavy results, thumbnails, and error display.

State lives in the workspace store (SQLite), not in the browser session: the session only
remembers which workspace is open, and so does its URL (``?dataset=...``), so a reload or a
server restart comes back to it while another tab keeps its own. A session with none opens
the built-in demo.

Heavy results are cached per workspace and embedding key: `st.cache_data` in this process,
and on disk in the workspace (embeddings, the kNN graph, the UMAP map), so neighbours are
computed once and a restart does not recompute them. Cached functions take everything they
depend on as arguments and never read the session.

Every session key the pages use is named here, with its default (`init_session`); the
session holds UI state only (the round shown, the filters, a selection).
"""
from __future__ import annotations

import gc
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import threading
import traceback
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import streamlit as st

from hdl_core import data as images
from hdl_core.auto_k import KIntent, resolve_k
from hdl_core.data import uploads
from hdl_core.jobs import BOARD
from hdl_core.workspace import pipeline
from hdl_core.workspace.store import Workspace

log = logging.getLogger("hdl_studio")

THUMB_PX = 96
DATASET_PARAM = "dataset"                # URL query parameter naming the open workspace


# --------------------------------------------------------------------------- warming up

def warm_up_once() -> None:
    """Start warming up, once per server process, unless ``HDL_WARM_UP=0`` (the tests).

    app.py calls this after a page has been drawn: warming up holds the interpreter for a
    few seconds of imports and compiling, and a first visit (opening the demo) took twice
    as long on 2 cores when both ran at once (bench/page_browser_bench.py)."""
    global _WARMING
    with _WARM_LOCK:
        if _WARMING or os.environ.get("HDL_WARM_UP", "1") == "0":
            return
        _WARMING = True
    threading.Thread(target=_warm_up, daemon=True, name="warm-up").start()


_WARM_LOCK = threading.Lock()
_WARMING = False


def _warm_up() -> None:
    """Pay once, in the background, what the first page that needs it would otherwise wait
    for: imports (open_clip and torch for the Embed page, scikit-learn for Teach) and numba's
    compiling of the map kernels (the lasso, the label kernels).
    Every step is optional."""
    steps = [
        lambda: __import__("hdl_core.graph", fromlist=["exact_knn"]).exact_knn(
            np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), 1),
        _warm_maps,
        lambda: __import__("sklearn.datasets"),
        lambda: __import__("open_clip"),
    ]
    for step in steps:
        try:
            step()
        except Exception as error:          # never let warming up break anything
            log.info("warm-up step skipped: %s", error)
    # The libraries are now ~600,000 objects that live as long as the server. Python's full
    # collections (every so often, and holding every thread) walked all of them: 290 ms
    # each. Frozen, they are left out of every collection from now on.
    gc.collect()
    gc.freeze()


def _warm_maps() -> None:
    from hdl_core.views.density import Window, density_image, in_polygon
    from hdl_core.views.projection import place_from_neighbours
    points = np.random.default_rng(0).random((64, 2))
    density_image(points, np.zeros(64, int), ["#000000"], Window(0, 1, 0, 1), width=8, height=8)
    in_polygon(points, [0, 1, 1], [0, 0, 1])
    place_from_neighbours(np.array([[1], [0]]), np.ones((2, 1)), np.array([0]), np.zeros((1, 2)))


# --------------------------------------------------------------------------- session keys
# UI state only; durable facts (labels, corrections, runs, the k asked for) are in the store.

WORKSPACE = "workspace_folder"          # the folder of the open workspace
TAB_ID = "tab_id"                       # a short id of this browser session (`actor`)
IMPORT_SUMMARY = "import_summary"       # pipeline.ImportSummary of the last scan, shown once
SCAN_REPORT = "scan_report"             # Data: how long the last scan took (files/s), shown once
DATA_SOURCE = "data_source"             # Data: where images come from
UPLOAD_OWNER = "upload_owner"           # Data: the token naming this browser's uploads
UPLOAD_DELETING = "upload_deleting"     # Data: the upload whose deletion awaits a confirmation
UPLOADER_ROUND = "uploader_round"       # Data: bumped once files are stored, for fresh uploaders
SEED_PAGE = "seed_page"                 # Data: page of the seed grid
EMBED_STATS = "embed_stats"             # Embed: stats of the last embedding, shown once
EXPORT_ZIP = "export_zip"               # Export: the ImageFolder zip built, and what it left out
# Label
LABEL_ROUND = "label_round"             # the round shown
LABEL_PLAYING = "label_playing"         # the replay is playing
LABEL_POINT = "label_point"             # the clicked point: its position in the run, or None
LABEL_SHOWN_RUN = "label_shown_run"     # the run the keys above refer to
LABEL_ONLY_DISAGREE = "label_only_disagree"
LABEL_RUN_CHOICE = "label_run_choice"
LABEL_MESSAGE = "label_message"
LABEL_MAP = "label_map"                 # the map (a live_chart; a click picks a point)
# Review
REVIEW_SELECTION = "review_selection"   # item ids selected on the map
REVIEW_FLASH = "review_flash"           # (kind, message) shown once after an action
REVIEW_TAB = "review_tab"
REVIEW_FILTERS = "review_filters"       # the filters the page number belongs to
REVIEW_MAP = "review_map"
REVIEW_PAGE = "review_page"
REVIEW_BULK_CLASS = "review_bulk_class"
REVIEW_MODE = "review_mode"             # keyboard review: "one" image at a time or a "grid"
REVIEW_QUEUE = "review_queue"           # (run id, item ids in queue order) being reviewed
REVIEW_WINDOW = "review_window"         # first image of the queue the widget is sent
REVIEW_KEYS = "review_keys"             # the keyboard widget's key
REVIEW_KEY_BATCHES = "review_key_batches"   # widget action seq -> store batch (for its undo)
REVIEW_MAP_WINDOW = "review_map_window"     # the part of a big map shown (None: all of it)
REVIEW_MAP_WROTE = "review_map_wrote"       # a write made from the map's fragment: rerun the page
SEEN_JOBS = "seen_jobs"                 # kind -> number of the last finished job shown here
PANEL_JOBS = "panel_jobs"               # workspace -> numbers of the jobs its panel showed running

# Teach
TEACH_STEP = "teach_step"               # the step of the walkthrough shown
TEACH_SEEDS = "teach_seed_edits"        # {point: class or -1} on top of the toy's drawn seeds
TEACH_SEEDS_FOR = "teach_seed_edits_for"   # the toy settings those edits belong to
TEACH_RUN_ID = "teach_run_id"           # the labeling the step refers to
TEACH_PLANE = "teach_plane"             # the plane chart's selection state
TEACH_SEED_CLASS = "teach_seed_class"   # the class a click on the plane gives
TEACH_SEED_X = "teach_seed_x"           # a seed placed by coordinates
TEACH_SEED_Y = "teach_seed_y"

_DEFAULTS = {
    LABEL_ROUND: None, LABEL_PLAYING: False, LABEL_POINT: None, LABEL_SHOWN_RUN: None,
    REVIEW_SELECTION: [], REVIEW_PAGE: 1, REVIEW_FILTERS: None,
    REVIEW_WINDOW: 0, REVIEW_MODE: "one",
    TEACH_STEP: 0, TEACH_SEEDS: {}, TEACH_SEEDS_FOR: None, TEACH_RUN_ID: None,
}


def init_session() -> None:
    """Give every session key above its default, once per browser session."""
    for key, value in _DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value


# --------------------------------------------------------------------------- names as text

# What Streamlit's Markdown acts on inside a line: emphasis, code, links and images, HTML,
# LaTeX ($), strikethrough, tables, entities, and the [..] of its :colour[..] directives.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>$~|&])")
_LINE_START = re.compile(r"^(\s*|\s*\d+)([#+\-=]|(?<=\d)[.)])")   # headings, lists, setext


def short(text, limit: int = 60) -> str:
    """`text` cut to `limit` characters with an ellipsis (show the full text on hover)."""
    text = str(text)
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def escape_markdown(text) -> str:
    """A file or class name as plain text inside Streamlit Markdown.

    ``**bold**.png`` stays asterisks, ``$$\\frac12$$`` stays dollars and a backslash, a
    link stays brackets; line breaks become spaces. Use it for every user name put into
    ``st.markdown``, ``st.write``, ``st.caption``, ``st.subheader``, alerts and toasts.

    >>> escape_markdown("**bold** $$x$$ [a](b)")
    '\\\\*\\\\*bold\\\\*\\\\* \\\\$\\\\$x\\\\$\\\\$ \\\\[a\\\\](b)'
    """
    flat = " ".join(str(text).splitlines()) if "\n" in str(text) or "\r" in str(text) else str(text)
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", flat)
    return _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), escaped)


def shown(name, limit: int = 60) -> str:
    """A name to show in Markdown: cut to `limit` characters, then escaped."""
    return escape_markdown(short(name, limit))


# --------------------------------------------------------------------------- errors

@contextmanager
def user_errors(what: str = "That"):
    """Show errors as st.error with what to do, never a traceback (details go to the server log)."""
    import sqlite3
    from hdl_core.embed import EmbeddingError, WeightsUnavailable
    from hdl_core.workspace.schema import is_damage
    from hdl_core.workspace.store import StoreError
    try:
        yield
    except (ValueError, EmbeddingError, WeightsUnavailable, StoreError) as error:
        st.error(escape_markdown(error), icon=":material/warning:")   # it names user files
    except sqlite3.DatabaseError as error:   # the database failed under a page, not at opening
        log.error("database error\n%s", traceback.format_exc())
        if not is_damage(error):
            st.error(f"{what} could not read or write the workspace ({error}); nothing you "
                     "saved is lost: try again in a moment.", icon=":material/warning:")
            return
        _forget(st.session_state.get(WORKSPACE))   # the next page run checks it and says so
        st.error("The workspace database is damaged (it was cut short or garbled). Nothing in "
                 "it is changed; the Data page can move it aside and start afresh.",
                 icon=":material/warning:")
        st.page_link("app_pages/data.py", label="Go to Data", icon=":material/folder_open:")
    except OSError as error:   # str(error) names server paths: show the reason only
        log.error("file error\n%s", traceback.format_exc())
        st.error(f"{what} failed reading or writing a file "
                 f"({error.strerror or type(error).__name__}). Nothing you saved is lost; "
                 "try again, and if it persists the details are in the server log.",
                 icon=":material/warning:")
    except Exception as error:   # a bug: say so plainly, keep the details for the log
        log.error("unexpected error\n%s", traceback.format_exc())
        st.error(f"{what} failed unexpectedly ({type(error).__name__}). Nothing you "
                 "saved is lost; the details are in the server log.", icon=":material/warning:")


# --------------------------------------------------------------------------- workspace

@st.cache_resource(show_spinner=False)
def workspace_at(folder: str) -> Workspace:
    """The one `Workspace` object of a folder in this server process (shared by sessions).

    Opening one also reads its ground truth in the background (unless ``HDL_WARM_UP=0``):
    the join of truth and items takes 1.7 s at a million items, and the Label, Review and
    Export pages each wait for it on their first visit; the workspace keeps it per version.
    """
    ws = Workspace(folder)
    if os.environ.get("HDL_WARM_UP", "1") != "0":
        threading.Thread(target=_read_truth, args=(ws,), daemon=True, name="truth").start()
    return ws


def _read_truth(ws: Workspace) -> None:
    try:
        ws.truth_of_items()
    except Exception as error:          # the page that needs it says what is wrong
        log.info("reading the ground truth ahead skipped: %s", error)


def _owner_last_file() -> Path:
    return pipeline.workspace_root() / f"last-workspace-{upload_owner()}.json"


def open_folder(folder: str | Path, label: str, *, private: bool = False) -> Workspace:
    """Make `folder` the open workspace of this browser session and of its URL.

    The URL (``?dataset=...``) keeps it across a reload and page switches, and this browser
    comes back to it in a new tab. Another browser never gets it unasked: `private` (an
    upload not shared on purpose) is kept for the record only.
    """
    folder = str(Path(folder).resolve())
    st.session_state[WORKSPACE] = folder
    st.query_params[DATASET_PARAM] = Path(folder).name
    try:
        _owner_last_file().write_text(json.dumps({"folder": folder, "label": label,
                                                  "private": bool(private)}))
    except OSError as error:
        log.warning("could not remember the last workspace: %s", error)
    ws = workspace_at(folder)
    if ws.get_setting("label") != label:
        ws.set_setting("label", label)
    return ws


def upload_owner() -> str:
    """The token that names this browser's uploads (`hdl_core.data.uploads`).

    Derived from the token of Streamlit's XSRF cookie, which one browser keeps for as long
    as it runs (a reload keeps it, another browser or a private window has its own), so a
    user finds their uploads again after a reload and never sees another browser's. Where
    there is no such cookie (XSRF protection off, tests), a random token for this session.
    """
    owner = st.session_state.get(UPLOAD_OWNER)
    if owner is None:
        token = _xsrf_token()
        owner = (hashlib.sha256(b"hdl-studio uploads|" + token).hexdigest()[:32] if token
                 else secrets.token_hex(16))
        st.session_state[UPLOAD_OWNER] = owner
    return owner


def _xsrf_token() -> bytes | None:
    """The unmasked token of the ``_streamlit_xsrf`` cookie ("2|mask|masked token|time")."""
    try:
        cookie = st.context.cookies.get("_streamlit_xsrf")
    except Exception:   # no browser behind this run (AppTest, bare mode)
        return None
    try:
        version, mask_hex, masked_hex, _ = str(cookie).strip("\"'").split("|")
        mask, masked = bytes.fromhex(mask_hex), bytes.fromhex(masked_hex)
    except ValueError:
        return None
    if version != "2" or not mask or not masked:
        return None
    return bytes(byte ^ mask[i % len(mask)] for i, byte in enumerate(masked))


def release_uploaded(files) -> None:
    """Let Streamlit drop its in-memory copy of uploaded files once they are stored on disk.

    Streamlit keeps every uploaded file in the server's memory for the whole browser session;
    after `hdl_core.data.uploads` has written them, that copy is only a cost. The uploader
    widgets get new keys (`UPLOADER_ROUND`), so the page does not offer the dropped files.
    """
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    context = get_script_run_ctx()
    manager = getattr(context, "uploaded_file_mgr", None)
    for file in files or []:
        try:
            manager.remove_file(session_id=context.session_id, file_id=file.file_id)
        except Exception as error:   # a Streamlit without it: the copy lives until the session ends
            log.info("could not release an uploaded file: %s", error)
    st.session_state[UPLOADER_ROUND] = st.session_state.get(UPLOADER_ROUND, 0) + 1


def delete_upload(upload) -> None:
    """Delete an uploaded dataset of this browser (or a shared one) and its workspace.

    The workspace holds only that dataset's labels, which mean nothing without its images.
    A session that had it open goes back to its last other dataset or the demo.
    """
    from hdl_core.data import uploads
    folder = pipeline.workspace_for(upload.dataset_folder.resolve())
    if (folder / "workspace.sqlite").exists():
        workspace_at(str(folder)).close()
        workspace_at.clear(str(folder))
        shutil.rmtree(folder, ignore_errors=True)
    uploads.delete_upload(upload, upload_owner())
    if st.session_state.get(WORKSPACE) == str(folder.resolve()):
        st.session_state.pop(WORKSPACE, None)


def open_demo() -> Workspace:
    """The built-in demo (digits), generated and imported on first use, with progress."""
    ws_folder = pipeline.workspace_for(images.data_root() / images.DEMO_FOLDER)
    ws = workspace_at(str(ws_folder))
    if ws.dataset_root() is None:
        with st.status("Preparing the built-in demo: 1,797 handwritten digits (only on the first "
                       "visit)…", expanded=True) as status:
            st.write("Writing the images…")
            folder = images.make_demo()
            bar = st.progress(0.0, text="Checking the images…")
            dataset = images.load_folder(folder, progress=lambda done, total: bar.progress(
                done / max(total, 1), text=f"Checking the images… {done:,}/{total:,}"))
            pipeline.import_dataset(ws, dataset)
            status.update(label="The demo is ready.", state="complete", expanded=False)
    return open_folder(ws_folder, "Demo: handwritten digits")


def workspace() -> Workspace:
    """The open workspace of this browser session.

    The dataset belongs to the session and its URL (``?dataset=<workspace>``): a reload
    keeps it, and another tab cannot switch it. A URL naming a dataset opens that one; a
    session with none opens this browser's last dataset, else the built-in demo. When it
    cannot be opened (a damaged database, one from a newer hdl-studio), the page says so,
    links to the Data page (which offers the way out) and stops: never a traceback.
    """
    ws, problem = open_workspace()
    if ws is None:
        st.error(escape_markdown(problem), icon=":material/warning:")
        st.page_link("app_pages/data.py", label="Go to Data", icon=":material/folder_open:")
        st.stop()
    return ws


def open_workspace() -> tuple[Workspace | None, Exception | None]:
    """The open workspace and None, or None and why it cannot be opened (`StoreError`)."""
    from hdl_core.data import DatasetError
    from hdl_core.workspace.store import StoreError
    init_session()
    named = _workspace_named(st.query_params.get(DATASET_PARAM))
    if named is not None:
        st.session_state[WORKSPACE] = str(named)
    folder = st.session_state.get(WORKSPACE)
    try:
        if folder is None:
            folder = _remembered_folder()
            if folder is None:
                return open_demo(), None
            st.session_state[WORKSPACE] = folder
        if st.query_params.get(DATASET_PARAM) != Path(folder).name:
            st.query_params[DATASET_PARAM] = Path(folder).name   # page switches drop params
        return workspace_at(folder), None
    except (StoreError, DatasetError) as error:
        if folder is None:
            st.session_state[WORKSPACE] = str(pipeline.workspace_for(images.make_demo()))
        return None, error


def _forget(folder: str | None) -> None:
    """Drop the cached Workspace of `folder`, closing it, so the next use opens and checks it."""
    if folder is None:
        return
    try:
        workspace_at(folder).close()
    except Exception:   # it may not open at all: then there is nothing to close
        pass
    workspace_at.clear(folder)


def move_damaged_aside() -> tuple[Path | None, str | None]:
    """Move the open (damaged) workspace aside, kept under a new name; forget it here.

    Returns
    -------
    (dataset folder or None, label or None)
        What could still be read of which dataset it held, to open that dataset afresh.
    """
    from hdl_core.workspace.store import move_workspace_aside
    folder = st.session_state.get(WORKSPACE)
    if folder is None:
        return None, None
    _forget(folder)
    _, salvaged = move_workspace_aside(folder)
    st.session_state.pop(WORKSPACE, None)
    root = salvaged.get("dataset_root")
    try:
        label = json.loads(salvaged.get("label", "null"))
    except ValueError:
        label = None
    return (Path(root) if root else None), (label if isinstance(label, str) else None)


def _remembered_folder() -> str | None:
    """This browser's last workspace (never another browser's)."""
    for last in (_owner_last_file(),):
        try:
            folder = json.loads(last.read_text())["folder"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(folder, str) and (Path(folder) / "workspace.sqlite").is_file():
            return folder
    return None


def _workspace_named(name: str | None) -> Path | None:
    """The workspace folder a URL names: a plain folder name under the workspace root, and
    not another browser's private upload."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        return None
    folder = pipeline.workspace_root() / name
    if not (folder / "workspace.sqlite").is_file():
        return None
    return folder if _owner_of(folder) in (None, upload_owner(), uploads.SHARED_OWNER) else None


def _owner_of(folder: Path) -> str | None:
    """Whose upload the workspace `folder` holds (an owner token or "shared"); None when its
    dataset is not an upload or cannot be read."""
    try:
        root = workspace_at(str(folder.resolve())).dataset_root()
    except Exception:   # damaged: its page says so
        return None
    owner = uploads.owner_folder_of(root) if root is not None else None
    return None if owner is None else owner.name


def recent_workspaces(limit: int = 10) -> list[tuple[Path, str, float]]:
    """Workspaces under the root, most recently used first: (folder, label, modified time).

    Uploaded datasets are left out: another browser's are private, and this browser lists
    its own under "Your uploads" on the Data page."""
    found = []
    for db in pipeline.workspace_root().glob("*/workspace.sqlite"):
        try:
            modified = max(db.stat().st_mtime, (db.parent / (db.name + "-wal")).stat().st_mtime
                           if (db.parent / (db.name + "-wal")).exists() else 0.0)
        except OSError:
            continue
        found.append((db.parent, modified))
    found.sort(key=lambda entry: -entry[1])
    out = []
    for folder, modified in found:
        if len(out) == limit:
            break
        if _owner_of(folder) is not None:       # uploads: listed as "Your uploads" instead
            continue
        try:
            label = workspace_at(str(folder.resolve())).get_setting("label") or folder.name
        except Exception:   # a damaged workspace is listed by its folder name
            label = folder.name
        out.append((folder.resolve(), label, modified))
    return out


def open_in_review(item_id: int) -> None:
    """Put one image first in this session's review (clicked on a map); show the Review tab."""
    run_id, ids = st.session_state.get(REVIEW_QUEUE) or (None, [])
    ids = np.asarray(ids, np.int64)
    ids = np.concatenate([[int(item_id)], ids[ids != int(item_id)]]).astype(np.int64)
    st.session_state[REVIEW_QUEUE] = (run_id, ids)
    st.session_state[REVIEW_WINDOW] = 0
    st.session_state[REVIEW_TAB] = "Review"


def actor() -> str:
    """Who this browser session is, for the history and for undo: ``HDL_USER`` or the
    signed-in user's name when configured, and a short id of this browser tab."""
    if TAB_ID not in st.session_state:
        import secrets
        st.session_state[TAB_ID] = secrets.token_hex(2)
    tab = f"tab {st.session_state[TAB_ID]}"
    name = os.environ.get("HDL_USER", "").strip()
    try:
        if not name and st.user.is_logged_in:
            name = str(st.user.get("name") or st.user.get("email") or "")
    except Exception:   # no authentication configured
        pass
    return f"{name} ({tab})" if name else tab


def workspace_label(ws: Workspace) -> str:
    return ws.get_setting("label") or ws.folder.name


def sidebar_status(ws: Workspace) -> None:
    """Which dataset is open, how far it got, and its background jobs, in the sidebar of
    every page (counts from the store, never a row per image)."""
    with st.sidebar, user_errors("Reading the workspace"):
        st.caption(f"**Dataset:** {shown(workspace_label(ws))}")
        try:
            embedding_now = embedding(ws)
            embedded = shown(embedding_now.label) if embedding_now else "not embedded"
        except pipeline.StoreError:   # a damaged array: the page that needs it says so
            embedded = "embeddings damaged"
        sources = _source_counts(str(ws.folder), ws.labels_version())
        runs = len(ws.runs("hdl"))
        steps = [f"{ws.count_items()['ok']:,} images", f"{int(sources.get('seed', 0)):,} seeds",
                 f"{int(sources.get('manual', 0)):,} corrected",
                 f"{int(sources.get('confirmed', 0)):,} confirmed", embedded,
                 f"{runs} HDL run{'s' if runs != 1 else ''}"]
        st.caption(" · ".join(steps))
        if BOARD.running(str(ws.folder)):
            st.fragment(_jobs_panel, run_every=1.0)(str(ws.folder))


def _jobs_panel(folder: str) -> None:
    """The running jobs with their progress; when one of them is done, the page runs again
    so it shows what that one made (the new run while its kNN-DV still runs, say)."""
    running = BOARD.running(folder)
    numbers = {job.number for job in running}
    shown = st.session_state.setdefault(PANEL_JOBS, {})
    before, shown[folder] = shown.get(folder, set()), numbers
    if any_finished(before, numbers):
        st.rerun()
    for current in running:
        _watch(current)
        fraction = current.fraction
        st.progress(fraction if fraction is not None else 0.0,
                    text=escape_markdown(current.describe()))


def any_finished(shown: set, running: set) -> bool:
    """Whether the jobs panel should run the page again: nothing runs any more, or a job it
    showed running is not running now (jobs that only started do not count)."""
    return not running or bool(shown - running)


# --------------------------------------------------------------------------- cached results
# Big read-only results (embeddings mapped from disk, graphs, runs, label arrays, maps) are
# `st.cache_resource`: `st.cache_data` would copy them on every read, and at a million
# images a copy of the graph alone is 240 MB. Callers never change them.

def embedding(ws: Workspace) -> pipeline.Embedding | None:
    meta = ws.get_setting("embedding") or {}
    return _embedding(str(ws.folder), meta.get("key", ""), ws.items_version())


@st.cache_resource(show_spinner=False, max_entries=4)
def _embedding(folder: str, key: str, items_version: int):
    # mapped, not read: pages touch a few rows of a 2 GB array
    return pipeline.current_embedding(workspace_at(folder), mmap=True)


def embedding_at(folder: str, key: str) -> pipeline.Embedding:
    """The current embeddings of a workspace folder, checked to be the ones named by `key`."""
    ws = workspace_at(folder)
    current = embedding(ws)
    if current is None or current.key != key:
        raise pipeline.PipelineError("the embeddings changed while this page was open; reload it")
    return current


@st.cache_resource(show_spinner="Finding neighbours…", max_entries=4)
def graph(folder: str, key: str, k: int):
    """The workspace's kNN graph for an embedding, with at least `k` neighbours (computed once)."""
    ws = workspace_at(folder)
    current = embedding(ws)
    if current is None or current.key != key:
        raise pipeline.PipelineError("the embeddings changed while this page was open; reload it")
    return pipeline.neighbour_graph(ws, current, k)


def stored_run(folder: str, run_id: int):
    """A run as stored (its class names as they are now: a rename or merge reloads it)."""
    return _stored_run(folder, int(run_id), tuple(workspace_at(folder).classes()))


@st.cache_resource(show_spinner=False, max_entries=8)
def _stored_run(folder: str, run_id: int, classes: tuple):
    return workspace_at(folder).load_run(run_id)


def label_columns(ws: Workspace, run_id: int | None, *, with_baseline: bool = True):
    """The label table of a run as arrays (`labels.LabelColumns`), kept until a label changes."""
    return _label_columns(str(ws.folder), run_id, ws.labels_version(), with_baseline)


@st.cache_resource(show_spinner=False, max_entries=4)
def _label_columns(folder: str, run_id: int | None, version: int, with_baseline: bool):
    from hdl_core.workspace import labels
    return labels.label_columns(workspace_at(folder), run_id, with_baseline=with_baseline)


@st.cache_data(show_spinner=False, max_entries=16)
def _source_counts(folder: str, version: int) -> dict:
    return workspace_at(folder).edit_counts()


def items_of(ws: Workspace):
    """Accepted items in workspace order with absolute file paths (one indexed query)."""
    return pipeline.item_frame(ws)


# --------------------------------------------------------------------------- background jobs

def jobs_of(ws: Workspace) -> list:
    """The background jobs of the open workspace (`hdl_core.jobs`): running first."""
    return BOARD.jobs_of(str(ws.folder))


def job(ws: Workspace, kind: str):
    """The running or latest job of a kind for this workspace, or None."""
    return BOARD.get(str(ws.folder), kind)


def finished_job(ws: Workspace, kind: str):
    """The latest job of a kind if it finished and this browser session saw it running (or
    started it): a success once, a failure until another job of that kind starts; else None."""
    latest = BOARD.get(str(ws.folder), kind)
    if latest is None:
        return None
    watching = st.session_state.setdefault(SEEN_JOBS, {})
    if latest.running:
        _watch(latest)
        return None
    if watching.get((latest.workspace, kind)) != latest.number:
        return None                            # not one this session saw running
    if latest.error is None:                   # a success is said once; a failure stays said
        del watching[(latest.workspace, kind)]
    return latest


def _watch(job) -> None:
    """Remember that this session saw `job` running (so it is told how it ended)."""
    st.session_state.setdefault(SEEN_JOBS, {})[(job.workspace, job.kind)] = job.number


def start_embedding(ws: Workspace, spec: pipeline.EncoderSpec):
    """Embed every image in the background (`pipeline.embed_workspace`); returns the job."""
    folder, n = str(ws.folder), ws.count_items()["ok"]

    def work(job):
        job.say("reading and encoding images")
        return pipeline.embed_workspace(workspace_at(folder), spec, progress=job.progress)

    started = BOARD.start(folder, "embedding", work, label=f"Embedding {n:,} images ({spec.name})")
    _watch(started)
    return started


BASELINE_INLINE = 50_000     # up to this many images kNN-DV runs inside the labeling job


def start_labeling(ws: Workspace, emb: pipeline.Embedding):
    """Run HDL and kNN-DV in the background (`pipeline.run_labeling`), then order the new
    run's review queue, so the Review page has it ready; returns the job. Beyond
    `BASELINE_INLINE` images the job ends with the queue and kNN-DV, which only the
    comparison on the Label page needs, follows in a job of its own
    (`pipeline.run_baseline`): the new run is there to review sooner."""
    folder, key = str(ws.folder), emb.key
    later = len(emb.item_ids) > BASELINE_INLINE

    def work(job):
        here = workspace_at(folder)
        current = embedding_at(folder, key)
        job.say("finding neighbours")
        neighbours = pipeline.neighbour_graph(here, current)
        out = pipeline.run_labeling(here, current, pipeline.k_intent(here), graph=neighbours,
                                    with_baseline=not later, progress=job.say)
        job.say("ordering the review queue")
        _queue_for(folder, out.hdl_id, key, out.k)
        if later:               # started before this job ends: a wait for the board waits for it
            BOARD.start(folder, f"baseline-{out.hdl_id}",
                        lambda _: pipeline.run_baseline(workspace_at(folder), current, out.hdl_id),
                        label=f"kNN-DV to compare with HDL run #{out.hdl_id}")
        return out

    started = BOARD.start(folder, "labeling", work, label=f"Labeling {len(emb.item_ids):,} images")
    _watch(started)
    return started


def review_queue(ws: Workspace, run, emb: pipeline.Embedding):
    """The review queue of a run (`hdl_core.review_queue_with_reasons`), or None while it is
    being ordered in the background (started here when it is not)."""
    folder = str(ws.folder)
    key = (folder, run.run_id, emb.key, run.k)
    with _kept_lock:
        queue = _queues.get(key)
    if queue is not None:
        return queue
    if len(emb.item_ids) <= QUEUE_INLINE:                  # small: quicker than a job
        return _queue_for(folder, run.run_id, emb.key, run.k)
    BOARD.start(folder, "queue", lambda job: _queue_for(folder, run.run_id, emb.key, run.k),
                label=f"Ordering {len(emb.item_ids):,} labels likeliest-wrong first")
    return None


QUEUE_INLINE = 50_000          # up to this many images the queue is ordered inside the page
_queues: dict = {}
_kept_lock = threading.Lock()


def _queue_for(folder: str, run_id: int, emb_key: str, k: int):
    from hdl_core import suggest
    key = (folder, run_id, emb_key, k)
    with _kept_lock:
        if key in _queues:
            return _queues[key]
    ws = workspace_at(folder)
    run = stored_run(folder, run_id)
    current = embedding_at(folder, emb_key)
    neighbours = pipeline.neighbour_graph(ws, current, max(k, 10))
    result = run.result
    y = result.seed_labels
    queue = suggest.review_queue_with_reasons(current.X, y, result, graph=neighbours)
    with _kept_lock:
        while len(_queues) >= 4:                           # a few runs' queues, newest kept
            _queues.pop(next(iter(_queues)))
        _queues[key] = queue
    return queue


# --------------------------------------------------------------------------- the map

def map_coordinates(ws: Workspace, emb: pipeline.Embedding) -> tuple[np.ndarray | None, str]:
    """2-D coordinates for the map: UMAP when ready, else PCA while it computes in the background.

    Returns (coords, kind) with kind "umap", "pca" (UMAP still computing), "pca-only"
    (UMAP failed; `umap_problem` says why), or "computing" with coords None: a big map
    whose PCA preview is not ready either (its job makes that first).
    """
    from hdl_core.workspace import maps
    folder = str(ws.folder)
    coords = _kept(("map", folder, maps.map_key(emb)), lambda: maps.stored_map(ws, emb))
    if coords is not None:
        return coords, "umap"
    running = _map_job(ws, emb)
    big = len(emb.item_ids) > maps.MAP_SAMPLE
    if big:
        preview = _kept(("pca", folder, emb.key), lambda: ws.arrays.load_derived(f"{emb.key}|pca"))
    else:
        preview = _kept(("pca", folder, emb.key), lambda: maps.preview_map(ws, emb))
    if running.state == "failed":
        if preview is None:
            preview = _kept(("pca", folder, emb.key), lambda: maps.preview_map(ws, emb))
        return preview, "pca-only"
    if running.state == "done":                  # finished since the look above
        coords = _kept(("map", folder, maps.map_key(emb)), lambda: maps.stored_map(ws, emb))
        if coords is not None:
            return coords, "umap"
    return (preview, "pca") if preview is not None else (None, "computing")


def _map_job(ws: Workspace, emb: pipeline.Embedding):
    """The job laying out the map of `emb` (started unless it runs or has finished)."""
    from hdl_core.workspace import maps
    folder, key = str(ws.folder), emb.key
    current = BOARD.get(folder, "map")
    if current is not None and (current.running or (current.tag == key and current.state == "failed")):
        return current

    def work(job):
        here = workspace_at(folder)
        mine = embedding_at(folder, key)
        if len(mine.item_ids) > maps.MAP_SAMPLE:
            job.say("a first map (PCA)")
            maps.preview_map(here, mine)
        job.say("finding neighbours")
        neighbours = pipeline.neighbour_graph(here, mine)
        return maps.compute_map(here, mine, neighbours, progress=job.say)

    return BOARD.start(folder, "map", work, label=f"Map of {len(emb.item_ids):,} images", tag=key)


def umap_problem(ws: Workspace, emb: pipeline.Embedding) -> str | None:
    """Why the map of `emb` could not be computed, or None."""
    current = BOARD.get(str(ws.folder), "map")
    if current is None or current.tag != emb.key or current.error is None:
        return None
    return f"{type(current.error).__name__}: {current.error}"


_kept_arrays: dict = {}


def _kept(key: tuple, load):
    """An immutable array computed once per key (a map, a preview); None is not kept, so it
    is looked for again (the job that makes it may finish meanwhile)."""
    with _kept_lock:
        if key in _kept_arrays:
            return _kept_arrays[key]
    value = load()
    if value is not None:
        with _kept_lock:
            while len(_kept_arrays) >= 8:
                _kept_arrays.pop(next(iter(_kept_arrays)))
            _kept_arrays[key] = value
    return value


# --------------------------------------------------------------------------- thumbnails

@st.cache_data(show_spinner=False, max_entries=20_000)
def thumbnail_jpeg(file: str, size: int = THUMB_PX, root: str | None = None) -> bytes:
    """A small JPEG of an image file (cached): about a fifth of a PNG's bytes for photos,
    which is what the keyboard widget resends on every rerun. Opened as `thumbnail_png`."""
    return _thumbnail(file, size, root, "JPEG")


@st.cache_data(show_spinner=False, max_entries=20_000)
def thumbnail_png(file: str, size: int = THUMB_PX, root: str | None = None) -> bytes:
    """A small PNG of an image file (cached); a grey tile when the file cannot be read.

    The file is opened inside `root` (the dataset folder; default the data root, where every
    dataset the app opens lives): a link, a hard link or a file outside it gets the grey
    tile, whatever it points at.
    """
    return _thumbnail(file, size, root, "PNG")


def _thumbnail(file: str, size: int, root: str | None, kind: str) -> bytes:
    from PIL import Image
    try:
        image = images.thumbnail(file, size, root=root or str(images.data_root()))
    except Exception:
        image = Image.new("RGB", (size, size), (160, 160, 160))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=kind, **({"quality": 85} if kind == "JPEG" else {}))
    return buffer.getvalue()
    from PIL import Image
    try:
        image = images.thumbnail(file, size, root=root or str(images.data_root()))
    except Exception:
        image = Image.new("RGB", (size, size), (160, 160, 160))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


HOVER_PX = 80


def dataset_root(ws: Workspace) -> str:
    """The folder thumbnails of `ws` are confined to (its dataset's root)."""
    return str(ws.dataset_root())


def need_embedding(ws: Workspace) -> pipeline.Embedding:
    """The embeddings, or a note with a link to the Embed page and a stop."""
    emb = embedding(ws)
    if emb is None:
        st.info("These images are not embedded yet (or changed since). Embed them first.")
        st.page_link("app_pages/embed.py", label="Go to Embed", icon=":material/memory:")
        st.stop()
    return emb


def need_run(ws: Workspace, emb: pipeline.Embedding):
    """The latest HDL run of the current embeddings, or a note with a link to the Label page and a stop."""
    runs = ws.runs("hdl")
    if not runs or pipeline.run_status(runs[-1], emb) == pipeline.STALE:
        st.info("No HDL run for the current embeddings yet. Run HDL on the Label page.")
        st.page_link("app_pages/label.py", label="Go to Label", icon=":material/label:")
        st.stop()
    return stored_run(str(ws.folder), runs[-1].run_id)


# --------------------------------------------------------------------------- k

def k_intent(ws: Workspace) -> KIntent:
    """The k the next run uses, as the user asked for it (Choose k page)."""
    return pipeline.k_intent(ws)


@st.cache_data(show_spinner="Measuring μ_k…", max_entries=32)
def k_choice(folder: str, emb_key: str, seeds_digest: str, intent: KIntent,
             variant: str = "paper"):
    """`resolve_k` for an intent and a labeling variant, computed once per embedding, seeds,
    intent and variant.

    Returns (k, KChoice or None). `seeds_digest` (`seeds_digest`) keys the cache: a new
    seed or correction computes k* again.
    """
    ws = workspace_at(folder)
    current = embedding_at(folder, emb_key)           # mapped: μ_k reads the seeds' rows only
    y, classes = pipeline.seed_vector(ws, current.item_ids)
    pipeline.require_seeds(y, classes)
    return resolve_k(intent, current.X, y, variant=variant)


@st.cache_data(show_spinner=False, max_entries=16)
def flood(folder: str, run_id: int):
    """`hdl_core.flood_report` of a stored run (with the variant that made it)."""
    from hdl_core.flood import flood_report
    run = stored_run(folder, run_id)
    y = run.result.seed_labels
    return flood_report(run.result, y, class_names=run.classes,
                        variant=run.params.get("variant", "paper"))


def seeds_digest(y: np.ndarray) -> str:
    import hashlib
    return hashlib.sha1(np.ascontiguousarray(y).tobytes()).hexdigest()
