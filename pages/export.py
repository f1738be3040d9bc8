"""Export: CSV / JSON of path, label, source, confidence, step, round, and an ImageFolder zip.

The rows are the label table (`hdl_core.workspace.labels`) the Review page shows and the
CLI writes, so the three never disagree.
"""
import streamlit as st

import state
from hdl_core.views import gallery as review
from hdl_core.workspace import labels, pipeline


def main() -> None:
    st.title("Export")
    ws = state.workspace()
    state.sidebar_status(ws)
    with state.user_errors("Export"):
        table = labels.label_table(ws)
        frame = table[labels.EXPORT_COLUMNS]
        if frame["label"].isna().all():
            st.info("Nothing is labeled yet: run HDL on the Label page first (seeds alone are "
                    "exported too).")
        counts = frame["source"].value_counts()
        c1, c2, c3, c4, c5, c6 = st.columns(6)
        c1.metric("Images", f"{len(frame):,}")
        c2.metric("Seeds", f"{int(counts.get('seed', 0)):,}",
                  help="Given before labeling: class folders, a seed CSV or the Data page.")
        c3.metric("By HDL", f"{int(counts.get('hdl', 0) + counts.get('fallback', 0)):,}",
                  help=f"Of them {int(counts.get('fallback', 0)):,} bridged (no labeled neighbour).")
        c4.metric("Corrected", f"{int(counts.get('manual', 0)):,}", help="Changed by hand.")
        c5.metric("Confirmed", f"{int(counts.get('confirmed', 0)):,}", help="Checked by hand.")
        run_accuracy = review.accuracy(table, "run_label")
        now = review.accuracy(table)
        if run_accuracy is not None:
            c6.metric("Accuracy", f"{now[0]:.1%}",
                      f"run alone {run_accuracy[0]:.1%}", delta_color="off", delta_arrow="off",
                      help="Against the ground truth, seeds left out: the labels exported now, "
                           "and the run's own labels (the Label page's final accuracy).")
        unlabeled = int(frame["label"].isna().sum())
        if unlabeled:
            st.warning(f"{unlabeled} images have no label yet (no run since they were added); "
                       "they are exported with an empty label and left out of the zip.")
        st.dataframe(frame, hide_index=True, width="stretch", height=320)

        name = ws.folder.name
        c1, c2, c3 = st.columns(3)
        c1.download_button("Download CSV", pipeline.to_csv_bytes(frame), f"{name}-labels.csv",
                           mime="text/csv", type="primary",
                           help="Cells starting with = + - @ are prefixed with ' so spreadsheets "
                                "do not run them as formulas.")
        c2.download_button("Download JSON", pipeline.to_json_bytes(frame), f"{name}-labels.json",
                           mime="application/json")
        c3.download_button("Download ImageFolder zip", lambda: pipeline.imagefolder_zip(ws, frame),
                           f"{name}-imagefolder.zip", mime="application/zip",
                           help="One folder per class, built when you click.")
        st.caption("Columns: path (relative to the dataset root), label, source (seed / hdl / "
                   "fallback / manual / confirmed), confidence (share of the winning votes; 1 for seeds and "
                   "corrections), step and round (position in the labeling; -1 for seeds and "
                   "corrections).")


if __name__ == "__main__":
    main()
