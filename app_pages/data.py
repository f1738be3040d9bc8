"""Data: open the demo, a folder under the data root, a zip or uploaded files; see seeds and skips; add seeds.

Uploads are kept per browser (`hdl_core.data.uploads`): a folder named by what was uploaded,
never written over, listed under "Your uploads" with a way to delete them.
"""
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

import state
from hdl_core import data as images
from hdl_core.data import uploads
from hdl_core.workspace import pipeline

SEED_GRID_PAGE = 48
MIN_SEEDS_PER_CLASS = 3
LISTED_AT_MOST = 1_000                  # missing and skipped files listed (all are counted)


def _first_of(listed: int, total: int) -> str:
    return f" The first {listed:,} of {total:,} are listed." if listed < total else ""


def scan_text(done: int, total: int, seconds: float) -> str:
    """``"Checking images… 12,000/100,000 · 1,530 files/s · 58 s left"``."""
    rate = done / seconds if seconds > 0 else 0.0
    if rate <= 0 or done >= total:
        return f"Checking images… {done:,}/{total:,}"
    return (f"Checking images… {done:,}/{total:,} · {rate:,.0f} files/s · "
            f"{(total - done) / rate:,.0f} s left")


def _open_dataset(folder: Path, label: str, seeds_csv=None, *, root: Path | None = None,
                  private: bool = False) -> None:
    """Scan `folder` with a progress bar (files/s), store it in its workspace and make it the
    open one. Files the workspace already knows, unchanged in size and time, are not read
    again (`hdl_core.data.load_folder`'s ``known``)."""
    started = time.perf_counter()
    known = _known_files(folder, root)
    bar = st.progress(0.0, text="Listing the folder…")
    dataset = images.load_folder(folder, seeds_csv=seeds_csv, root=root, known=known,
                                 progress=lambda done, total: bar.progress(
                                     done / max(total, 1),
                                     text=scan_text(done, total, time.perf_counter() - started)))
    bar.empty()
    target = state.open_folder(pipeline.workspace_for(dataset.root), label, private=private)
    summary = pipeline.import_dataset(target, dataset)
    st.session_state[state.IMPORT_SUMMARY] = summary
    seconds = time.perf_counter() - started
    n_files = len(dataset.items) + len(dataset.skipped)
    unchanged = sum(1 for item in dataset.items if known.get(item.path, (None,) * 3)[2]
                    == item.content_hash and known[item.path][1] == item.mtime_ns)
    st.session_state[state.SCAN_REPORT] = (
        f"Checked {n_files:,} files in {seconds:.1f} s ({n_files / max(seconds, 1e-9):,.0f} files/s)"
        + (f"; {unchanged:,} unchanged since the last scan were not read again." if unchanged
           else "."))
    st.rerun()


def _known_files(folder: Path, root: Path | None) -> dict:
    """What the workspace of `folder` knows of its files (empty when it has none yet)."""
    try:
        target = pipeline.workspace_for(images.resolve_in_data_root(folder, root))
    except images.DatasetError:
        return {}
    if not (target / "workspace.sqlite").is_file():
        return {}
    try:
        return state.workspace_at(str(target.resolve())).file_stats()
    except Exception:            # a damaged workspace: scan everything, the page says the rest
        return {}


def _open_upload(upload: uploads.Upload, label: str, seeds_csv=None) -> None:
    _open_dataset(upload.dataset_folder, label, seeds_csv, root=upload.owner_folder,
                  private=not upload.shared)


def main() -> None:
    st.title("Data")
    ws, problem = state.open_workspace()     # a damaged one must not keep this page shut
    if ws is not None:
        state.sidebar_status(ws)
    source = st.radio("Images from", ["Built-in demo", "Folder on the server", "Zip file",
                                      "Upload files"], horizontal=True, key=state.DATA_SOURCE)
    _open_section(source)
    _uploads_section()
    _recent_section(ws)
    st.divider()
    if ws is None:
        _damaged_section(problem)
    else:
        _workspace_section(ws)


def _damaged_section(problem: Exception) -> None:
    """The open workspace cannot be opened: say which and why, and offer the way out."""
    from hdl_core.workspace.schema import DamagedWorkspace
    st.subheader("The open workspace cannot be opened")
    st.error(state.escape_markdown(problem), icon=":material/warning:")
    if not isinstance(problem, DamagedWorkspace):
        st.info("Open another dataset above.")
        return
    st.write("Moving it aside keeps it, renamed, beside the other workspaces (whoever runs the "
             "server can still look into it); a fresh workspace then takes its place.")
    if st.button("Move it aside and start afresh", type="primary", key="move_damaged_aside"):
        with state.user_errors("Moving the workspace aside"):
            dataset_folder, label = state.move_damaged_aside()
            if dataset_folder is not None and dataset_folder.is_dir():
                owner = uploads.owner_folder_of(dataset_folder)
                _open_dataset(dataset_folder, label or f"Folder: {dataset_folder.name}", root=owner,
                              private=owner is not None and owner.name != uploads.SHARED_OWNER)
            st.session_state.pop(state.IMPORT_SUMMARY, None)
            st.toast("The damaged workspace was moved aside. Open your dataset again above.")
            st.rerun()


def _recent_section(ws) -> None:
    """The datasets opened on this server, most recent first; one click opens one here.

    Uploads are not listed here (another browser's are private; this browser's are under
    "Your uploads")."""
    current = None if ws is None else ws.folder.resolve()
    recent = [entry for entry in state.recent_workspaces() if entry[0] != current]
    if not recent:
        return
    with st.expander(f"Recent datasets ({len(recent)})"):
        for folder, label, _ in recent:
            left, right = st.columns([4, 1], vertical_alignment="center")
            left.markdown(state.escape_markdown(label))
            if right.button("Open", key=f"data_recent_{folder.name}"):
                state.open_folder(folder, label)
                st.session_state.pop(state.IMPORT_SUMMARY, None)
                st.rerun()


def _open_section(source: str) -> None:
    with state.user_errors("Opening the dataset"):
        if source == "Built-in demo":
            st.write("1,797 handwritten digits (scikit-learn), 32×32 PNGs, three seeds per class; "
                     "the true labels are kept aside so every page can show real accuracy.")
            if st.button("Open the demo", type="primary"):
                state.open_demo()
                st.session_state.pop(state.IMPORT_SUMMARY, None)
                st.rerun()

        elif source == "Folder on the server":
            root = images.data_root()
            st.caption("Folders under the server's data root (HDL_DATA_ROOT on the server). "
                       "Images in a sub-folder named after a class are seeds of that class; images at "
                       "the top level or under `unlabeled/` are unlabeled.")
            # the demo is opened with its own choice above (uploads live in a hidden folder)
            folders = [f for f in images.dataset_folders(root) if f != images.DEMO_FOLDER]
            choice = st.selectbox("Folder", folders, index=None, placeholder="choose a folder…")
            typed = st.text_input("…or a path under the data root", placeholder="photos/2024")
            seeds_csv = st.file_uploader("Seed CSV (optional): path,label", type=["csv"], key="seed_csv")
            target = typed.strip() or choice
            if st.button("Open folder", type="primary", disabled=not target):
                folder = images.resolve_in_data_root(target)
                _open_dataset(folder, f"Folder: {target}",
                              seeds_csv.getvalue() if seeds_csv is not None else None)

        elif source == "Zip file":
            upload = st.file_uploader("A .zip of images (class folders for seeds)", type=["zip"],
                                      key=f"zip_{st.session_state.get(state.UPLOADER_ROUND, 0)}")
            seeds_csv = st.file_uploader("Seed CSV (optional): path,label", type=["csv"], key="seed_csv_zip")
            shared = st.checkbox("Share with everyone using this server", key="share_zip",
                                 help=SHARE_HELP)
            if st.button("Open zip", type="primary", disabled=upload is None):
                stored = uploads.store_zip(upload, upload.name, state.upload_owner(), shared=shared)
                name, seeds = upload.name, seeds_csv.getvalue() if seeds_csv is not None else None
                state.release_uploaded([upload])      # on disk now: Streamlit's copy can go
                _open_upload(stored, f"Zip: {name}", seeds)

        else:
            mode = st.radio("Upload", ["A folder", "Files"], horizontal=True)
            chosen = st.file_uploader(
                "Images (a folder keeps its class sub-folders as seeds)",
                key=f"uploads_{mode}_{st.session_state.get(state.UPLOADER_ROUND, 0)}",
                accept_multiple_files="directory" if mode == "A folder" else True)
            shared = st.checkbox("Share with everyone using this server", key="share_files",
                                 help=SHARE_HELP)
            if st.button("Open uploads", type="primary", disabled=not chosen):
                # the uploaded file objects themselves: read in chunks, never copied whole
                stored = uploads.store_files([(f.name, f) for f in chosen], state.upload_owner(),
                                             shared=shared)
                state.release_uploaded(chosen)        # on disk now: Streamlit's copy can go
                _open_upload(stored, f"Upload: {stored.name}")


SHARE_HELP = ("Uploads are private to this browser unless shared: a shared upload is listed "
              "for everyone who opens this app.")


def _uploads_section() -> None:
    """This browser's uploads (and shared ones): open one again, or delete it."""
    with state.user_errors("Managing uploads"):
        mine = uploads.list_uploads(state.upload_owner())
        if not mine:
            return
        limits = uploads.UploadLimits.from_env()
        used = uploads.uploads_size()
        with st.expander(f"Your uploads ({len(mine)})",
                         expanded=st.session_state.get(state.UPLOAD_DELETING) is not None):
            st.caption(f"Uploads on this server use {uploads.human_size(used)} of {uploads.human_size(limits.max_total_bytes)}; "
                       f"one upload may hold {uploads.human_size(limits.max_upload_bytes)}.")
            for upload in mine:
                _upload_row(upload)


def _upload_row(upload: uploads.Upload) -> None:
    when = datetime.fromtimestamp(upload.modified).strftime("%Y-%m-%d %H:%M")
    text, open_col, delete_col = st.columns([5, 1, 1], vertical_alignment="center")
    text.text(f"{upload.name} · {uploads.human_size(upload.size)} · {when}"
              + (" · shared" if upload.shared else ""))
    if open_col.button("Open", key=f"upload_open_{upload.name}"):
        _open_upload(upload, f"Upload: {upload.name}")
    if delete_col.button("Delete", key=f"upload_delete_{upload.name}"):
        st.session_state[state.UPLOAD_DELETING] = upload.name
    if st.session_state.get(state.UPLOAD_DELETING) == upload.name:
        st.warning("Delete these uploaded images, and the labels and corrections made on them? "
                   "This cannot be undone.", icon=":material/delete:")
        yes, no = st.columns(2)
        if yes.button("Yes, delete", key=f"upload_delete_yes_{upload.name}", type="primary"):
            state.delete_upload(upload)
            st.session_state.pop(state.UPLOAD_DELETING, None)
            st.toast("Upload deleted")
            st.rerun()
        if no.button("Keep it", key=f"upload_delete_no_{upload.name}"):
            st.session_state.pop(state.UPLOAD_DELETING, None)
            st.rerun()

def _workspace_section(ws) -> None:
    st.subheader(f"Open: {state.shown(state.workspace_label(ws), 80)}")
    with state.user_errors("Reading the workspace"):
        summary = st.session_state.get(state.IMPORT_SUMMARY)
        report = st.session_state.pop(state.SCAN_REPORT, None)
        if report:
            st.caption(report)
        counted = ws.count_items()
        seeds = ws.seeds()
        classes = ws.classes()
        counts = pd.Series(list(seeds.values()), dtype=object).value_counts()
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Images", f"{counted['ok']:,}")
        c2.metric("Seeds", f"{len(seeds):,}")
        c3.metric("Classes", f"{len(classes):,}")
        c4.metric("Skipped", f"{counted['skipped']:,}")
        if counted["missing"]:
            missing = ws.items_with_status("missing", limit=LISTED_AT_MOST)
            with st.expander(f"{counted['missing']} image(s) missing since they were scanned: their "
                             "labels and corrections are kept", icon=":material/help:"):
                st.caption("Moved, renamed or deleted files. Their corrections come back when the "
                           "same file is found again (at any path) by the next scan: open the "
                           "folder again once they are back."
                           + _first_of(len(missing), counted["missing"]))
                st.dataframe(missing[["path"]], hide_index=True, width="stretch")
        if summary and summary.moved:
            st.info(f"{summary.moved} image(s) were found again under a new name or folder; their "
                    "labels and corrections moved with them.")
        if classes:
            table = pd.DataFrame({"class": classes, "seeds": [int(counts.get(c, 0)) for c in classes]})
            st.dataframe(table, hide_index=True, width="content")
        if counted["skipped"]:
            skipped = ws.items_with_status("skipped", limit=LISTED_AT_MOST)
            with st.expander(f"Skipped files ({counted['skipped']}), each with its reason"):
                shown = _first_of(len(skipped), counted["skipped"])
                if shown:
                    st.caption(shown.strip())
                st.dataframe(skipped[["path", "skip_reason"]].rename(columns={"skip_reason": "reason"}),
                             hide_index=True, width="stretch")
        if summary and summary.duplicates:
            with st.expander(f"Identical files ({len(summary.duplicates)} groups), kept and labeled each"):
                st.write(pd.DataFrame({"files": [", ".join(g) for g in summary.duplicates]}))

        few = [c for c in classes if counts.get(c, 0) < MIN_SEEDS_PER_CLASS]
        if not counted["ok"]:
            st.warning("No readable image in this dataset; see the skipped files above.")
        else:
            if not seeds:
                st.warning("No seeds yet: label a few images per class below (or use class folders or a seed CSV).")
            elif len(classes) < 2 or few:
                st.info(f"Few seeds for {', '.join(map(state.shown, few)) or 'a second class'}: "
                        "HDL needs at least two classes, "
                        f"and {MIN_SEEDS_PER_CLASS}+ seeds per class make it more reliable.")
            with st.expander("Label seeds here", expanded=not seeds or len(classes) < 2):
                left, right = st.columns([2, 1])
                new_class = right.text_input("New class", placeholder="type a class name")
                options = classes + ([new_class.strip()] if new_class.strip() and new_class.strip() not in classes else [])
                target_class = left.selectbox("Class for the selected images", options, index=None,
                                              placeholder="choose or type a class")
                n_unlabeled = max(counted["ok"] - len(seeds), 0)
                pages = max(1, -(-n_unlabeled // SEED_GRID_PAGE))
                page = st.number_input(f"Page (of {pages:,})", 1, pages, 1, key=state.SEED_PAGE) - 1
                chunk = ws.items_page(page * SEED_GRID_PAGE, SEED_GRID_PAGE, leave_out=list(seeds))
                root = ws.dataset_root()
                chosen = []
                for row_start in range(0, len(chunk), 8):
                    cols = st.columns(8)
                    for col, (_, item) in zip(cols, chunk.iloc[row_start:row_start + 8].iterrows()):
                        col.image(state.thumbnail_png(str(root / item["path"]), root=str(root)),
                                  width="stretch")
                        if col.checkbox("pick", key=f"seed_pick_{item['id']}", label_visibility="collapsed"):
                            chosen.append(int(item["id"]))
                if st.button(f"Make {len(chosen)} selected image(s) seeds", disabled=not (chosen and target_class)):
                    for item_id in chosen:
                        ws.set_seed(item_id, target_class, "app")
                    for item_id in chosen:
                        st.session_state.pop(f"seed_pick_{item_id}", None)
                    st.toast(f"{len(chosen)} seed(s) of '{state.shown(target_class)}' saved")
                    st.rerun()


if __name__ == "__main__":
    main()
