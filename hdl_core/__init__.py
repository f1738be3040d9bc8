"""hdl_core: Hierarchical Dynamic Labeling over embeddings, without any UI.

numpy in, numpy out. The Streamlit pages, the CLI and the tests all use this package.
"""
from .auto_k import KChoice, choose_k
from .estimator import HDLClassifier
from .graph import KnnGraph, build_knn_graph, to_umap_knn
from .hdl import LabelingResult, hdl_label, knn_dv_label

__all__ = [
    "KnnGraph", "build_knn_graph", "to_umap_knn",
    "LabelingResult", "hdl_label", "knn_dv_label",
    "KChoice", "choose_k",
    "HDLClassifier",
]
__version__ = "0.1.0"
