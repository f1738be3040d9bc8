"""Work spread over a Ray cluster: embedding a folder (`embed`) and the kNN graph by IVF
lists (`graph`). Optional: needs ``pip install hdl-studio[scale]`` (Ray Data, faiss).

Ray is imported inside functions; ``import hdl_core`` never needs it.
"""
from .embed import embed_on_ray
from .graph import ivf_graph_on_ray

__all__ = ["embed_on_ray", "ivf_graph_on_ray"]
