"""Data: open the demo, a folder under the data root, a zip or uploaded files; see seeds and skips; add seeds."""
import hashlib
from pathlib import Path

import pandas as pd
import streamlit as st

import state
from hdl_core import data as images
from hdl_core.workspace import pipeline

SEED_GRID_PAGE = 48
MIN_SEEDS_PER_CLASS = 3


def _open_dataset(folder: Path, label: str, seeds_csv=None) -> None:
    """Scan `folder` with a progress bar, store it in its workspace and make it the open one."""
    bar = st.progress(0.0, text="Checking images…")
    dataset = images.load_folder(folder, seeds_csv=seeds_csv,
                                 progress=lambda done, total: bar.progress(
                                     done / max(total, 1), text=f"Checking images… {done}/{total}"))
    bar.empty()
    target = state.open_folder(pipeline.workspace_for(dataset.root), label)
    summary = pipeline.import_dataset(target, dataset)
    st.session_state[state.IMPORT_SUMMARY] = summary
    st.rerun()


def _upload_folder(name: str, content: bytes) -> Path:
    """A fresh folder under <data root>/uploads for an upload, named after it and its content."""
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(name).stem)[:40] or "upload"
    digest = hashlib.sha1(content).hexdigest()[:8]
    return images.data_root() / "uploads" / f"{stem}-{digest}"


def main() -> None:
    st.title("Data")
    ws = state.workspace()
    state.sidebar_status(ws)
    source = st.radio("Images from", ["Built-in demo", "Folder on the server", "Zip file",
                                      "Upload files"], horizontal=True, key=state.DATA_SOURCE)
    _open_section(source)
    st.divider()
    _workspace_section(ws)


def _open_section(source: str) -> None:
    with state.user_errors("Opening the dataset"):
        if source == "Built-in demo":
            st.write("1797 handwritten digits (scikit-learn), 32×32 PNGs, three seeds per class; "
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
            folders = images.dataset_folders(root)
            choice = st.selectbox("Folder", folders, index=None, placeholder="choose a folder…")
            typed = st.text_input("…or a path under the data root", placeholder="photos/2024")
            seeds_csv = st.file_uploader("Seed CSV (optional): path,label", type=["csv"], key="seed_csv")
            target = typed.strip() or choice
            if st.button("Open folder", type="primary", disabled=not target):
                folder = images.resolve_in_data_root(target)
                _open_dataset(folder, f"Folder: {target}",
                              seeds_csv.getvalue() if seeds_csv is not None else None)

        elif source == "Zip file":
            upload = st.file_uploader("A .zip of images (class folders for seeds)", type=["zip"])
            seeds_csv = st.file_uploader("Seed CSV (optional): path,label", type=["csv"], key="seed_csv_zip")
            if st.button("Open zip", type="primary", disabled=upload is None):
                content = upload.getvalue()
                folder = images.extract_zip(content, _upload_folder(upload.name, content))
                _open_dataset(folder, f"Zip: {upload.name}",
                              seeds_csv.getvalue() if seeds_csv is not None else None)

        else:
            mode = st.radio("Upload", ["A folder", "Files"], horizontal=True)
            uploads = st.file_uploader(
                "Images (a folder keeps its class sub-folders as seeds)", key=f"uploads_{mode}",
                accept_multiple_files="directory" if mode == "A folder" else True)
            if st.button("Open uploads", type="primary", disabled=not uploads):
                files = [(f.name, f.getvalue()) for f in uploads]
                joined = hashlib.sha1(b"".join(name.encode() for name, _ in files)).hexdigest()
                folder = images.save_uploads(files, _upload_folder(files[0][0].split("/")[0], joined.encode()))
                _open_dataset(folder, f"Upload: {folder.name}")

def _workspace_section(ws) -> None:
    st.subheader(f"Open: {state.workspace_label(ws)}")
    with state.user_errors("Reading the workspace"):
        summary = st.session_state.get(state.IMPORT_SUMMARY)
        items = ws.ok_items()
        everything = ws.items()
        seeds = ws.seeds()
        classes = ws.classes()
        counts = pd.Series(list(seeds.values()), dtype=object).value_counts()
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Images", len(items))
        c2.metric("Seeds", len(seeds))
        c3.metric("Classes", len(classes))
        c4.metric("Skipped", int((everything["status"] == "skipped").sum()))
        if classes:
            table = pd.DataFrame({"class": classes, "seeds": [int(counts.get(c, 0)) for c in classes]})
            st.dataframe(table, hide_index=True, width="content")
        skipped = everything[everything["status"] == "skipped"]
        if len(skipped):
            with st.expander(f"Skipped files ({len(skipped)}), each with its reason"):
                st.dataframe(skipped[["path", "skip_reason"]].rename(columns={"skip_reason": "reason"}),
                             hide_index=True, width="stretch")
        if summary and summary.duplicates:
            with st.expander(f"Identical files ({len(summary.duplicates)} groups), kept and labeled each"):
                st.write(pd.DataFrame({"files": [", ".join(g) for g in summary.duplicates]}))

        few = [c for c in classes if counts.get(c, 0) < MIN_SEEDS_PER_CLASS]
        if items.empty:
            st.warning("No readable image in this dataset; see the skipped files above.")
        else:
            if not seeds:
                st.warning("No seeds yet: label a few images per class below (or use class folders or a seed CSV).")
            elif len(classes) < 2 or few:
                st.info(f"Few seeds for {', '.join(few) or 'a second class'}: HDL needs at least two classes, "
                        f"and {MIN_SEEDS_PER_CLASS}+ seeds per class make it more reliable.")
            with st.expander("Label seeds here", expanded=not seeds or len(classes) < 2):
                left, right = st.columns([2, 1])
                new_class = right.text_input("New class", placeholder="type a class name")
                options = classes + ([new_class.strip()] if new_class.strip() and new_class.strip() not in classes else [])
                target_class = left.selectbox("Class for the selected images", options, index=None,
                                              placeholder="choose or type a class")
                unlabeled = items[~items["id"].isin(list(seeds))].reset_index(drop=True)
                pages = max(1, -(-len(unlabeled) // SEED_GRID_PAGE))
                page = st.number_input(f"Page (of {pages})", 1, pages, 1, key=state.SEED_PAGE) - 1
                chunk = unlabeled.iloc[page * SEED_GRID_PAGE:(page + 1) * SEED_GRID_PAGE]
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
                    st.toast(f"{len(chosen)} seed(s) of '{target_class}' saved")
                    st.rerun()


if __name__ == "__main__":
    main()
