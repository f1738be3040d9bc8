"""Where a pretrained tag's weights come from: the Hugging Face cache, else one quick hub
check and a download; offline, a message naming the file and the ways out."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from ._common import WeightsUnavailable

# How long the single "is the hub reachable?" attempt may take before we give up.
_HUB_PROBE_TIMEOUT_S = 5.0


def _hub_cache_dir(cache_dir: Path | None = None) -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import)."""
    if cache_dir is not None:
        return Path(cache_dir)
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.path.expandvars(os.environ[variable])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "huggingface" / "hub"


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _hub_files(tag_config: dict) -> tuple[str, list[str]]:
    """(repo id, candidate file names, safetensors first) of a tag, as open_clip would fetch."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo_id, filename = os.path.split(tag_config["hf_hub"])
    filename = filename or HF_WEIGHTS_NAME
    candidates = []
    if filename == HF_WEIGHTS_NAME:
        candidates.append(HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        candidates.append(filename[:-4] + ".safetensors")
    candidates.append(filename)
    return repo_id, candidates


def tag_checkpoint(model: str, tag: str, tag_config: dict, cache_dir: Path | None) -> str:
    """Path of a tag's weights: from the local cache, else one quick hub check, then download."""
    if tag_config.get("file"):
        return tag_config["file"]
    if not tag_config.get("hf_hub"):
        return tag   # URL-only tag (none in open_clip 3.x): let open_clip fetch it
    from huggingface_hub import try_to_load_from_cache

    hub_cache = _hub_cache_dir(cache_dir)
    repo_id, candidates = _hub_files(tag_config)
    for filename in candidates:
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=str(hub_cache))
        if isinstance(cached, str) and os.path.isfile(cached):
            return cached

    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    if offline:
        raise _unavailable(model, tag, repo_id, candidates[0], hub_cache, "HF_HUB_OFFLINE is set")
    filename, failure = _probe_hub(repo_id, candidates)
    if filename is None:
        raise _unavailable(model, tag, repo_id, candidates[0], hub_cache, failure)
    from huggingface_hub import hf_hub_download
    return hf_hub_download(repo_id, filename, cache_dir=str(hub_cache), endpoint=_hub_endpoint())


def _probe_hub(repo_id: str, candidates: list[str]) -> tuple[str | None, str]:
    """One quick HEAD per candidate file, no retries, bounded in time.

    Returns (first available file name, "") or (None, why not). huggingface_hub would retry
    a failing download with back-off for about a minute; this answers within seconds.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    endpoint = _hub_endpoint()
    result: dict = {}

    def ask() -> None:
        for filename in candidates:
            try:
                get_hf_file_metadata(hf_hub_url(repo_id, filename, endpoint=endpoint),
                                     timeout=_HUB_PROBE_TIMEOUT_S, endpoint=endpoint)
                result["file"] = filename
                return
            except Exception as exc:   # network errors and HTTP errors alike end the attempt
                status = getattr(getattr(exc, "response", None), "status_code", None)
                result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if status != 404:       # 404: try the next file name; anything else: stop
                    return

    # DNS lookups ignore the HTTP timeout, so bound the whole attempt with a daemon thread.
    thread = threading.Thread(target=ask, daemon=True, name="hdl-hub-probe")
    thread.start()
    thread.join(2 * _HUB_PROBE_TIMEOUT_S)
    if "file" in result:
        return result["file"], ""
    if thread.is_alive():
        return None, f"no answer from {endpoint} within {2 * _HUB_PROBE_TIMEOUT_S:.0f} s"
    return None, f"{endpoint} not reachable ({result.get('error', 'unknown error')})"


def _unavailable(model: str, tag: str, repo_id: str, filename: str, hub_cache: Path,
                 why: str) -> WeightsUnavailable:
    return WeightsUnavailable(_weights_message(model, tag, repo_id, filename, hub_cache, why),
                              model=model, tag=tag, repo_id=repo_id, filename=filename,
                              cache=str(hub_cache), why=why)


def _weights_message(model: str, tag: str, repo_id: str, filename: str, hub_cache: Path,
                     why: str) -> str:
    return (
        f"CLIP weights for {model} / {tag} are not in the local cache ({hub_cache}) and cannot be "
        f"downloaded now: {why}.\n"
        f"Two ways out:\n"
        f"  1. Download them once with internet (into this cache folder, or copy the folder here):\n"
        f"       python -c \"import open_clip; open_clip.create_model_and_transforms("
        f"'{model}', pretrained='{tag}')\"\n"
        f"     (or: hf download {repo_id} {filename}); to embed elsewhere and label here, run\n"
        f"       python -m hdl_core embed IMAGES --out emb.npy --model {model} --pretrained {tag}\n"
        f"     on that machine and pass --embeddings emb.npy --paths emb.paths.txt here.\n"
        f"  2. Pass a checkpoint file you already have: --pretrained /path/to/open_clip_model.safetensors "
        f"(make_encoder('clip', model='{model}', pretrained=PATH))."
    )

