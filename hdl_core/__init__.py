"""hdl_core: Hierarchical Dynamic Labeling over embeddings, without any UI.

The modules at this level are numpy in, numpy out (the paper's algorithm and what is
computed from it): `graph`, `hdl` (the paper's variant), `reach` (the default variant),
`balanced` (class-balanced HDL), `variants` (the three by name), `diffusion`, `flood`,
`auto_k`, `estimator`, `explain`, `suggest`. The
sub-packages touch the outside world or serve the app: `data` (files in), `embed`
(images to vectors), `workspace` (the store, array files, the pipeline, the label table),
`views` (what the pages show, computed). The Streamlit pages, the CLI and the tests all use
this package.
"""
from .auto_k import KChoice, choose_k
from .balanced import balanced_label
from .flood import FloodReport, flood_report
from .graph import KnnGraph, build_knn_graph, to_umap_knn
from .hdl import LabelingResult, hdl_label, knn_dv_label
from .reach import reach_label
from .suggest import ReviewQueue, review_queue, review_queue_with_reasons

__all__ = [
    "KnnGraph", "build_knn_graph", "to_umap_knn",
    "LabelingResult", "hdl_label", "reach_label", "balanced_label", "knn_dv_label",
    "KChoice", "choose_k",
    "HDLClassifier",
    "FloodReport", "flood_report",
    "review_queue", "review_queue_with_reasons", "ReviewQueue",
]
__version__ = "0.1.0"


def __getattr__(name):
    # HDLClassifier needs scikit-learn, which takes about a second to import: only load it
    # when it is asked for, so the app and the CLI start without it.
    if name == "HDLClassifier":
        from .estimator import HDLClassifier
        return HDLClassifier
    raise AttributeError(f"module 'hdl_core' has no attribute {name!r}")
