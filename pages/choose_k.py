"""Choose k: μ_k, I(k) and P(k) against k, k* marked, the noise rate e, and a stored override."""
import hashlib

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import state
from hdl_core.workspace import pipeline
from hdl_core.auto_k import choose_k

st.title("Choose k")
ws = state.workspace()
state.sidebar_status(ws)
emb = state.need_embedding(ws)


@st.cache_data(show_spinner="Measuring μ_k…", max_entries=32)
def _choice(folder: str, key: str, seeds_digest: str, noise_rate: float, k_max: int):
    ws = state._workspace(folder)
    current = pipeline.require_embedding(ws)
    y, _ = pipeline.seed_vector(ws, current.item_ids)
    pipeline.require_seeds(y, ws.classes())
    return choose_k(current.X, y, k_max=k_max, noise_rate=noise_rate, sample_fraction=None,
                    random_state=0)


def _chart(choice) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(x=choice.ks, y=choice.mu, name="μ_k: a point and its k neighbours share a label",
                    mode="lines+markers")
    fig.add_scatter(x=choice.ks, y=choice.beta, name="I(k): a majority of k+1 votes is right",
                    mode="lines+markers", line={"dash": "dot"})
    fig.add_scatter(x=choice.ks, y=choice.p, name="P(k) = μ_k · I(k)", mode="lines+markers",
                    line={"width": 3})
    best = choice.k_best
    fig.add_vline(x=best, line_dash="dash",
                  annotation_text=f"k* = {best}" + ("" if choice.reliable else " (unreliable)"))
    fig.update_layout(xaxis_title="k (neighbours per point)", yaxis_title="probability",
                      yaxis_range=[0, 1.02], height=420, margin={"t": 30},
                      legend={"orientation": "h", "y": -0.2})
    return fig


with state.user_errors("Choosing k"):
    y, classes = pipeline.seed_vector(ws, emb.item_ids)
    pipeline.require_seeds(y, classes)
    stored = ws.get_setting("k_choice") or {}
    c1, c2 = st.columns(2)
    noise_rate = c1.slider("Noise rate e: the share of seeds you think may be wrong", 0.0, 0.45,
                           float(stored.get("noise_rate", 0.15)), 0.01,
                           help="I(k) is the chance that a majority vote of k+1 neighbours is "
                                "right when each is wrong with probability e (paper, eq. 2).")
    k_max = c2.slider("Largest k to consider (k_max)", 5, 50, int(stored.get("k_max", 20)))
    digest = hashlib.sha1(np.ascontiguousarray(y).tobytes()).hexdigest()
    choice = _choice(str(ws.folder), emb.key, digest, noise_rate, k_max)
    st.plotly_chart(_chart(choice), theme="streamlit", key="k_chart")
    st.caption(f"μ_k measured on {choice.n_centers} labeled points (every seed is a center).")
    if choice.reliable:
        st.success(f"k* = {choice.k}: the k with the highest P(k).")
    else:
        st.warning(f"{choice.reason} The curve above is shown for teaching; HDL will use k = {choice.k}.")

    override = st.toggle("Override k", value=bool(stored.get("override", False)))
    k = st.number_input("k", 1, max(1, len(y) - 1), int(stored.get("k", choice.k)) if override
                        else choice.k, disabled=not override)
    wanted = {"k": int(k if override else choice.k), "override": bool(override),
              "noise_rate": float(noise_rate), "k_max": int(k_max), "reliable": bool(choice.reliable)}
    if wanted != stored:
        ws.set_setting("k_choice", wanted)
    st.write(f"The next run uses **k = {wanted['k']}** "
             f"({'your override' if override else 'k*' if choice.reliable else 'the default'}); "
             "it is stored with the run.")
    st.page_link("pages/label.py", label="Next: label", icon=":material/label:")
