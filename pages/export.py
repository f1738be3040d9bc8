"""Export: CSV / JSON of path, label, source, confidence, step, round, and an ImageFolder zip.

The rows are the label table (`hdl_core.workspace.labels`) the Review page shows and the
CLI writes, so the three never disagree.
"""
import streamlit as st

import state
from hdl_core.workspace import labels, pipeline


def main() -> None:
    st.title("Export")
    ws = state.workspace()
    state.sidebar_status(ws)
    with state.user_errors("Export"):
        frame = labels.export_frame(ws)
        if frame["label"].isna().all():
            st.info("Nothing is labeled yet: run HDL on the Label page first (seeds alone are "
                    "exported too).")
        counts = frame["source"].value_counts()
        c1, c2, c3, c4, c5 = st.columns(5)
        c1.metric("Images", len(frame))
        c2.metric("Seeds", int(counts.get("seed", 0)))
        c3.metric("HDL", int(counts.get("hdl", 0)))
        c4.metric("Bridged", int(counts.get("fallback", 0)))
        c5.metric("Corrected", int(counts.get("manual", 0)))
        unlabeled = int(frame["label"].isna().sum())
        if unlabeled:
            st.warning(f"{unlabeled} images have no label yet (no run since they were added); "
                       "they are exported with an empty label and left out of the zip.")
        st.dataframe(frame, hide_index=True, width="stretch", height=320)

        name = ws.folder.name
        c1, c2, c3 = st.columns(3)
        c1.download_button("Download CSV", pipeline.to_csv_bytes(frame), f"{name}-labels.csv",
                           mime="text/csv", type="primary",
                           help="Cells a spreadsheet would run as formulas (= @, or + - before "
                                "text) get a leading ', which reading the file back as seeds "
                                "takes off. JSON keeps every value exactly.")
        c2.download_button("Download JSON", pipeline.to_json_bytes(frame), f"{name}-labels.json",
                           mime="application/json")
        c3.download_button("Download ImageFolder zip", lambda: pipeline.imagefolder_zip(ws, frame),
                           f"{name}-imagefolder.zip", mime="application/zip",
                           help="One folder per class, built when you click.")
        st.caption("Columns: path (relative to the dataset root), label, source (seed / hdl / "
                   "fallback / manual), confidence (share of the winning votes; 1 for seeds and "
                   "corrections), step and round (position in the labeling; -1 for seeds and "
                   "corrections).")


if __name__ == "__main__":
    main()
