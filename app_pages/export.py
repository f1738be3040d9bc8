"""Export: CSV / JSON of path, label, source, confidence, step, round, and an ImageFolder zip.

The rows are the label table (`hdl_core.workspace.labels`) the Review page shows and the
CLI writes, so the three never disagree. The page counts from the label arrays and shows
the first `PREVIEW_ROWS` rows; the files are made when a download is clicked (a million
rows of CSV are tens of MB, not something to build on every page run).
"""
import functools
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

import state
from hdl_core.views import gallery as review
from hdl_core.workspace import labels, pipeline


PREVIEW_ROWS = 1_000
METRIC_PX = 140                      # a metric's width: room for "1,000,000"


def main() -> None:
    st.title("Export")
    ws = state.workspace()
    state.sidebar_status(ws)
    with state.user_errors("Export"):
        columns = state.label_columns(ws, None, with_baseline=False)
        if not (columns.label >= 0).any():
            st.info("Nothing is labeled yet: run HDL on the Label page first (seeds alone are "
                    "exported too).")
        counts = review.source_counts_of(columns)
        # a wrapping row: one line where there is room, never a truncated number
        row = st.container(horizontal=True, gap="medium")
        metric = functools.partial(row.metric, width=METRIC_PX)
        metric("Images", f"{len(columns):,}")
        metric("Seeds", f"{int(counts.get('seed', 0)):,}",
                  help="Given before labeling: class folders, a seed CSV or the Data page.")
        metric("By HDL", f"{int(counts.get('hdl', 0) + counts.get('fallback', 0)):,}",
                  help=f"Of them {int(counts.get('fallback', 0)):,} bridged (no labeled neighbour).")
        metric("Corrected", f"{int(counts.get('manual', 0)):,}", help="Changed by hand.")
        metric("Confirmed", f"{int(counts.get('confirmed', 0)):,}", help="Checked by hand.")
        run_accuracy = review.accuracy_of(columns, "run_label")
        now = review.accuracy_of(columns)
        if run_accuracy is not None:
            metric("Accuracy", f"{now[0]:.1%}",
                      f"run alone {run_accuracy[0]:.1%}", delta_color="off", delta_arrow="off",
                      help="Against the ground truth, seeds left out: the labels exported now, "
                           "and the run's own labels (the Label page's final accuracy).")
        unlabeled = int((columns.label < 0).sum())
        if unlabeled:
            st.warning(f"{unlabeled:,} images have no label yet (no run since they were added); "
                       "they are exported with an empty label and left out of the zip.")
        preview = labels.table_rows(ws, columns, np.arange(min(len(columns), PREVIEW_ROWS)))
        st.dataframe(preview[labels.EXPORT_COLUMNS], hide_index=True, width="stretch", height=320)
        if len(columns) > PREVIEW_ROWS:
            st.caption(f"The first {PREVIEW_ROWS:,} of {len(columns):,} rows; the files have them all.")

        name = ws.folder.name
        folder = str(ws.folder)
        c1, c2, c3 = st.columns(3)
        c1.download_button("Download CSV", lambda: pipeline.to_csv_bytes(_export(folder)),
                           f"{name}-labels.csv", mime="text/csv", type="primary",
                           help="Cells a spreadsheet would run as formulas (= @, or + - before "
                                "text) get a leading ', which reading the file back as seeds "
                                "takes off. JSON keeps every value exactly.")
        c2.download_button("Download JSON", lambda: pipeline.to_json_bytes(_export(folder)),
                           f"{name}-labels.json", mime="application/json")
        _imagefolder_zip(ws, name, c3)
        st.caption("Columns: path (relative to the dataset root), label, source (seed / hdl / "
                   "fallback / manual / confirmed), confidence (share of the winning votes; 1 for seeds and "
                   "corrections), step and round (position in the labeling; -1 for seeds and "
                   "corrections).")


def _export(folder: str):
    """Every row to export (`labels.export_frame`), made when a download asks for it."""
    return labels.export_frame(state.workspace_at(folder))


def _imagefolder_zip(ws, name: str, column) -> None:
    """Build the zip on a click (with progress and a report), then offer it for download.

    Built first, not while downloading: a download that fails half way (a file gone since
    the scan, a click during a rerun) would otherwise end without a word.
    """
    if column.button("Prepare ImageFolder zip", help="One folder per class; built here, then "
                     "downloaded. Images that cannot be read now are left out and listed."):
        bar = st.progress(0.0, text="Building the zip…")
        path, skipped = pipeline.write_imagefolder_zip(
            ws, labels.export_frame(ws), progress=lambda done, total: bar.progress(
                done / max(total, 1), text=f"Building the zip… {done}/{total} images"))
        bar.empty()
        st.session_state[state.EXPORT_ZIP] = {"folder": str(ws.folder), "path": str(path),
                                              "skipped": skipped}
    built = st.session_state.get(state.EXPORT_ZIP)
    if not built or built["folder"] != str(ws.folder):
        return
    path = Path(built["path"])
    if not path.is_file():
        st.warning("The zip built earlier is gone; prepare it again.", icon=":material/warning:")
        return
    column.download_button("Download ImageFolder zip", path.read_bytes(),
                           f"{name}-imagefolder.zip", mime="application/zip", type="primary",
                           on_click="ignore")
    if built["skipped"]:
        st.warning(f"{len(built['skipped'])} image(s) could not be read and are not in the zip "
                   "(they are listed in its skipped-files.csv too):", icon=":material/warning:")
        st.dataframe(pd.DataFrame(built["skipped"], columns=["path", "reason"]),
                     hide_index=True, width="stretch")


if __name__ == "__main__":
    main()
