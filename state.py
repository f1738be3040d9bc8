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
import pandas as pd
import streamlit as st

from hdl_core import data as images
from hdl_core.auto_k import KIntent, resolve_k
from hdl_core.data import uploads
from hdl_core.workspace import pipeline
from hdl_core.workspace.store import Workspace

log = logging.getLogger("hdl_studio")

THUMB_PX = 96
DATASET_PARAM = "dataset"                # URL query parameter naming the open workspace


# --------------------------------------------------------------------------- session keys
# UI state only; durable facts (labels, corrections, runs, the k asked for) are in the store.

WORKSPACE = "workspace_folder"          # the folder of the open workspace
TAB_ID = "tab_id"                       # a short id of this browser session (`actor`)
IMPORT_SUMMARY = "import_summary"       # pipeline.ImportSummary of the last scan, shown once
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
LABEL_MAP = "label_map"                 # the map chart's selection state
LABEL_CLICKED = "label_clicked"         # the last click taken from the map's selection
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
    LABEL_CLICKED: None, REVIEW_SELECTION: [], REVIEW_PAGE: 1, REVIEW_FILTERS: None,
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
        st.page_link("pages/data.py", label="Go to Data", icon=":material/folder_open:")
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
    """The one `Workspace` object of a folder in this server process (shared by sessions)."""
    return Workspace(folder)


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
        st.page_link("pages/data.py", label="Go to Data", icon=":material/folder_open:")
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
    ids = [int(item_id)] + [i for i in ids if i != int(item_id)]
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
    """Which dataset is open and how far it got, in the sidebar of every page."""
    with st.sidebar, user_errors("Reading the workspace"):
        st.caption(f"**Dataset:** {shown(workspace_label(ws))}")
        try:
            embedding = pipeline.current_embedding(ws)
            embedded = shown(embedding.label) if embedding else "not embedded"
        except pipeline.StoreError:   # a damaged array: the page that needs it says so
            embedded = "embeddings damaged"
        sources = pd.Series([source for _, source in ws.current_labels().values()]).value_counts()
        runs = len(ws.runs("hdl"))
        steps = [f"{len(ws.ok_items()):,} images", f"{int(sources.get('seed', 0)):,} seeds",
                 f"{int(sources.get('manual', 0)):,} corrected",
                 f"{int(sources.get('confirmed', 0)):,} confirmed", embedded,
                 f"{runs} HDL run{'s' if runs != 1 else ''}"]
        st.caption(" · ".join(steps))


# --------------------------------------------------------------------------- cached results

def embedding(ws: Workspace) -> pipeline.Embedding | None:
    meta = ws.get_setting("embedding") or {}
    return _embedding(str(ws.folder), meta.get("key", ""), len(ws.ok_items()))


@st.cache_data(show_spinner=False, max_entries=4)
def _embedding(folder: str, key: str, n_items: int):
    return pipeline.current_embedding(workspace_at(folder))


def embedding_at(folder: str, key: str) -> pipeline.Embedding:
    """The current embeddings of a workspace folder, checked to be the ones named by `key`."""
    ws = workspace_at(folder)
    current = embedding(ws)
    if current is None or current.key != key:
        raise pipeline.PipelineError("the embeddings changed while this page was open; reload it")
    return current


@st.cache_data(show_spinner="Finding neighbours…", max_entries=8)
def graph(folder: str, key: str, k: int):
    """The workspace's kNN graph for an embedding, with at least `k` neighbours (computed once)."""
    ws = workspace_at(folder)
    current = pipeline.require_embedding(ws)
    if current.key != key:
        raise pipeline.PipelineError("the embeddings changed while this page was open; reload it")
    return pipeline.neighbour_graph(ws, current, k)


@st.cache_data(show_spinner=False, max_entries=16)
def stored_run(folder: str, run_id: int):
    return workspace_at(folder).load_run(run_id)


def items_of(ws: Workspace):
    """Accepted items in workspace order with absolute file paths (one indexed query)."""
    return pipeline.item_frame(ws)


# --------------------------------------------------------------------------- the map

_umap_jobs: dict[str, threading.Thread] = {}
_umap_errors: dict[str, str] = {}
_umap_lock = threading.Lock()


def map_coordinates(ws: Workspace, emb: pipeline.Embedding) -> tuple[np.ndarray, str]:
    """2-D coordinates for the map: UMAP when ready, else PCA while UMAP runs in the background.

    Returns (coords, kind) with kind "umap", "pca" (UMAP still running) or "pca-only"
    (UMAP failed; the reason is logged and shown by `umap_problem`).
    """
    key = f"{emb.key}|umap"
    stored = _stored_map(str(ws.folder), key)
    if stored is not None:
        return stored, "umap"
    with _umap_lock:
        if key in _umap_errors:
            return _pca(str(ws.folder), emb.key), "pca-only"
        job = _umap_jobs.get(key)
        if job is None or not job.is_alive():
            job = threading.Thread(target=_compute_umap, args=(str(ws.folder), emb.key, key),
                                   daemon=True, name="umap")
            _umap_jobs[key] = job
            job.start()
    return _pca(str(ws.folder), emb.key), "pca"


def umap_problem(emb: pipeline.Embedding) -> str | None:
    return _umap_errors.get(f"{emb.key}|umap")


def _compute_umap(folder: str, emb_key: str, key: str) -> None:
    from hdl_core.views.projection import umap_map
    try:
        ws = workspace_at(folder)
        current = pipeline.require_embedding(ws)
        if current.key != emb_key:
            return
        g = pipeline.neighbour_graph(ws, current)
        coords = umap_map(current.X, g, random_state=0).astype(np.float32)
        ws.save_embeddings(key, coords)
        _stored_map.clear()
    except Exception as error:   # shown to the user as a note; the map falls back to PCA
        log.error("UMAP failed\n%s", traceback.format_exc())
        with _umap_lock:
            _umap_errors[key] = f"{type(error).__name__}: {error}"


@st.cache_data(show_spinner=False, max_entries=8)
def _stored_map(folder: str, key: str):
    return workspace_at(folder).arrays.load_derived(key)    # damaged: computed again


@st.cache_data(show_spinner=False, max_entries=8)
def _pca(folder: str, emb_key: str):
    from hdl_core.views.projection import pca_map
    return pca_map(pipeline.require_embedding(workspace_at(folder)).X).astype(np.float32)


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


@st.cache_data(show_spinner="Making thumbnails for the map…", max_entries=4)
def hover_thumbs(folder: str, emb_key: str, ids: tuple, files: tuple) -> dict:
    """Small JPEG thumbnails of a map's points by id (for `pages._hover`), made once per
    workspace and embeddings, each opened inside the workspace's dataset folder."""
    root = str(workspace_at(folder).dataset_root())
    return {int(i): thumbnail_jpeg(str(f), HOVER_PX, root) for i, f in zip(ids, files)}


def dataset_root(ws: Workspace) -> str:
    """The folder thumbnails of `ws` are confined to (its dataset's root)."""
    return str(ws.dataset_root())


def need_embedding(ws: Workspace) -> pipeline.Embedding:
    """The embeddings, or a note with a link to the Embed page and a stop."""
    emb = embedding(ws)
    if emb is None:
        st.info("These images are not embedded yet (or changed since). Embed them first.")
        st.page_link("pages/embed.py", label="Go to Embed", icon=":material/memory:")
        st.stop()
    return emb


def need_run(ws: Workspace, emb: pipeline.Embedding):
    """The latest HDL run of the current embeddings, or a note with a link to the Label page and a stop."""
    runs = ws.runs("hdl")
    if not runs or pipeline.run_status(runs[-1], emb) == pipeline.STALE:
        st.info("No HDL run for the current embeddings yet. Run HDL on the Label page.")
        st.page_link("pages/label.py", label="Go to Label", icon=":material/label:")
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
    current = pipeline.require_embedding(ws)
    if current.key != emb_key:
        raise pipeline.PipelineError("the embeddings changed while this page was open; reload it")
    y, classes = pipeline.seed_vector(ws, current.item_ids)
    pipeline.require_seeds(y, classes)
    return resolve_k(intent, current.X, y, variant=variant)


@st.cache_data(show_spinner=False, max_entries=16)
def flood(folder: str, run_id: int):
    """`hdl_core.flood_report` of a stored run (with the variant that made it)."""
    from hdl_core.flood import flood_report
    run = stored_run(folder, run_id)
    y = np.where(run.result.step < 0, run.result.labels, -1)
    return flood_report(run.result, y, class_names=run.classes,
                        variant=run.params.get("variant", "paper"))


def seeds_digest(y: np.ndarray) -> str:
    import hashlib
    return hashlib.sha1(np.ascontiguousarray(y).tobytes()).hexdigest()
