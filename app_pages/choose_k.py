"""Choose k: μ_k, I(k) and P(k) against k, the k the next run uses, and the noise rate e.

What is stored is the user's intent (`hdl_core.auto_k.KIntent`): "auto" or a number, with
e and k_max. An "auto" k is computed from the seeds when needed, so it follows corrections.
"""
import plotly.graph_objects as go
import streamlit as st

import state
from hdl_core.auto_k import KIntent
from hdl_core.variants import DESCRIPTIONS
from hdl_core.workspace import pipeline


def chart(choice, k_used: int) -> go.Figure:
    """μ_k, I(k) and P(k) against k, with k* and the k the next run uses marked."""
    fig = go.Figure()
    fig.add_scatter(x=choice.ks, y=choice.mu, name="μ_k: a point and its k neighbours share a label",
                    mode="lines+markers")
    fig.add_scatter(x=choice.ks, y=choice.beta, name="I(k): a majority of k+1 votes is right",
                    mode="lines+markers", line={"dash": "dot"})
    fig.add_scatter(x=choice.ks, y=choice.p, name="P(k) = μ_k · I(k)", mode="lines+markers",
                    line={"width": 3})
    best = choice.k_best
    if best != k_used:
        fig.add_vline(x=best, line_dash="dot", annotation_text=f"k* = {best} (unreliable)",
                      annotation_position="top left")
    fig.add_vline(x=k_used, line_dash="dash", line_width=2,
                  annotation_text=f"used: k = {k_used}", annotation_position="top right")
    fig.update_layout(xaxis_title="k (neighbours per point)", yaxis_title="probability",
                      yaxis_range=[0, 1.02], height=420, margin={"t": 30},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def main() -> None:
    st.title("Choose k")
    ws = state.workspace()
    state.sidebar_status(ws)
    with state.user_errors("Choosing k"):
        emb = state.need_embedding(ws)
        y, classes = pipeline.seed_vector(ws, emb.item_ids)
        pipeline.require_seeds(y, classes)
        stored = state.k_intent(ws)
        c1, c2 = st.columns(2)
        noise_rate = c1.slider("Noise rate e: the share of seeds you think may be wrong", 0.0, 0.45,
                               float(stored.noise_rate), 0.01,
                               help="I(k) is the chance that a majority vote of k+1 neighbours is "
                                    "right when each is wrong with probability e (paper, eq. 2).")
        k_max = c2.slider("Largest k to consider (k_max)", 5, 50, int(stored.k_max))
        auto = KIntent.parse("auto", noise_rate=noise_rate, k_max=k_max)
        digest = state.seeds_digest(y)
        variant = pipeline.labeling_variant(ws)
        _, choice = state.k_choice(str(ws.folder), emb.key, digest, auto, "paper")
        k_auto, _ = state.k_choice(str(ws.folder), emb.key, digest, auto, variant)

        override = st.toggle("Override k", value=not stored.auto)
        k = st.number_input("k", 1, max(1, len(y) - 1),
                            int(stored.k) if override and not stored.auto else k_auto,
                            disabled=not override)
        wanted = KIntent.parse(int(k) if override else "auto", noise_rate=noise_rate, k_max=k_max)
        if wanted != stored:
            pipeline.set_k_intent(ws, wanted)
        k_used = int(k) if override else k_auto

        st.plotly_chart(chart(choice, k_used), theme="streamlit", key="k_chart")
        st.caption(f"μ_k measured on {choice.n_centers} labeled points (every seed is a center). "
                   "Why I(k) zig-zags: eq. (2) counts k + 1 votes and asks for a strict majority "
                   "of right ones. At odd k the number of votes is even, a tie is possible and "
                   "counts as a failed vote, so I(k) dips at odd k and recovers at the next even k.")
        if variant != "paper":
            which = "the default; " if variant == "reach" else ""
            st.info(f"The labeling is {DESCRIPTIONS[variant]} ({which}the Label page switches "
                    f"it): its automatic k is "
                    f"{k_auto} (ten, fewer when classes are small), because the flood that P(k) "
                    "protects the paper's variant from by choosing a small k does not happen "
                    "there. The curve shows what P(k) would choose for the paper's variant.")
        elif choice.reliable:
            st.success(f"k* = {choice.k}: the k with the highest P(k).")
        else:
            st.warning(f"{choice.reason} The curve above is shown for teaching; an automatic k "
                       f"is {choice.k}.")
        how = ("your override" if override else
               "the labeling's own k" if variant != "paper" else
               "k*, chosen again from the seeds at each run"
               if choice.reliable else "the default, until the seeds allow a reliable k*")
        st.write(f"The next run uses **k = {k_used}** ({how}); it is stored with the run.")
        st.page_link("app_pages/label.py", label="Next: label", icon=":material/label:")


if __name__ == "__main__":
    main()
