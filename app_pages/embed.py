"""Embed: CLIP (a pretrained tag or a local checkpoint), the pixels baseline, or a precomputed file.

Encoding runs as a background job of the server (`state.start_embedding`): the page returns
at once and shows its progress (images/s, time left) from any page's sidebar too; leaving
the page does not stop it.
"""
import tempfile
from pathlib import Path

import streamlit as st

import state
from hdl_core import data as images
from hdl_core.workspace import pipeline
from hdl_core.embed import (DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, EmbeddingError,
                             WeightsUnavailable, load_precomputed)

COMMON_MODELS = ["ViT-B-32", "ViT-B-16", "ViT-L-14", "RN50", "convnext_base_w"]


@st.cache_data(show_spinner=False)
def _device() -> str:
    import torch
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps (Apple GPU)"
    return "cpu"


@st.cache_data(show_spinner=False)
def _tags(model: str) -> list[str]:
    import open_clip
    return list(open_clip.list_pretrained_tags_by_model(model))


def weights_message(error: WeightsUnavailable) -> str:
    """Why CLIP cannot start, and the ways out in this page's own terms."""
    model = state.escape_markdown(error.model or "this model")
    tag = state.escape_markdown(error.tag or "these weights")
    why = state.escape_markdown(error.why) if error.why else "no internet connection"
    return (f"The CLIP weights {model} / {tag} are not on this server, and they cannot be "
            f"downloaded now ({why}). Three ways out:\n\n"
            f"1. Under **Weights**, choose **Local checkpoint file** and give a weights file you "
            f"already have (under the data root).\n"
            f"2. Embed on a machine with internet (`hdl-studio embed`) and load the result here "
            f"with **Precomputed file**.\n"
            f"3. Or embed with **Pixels** now: no weights needed, but far weaker than CLIP on photos.")


def progress_text(done: int, total: int, seconds: float) -> str:
    """``"1,200/5,000 images · 85 images/s · 45 s left"`` (no rate before the first image)."""
    rate = done / seconds if seconds > 0 else 0.0
    if rate <= 0:
        return f"{done:,}/{total:,} images · starting…"
    return f"{done:,}/{total:,} images · {rate:,.0f} images/s · {(total - done) / rate:,.0f} s left"


def _job_panel(ws) -> None:
    """The embedding job of this workspace while it runs (a fragment that polls), and how the
    last one ended, once."""
    job = state.job(ws, "embedding")
    if job is not None and job.running:
        st.fragment(_job_progress, run_every=1.0)(str(ws.folder))
        return
    done = state.finished_job(ws, "embedding")
    if done is None:
        return
    if isinstance(done.error, WeightsUnavailable):
        st.error(weights_message(done.error), icon=":material/warning:")
    elif done.error is not None:
        st.error(f"Embedding failed: {state.escape_markdown(done.error)}", icon=":material/warning:")
    else:
        stats = done.result.stats
        st.write(f"Done in {stats.get('seconds', done.seconds):.1f} s: {stats.get('hits', 0)} "
                 f"images from the cache, {stats.get('encoded', stats.get('misses', 0))} encoded.")


def _job_progress(folder: str) -> None:
    job = state.BOARD.get(folder, "embedding")
    if job is None or not job.running:
        st.rerun()
    st.progress(job.fraction or 0.0, text=progress_text(job.done, job.total, job.seconds)
                if job.total else "Starting…")
    st.caption("Embedding in the background: you can leave this page; the sidebar shows how far "
               "it got on every page.")


def main() -> None:
    st.title("Embed")
    ws = state.workspace()
    state.sidebar_status(ws)
    with state.user_errors("Reading the embeddings"):   # damaged: say so, still offer to embed
        current = state.embedding(ws)
        n_items = ws.count_items()["ok"]
        if current is not None:
            st.success(f"{n_items:,} images embedded with **{state.shown(current.label)}** "
                       f"({current.X.shape[1]} dimensions).")
        else:
            st.info(f"{n_items:,} images, not embedded yet (or the images changed since).")
        stopped = pipeline.stopped_embedding(ws)
        if stopped:
            st.warning(f"The last embedding ({state.shown(stopped['label'])}) stopped after "
                       f"{stopped['kept']:,} "
                       f"of {stopped['total']:,} images. Those are kept: embedding again with the "
                       "same encoder starts where it stopped.", icon=":material/pause_circle:")
    with state.user_errors("Embedding"):
        is_demo = ws.dataset_root() is not None and ws.dataset_root().name == images.DEMO_FOLDER
        kinds = ["CLIP (open_clip)", "Pixels (baseline, not CLIP)", "Precomputed file"]
        kind = st.radio("Encoder", kinds, index=1 if is_demo else 0, horizontal=True,
                        help="The demo defaults to pixels so it runs with nothing to download.")
        running = state.job(ws, "embedding")
        busy = running is not None and running.running
        st.caption(f"Device in use: **{_device()}**")

        if kind == kinds[0]:
            c1, c2 = st.columns(2)
            model = c1.selectbox("Model", COMMON_MODELS, index=COMMON_MODELS.index(DEFAULT_CLIP_MODEL),
                                 accept_new_options=True)
            tags = _tags(model)
            weights = c2.radio("Weights", ["Pretrained tag", "Local checkpoint file"], horizontal=True)
            if weights == "Pretrained tag":
                default = tags.index(DEFAULT_CLIP_PRETRAINED) if DEFAULT_CLIP_PRETRAINED in tags else 0
                pretrained = c2.selectbox("Pretrained tag", tags, index=default if tags else None)
            else:
                typed = c2.text_input("Checkpoint path under the data root",
                                      placeholder="checkpoints/open_clip_model.safetensors")
                pretrained = None
                if typed.strip():
                    checkpoint = images.resolve_in_data_root(typed.strip())
                    if checkpoint.is_file():
                        pretrained = str(checkpoint)
                    else:
                        st.error(f"{typed.strip()!r} is not a file under the data root; type the "
                                 "checkpoint's path there, e.g. checkpoints/model.safetensors",
                                 icon=":material/warning:")
            batch = st.select_slider("Batch size", [16, 32, 64, 128, 256], value=64)
            if st.button("Embed with CLIP", type="primary", disabled=not pretrained or busy):
                state.start_embedding(ws, pipeline.EncoderSpec.of(
                    "clip", model=model, pretrained=pretrained, batch_size=batch))
                st.rerun()

        elif kind == kinds[1]:
            st.caption("Each image shrunk to 16×16 RGB pixels: no weights, runs anywhere, but far "
                       "weaker than CLIP on photos. Good for the digits demo and for trying the app.")
            if st.button("Embed with pixels", type="primary", disabled=busy):
                state.start_embedding(ws, pipeline.EncoderSpec.of("pixels"))
                st.rerun()

        else:
            st.caption("Embeddings made elsewhere (`python -m hdl_core embed IMAGES --out emb.npy` on a "
                       "GPU machine): a .npy with its .paths.txt, or a .parquet with a `path` column. "
                       "Paths are relative to the dataset root.")
            upload = st.file_uploader("Embeddings", type=["npy", "parquet"])
            paths_upload = st.file_uploader("Path list (.txt, one path per line; for .npy)", type=["txt"])
            if st.button("Use these embeddings", type="primary", disabled=upload is None):
                if Path(upload.name).suffix.lower() == ".npy" and paths_upload is None:
                    # the library would ask for it in its own and the command line's words
                    raise EmbeddingError(f"{upload.name} needs its path list: upload the .txt "
                                         "with one image path per line, in row order, under "
                                         "Path list, then use these embeddings again")
                with tempfile.TemporaryDirectory() as tmp:
                    target = Path(tmp) / Path(upload.name).name
                    target.write_bytes(upload.getvalue())
                    paths_file = None
                    if paths_upload is not None:
                        paths_file = Path(tmp) / Path(paths_upload.name).name
                        paths_file.write_bytes(paths_upload.getvalue())
                    paths, X = load_precomputed(target, paths_file)
                emb = pipeline.import_embeddings(ws, paths, X, label=f"precomputed ({upload.name})")
                st.session_state[state.EMBED_STATS] = emb.stats
                st.rerun()

        stats = st.session_state.pop(state.EMBED_STATS, None)
        if stats:
            st.write(f"Done in {stats.get('seconds', 0):.1f} s: {stats.get('hits', 0)} images from the "
                     f"cache, {stats.get('encoded', stats.get('misses', 0))} encoded.")
        _job_panel(ws)
    with state.user_errors("Reading the embeddings"):
        if state.embedding(ws) is not None:
            st.page_link("app_pages/choose_k.py", label="Next: choose k", icon=":material/insights:")


if __name__ == "__main__":
    main()
