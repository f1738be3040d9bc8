"""Command line: the dashboard, and label, embed and suggest without the browser.

``hdl-studio`` (installed by ``pip install .``) and ``python -m hdl_core`` are the same:

    hdl-studio app [--port 8501]                                 (the dashboard)
    python -m hdl_core label IMAGES --out labels.csv [--seeds seeds.csv] [--encoder clip|pixels] ...
    python -m hdl_core embed IMAGES --out emb.npy             (writes emb.paths.txt beside it)
    python -m hdl_core label IMAGES --embeddings emb.npy --paths emb.paths.txt --out labels.csv
    python -m hdl_core suggest IMAGES [--n 10]

At scale, without the image folder after embedding (the images may sit on a cluster):

    python -m hdl_core embed IMAGES --out DIR [--engine ray] ...   (part-*.parquet + _meta.json)
    python -m hdl_core graph DIR --k 20 --out GRAPHDIR [--method exact|approx|ivf|ray]
    python -m hdl_core label --embeddings DIR [--graph GRAPHDIR] --seeds seeds.csv --out labels.parquet

IMAGES is a folder or a .zip. Progress and the skip summary go to stderr; bad input ends
with exit status 2 and one line saying what is wrong, never a traceback.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from .config import (DEFAULT_BATCH_SIZE, DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED,
                     DEFAULT_NOISE_RATE, DEFAULT_VARIANT, GRAPH_K, VARIANTS, BRIDGES,
                     DEFAULT_BRIDGE)

GRAPH_K_DEFAULT = GRAPH_K

EXIT_BAD_INPUT = 2


def printable(text) -> str:
    """`text` with every character a terminal would act on shown as an escape instead.

    File and class names are whatever the file system allows: an ESC sequence in one could
    recolour or retitle the terminal, a newline split a list in two, a right-to-left
    override reverse what follows. Control, format and separator characters (and the
    undecodable bytes of a name) become ``\\x1b``, ``\\n``, ``\\u202e``, ``\\udcff``.

    >>> printable("a\\x1b[31mred\\nb.png")
    'a\\\\x1b[31mred\\\\nb.png'
    """
    return "".join(character if character.isprintable()
                   else character.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for character in str(text))


def _say(text: str = "", *, file=None) -> None:
    """Print one line of output (stdout unless `file`), control characters escaped."""
    print(printable(text), file=sys.stdout if file is None else file)


_ZIP_FOLDER = "images"              # where `IMAGES` given as a .zip is extracted
_SETTING_EXTRACTED = "cli_extracted_zip"


# the first label or graph on an embeddings folder (`embed.map_embeddings_dir`)
COPYING_VECTORS = ("copying the vectors once to the folder's _vectors-*.npy, which every later "
                   "run memory-maps")


class _Progress:
    """Writes `label done/total` on one stderr line, at most ~20 times per task."""

    def __init__(self, label: str, quiet: bool = False):
        self.label, self.quiet, self.last = label, quiet, -1

    def __call__(self, done: int, total: int) -> None:
        if self.quiet or total <= 0:
            return
        tick = done * 20 // total
        if tick != self.last or done == total:
            self.last = tick
            tty = sys.stderr.isatty()
            end = "\n" if done >= total or not tty else ""
            start = "\r" if tty else ""
            print(f"{start}{printable(self.label)}: {done}/{total}", end=end,
                  file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hdl-studio",
        description="Label an image folder from a few seeds with Hierarchical Dynamic Labeling.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def dataset_options(sub, images_optional=False):
        if images_optional:
            sub.add_argument("images", metavar="IMAGES", nargs="?", default=None,
                             help="a folder of images or a .zip; leave out to label from "
                                  "--embeddings DIR (and --graph GRAPHDIR) alone")
        else:
            sub.add_argument("images", metavar="IMAGES", help="a folder of images or a .zip")
        sub.add_argument("--seeds", metavar="CSV", help="path,label CSV of seeds (paths relative "
                         "to the dataset root); applied over class-folder seeds")
        sub.add_argument("--workspace", metavar="DIR", help="workspace folder (store, caches); "
                         "default: one per dataset under HDL_WORKSPACE_ROOT or ./workspaces")
        sub.add_argument("--quiet", action="store_true", help="no progress on stderr")

    def encoder_options(sub):
        sub.add_argument("--encoder", choices=["clip", "pixels"], default="clip",
                         help="clip (open_clip) or pixels (weight-free baseline); default clip")
        sub.add_argument("--model", default=DEFAULT_CLIP_MODEL, help="open_clip model name")
        sub.add_argument("--pretrained", default=DEFAULT_CLIP_PRETRAINED,
                         help="pretrained tag, or a local checkpoint file")
        sub.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
        sub.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)

    app = commands.add_parser("app", help="start the dashboard (Streamlit) on the built-in demo")
    app.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    app.add_argument("--address", default=None,
                     help="address to listen on (default: Streamlit's, all interfaces)")

    label = commands.add_parser("label", help="label every image; write path,label,source,"
                                "confidence,step,round")
    dataset_options(label, images_optional=True)
    encoder_options(label)
    label.add_argument("--out", required=True, metavar="FILE", help="output file")
    label.add_argument("--format", choices=["csv", "json", "parquet"], default=None,
                       help="output format; default from --out's extension, else csv")
    label.add_argument("--k", default="auto", help="neighbours per point: auto or a number")
    label.add_argument("--variant", choices=list(VARIANTS), default=DEFAULT_VARIANT,
                       help="reach: reach-ordered HDL, labeling first the images one "
                            "class's seeds reach almost alone (default); balanced: "
                            "class-balanced HDL, every class growing each round; paper: the "
                            "paper's Algorithm 1")
    label.add_argument("--bridge", choices=list(BRIDGES), default=DEFAULT_BRIDGE,
                       help="how a bridge (no unlabeled image has a labeled neighbour) finds "
                            "the nearest unlabeled-labeled pair: exact compares every pair; "
                            "approx searches faiss k-means lists and re-checks exactly; auto "
                            "(default) is approx only for large inputs")
    label.add_argument("--noise-rate", type=float, default=DEFAULT_NOISE_RATE,
                       help=f"assumed seed label noise e for choosing k (default {DEFAULT_NOISE_RATE})")
    label.add_argument("--embeddings", metavar="NPY", help="precomputed embeddings (.npy, "
                       ".parquet, or a folder written by embed --out DIR) instead of encoding")
    label.add_argument("--graph", metavar="GRAPHDIR", help="a kNN graph folder written by "
                       "`graph` for --embeddings DIR (labeling without IMAGES)")
    label.add_argument("--no-baseline", action="store_true",
                       help="skip the kNN-DV baseline run beside HDL")
    label.add_argument("--paths", metavar="TXT", help="path list for --embeddings .npy "
                       "(default <stem>.paths.txt)")

    embed = commands.add_parser("embed", help="write embeddings (.npy + .paths.txt, .parquet, "
                                "or a folder of Parquet parts)")
    dataset_options(embed)
    encoder_options(embed)
    embed.add_argument("--out", required=True, metavar="FILE_OR_DIR",
                       help="emb.npy or emb.parquet, or a folder: part-*.parquet + _meta.json")
    embed.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local (this process, cached per file) or ray (Ray Data over a "
                            "cluster; --out must be a folder); default local")
    embed.add_argument("--ray-address", metavar="ADDR", default=None,
                       help="Ray cluster to join (default: start one on this machine)")
    embed.add_argument("--actors", type=int, default=None,
                       help="encoder actors (default: one per GPU share, else CPUs - 1)")
    embed.add_argument("--gpus-per-actor", type=float, default=0.0,
                       help="GPUs each encoder actor claims (default 0: CPUs only)")

    graph = commands.add_parser("graph", help="build the kNN graph of an embeddings folder: "
                                "indices.npy, distances.npy, _meta.json")
    graph.add_argument("embeddings", metavar="DIR", help="a folder written by embed --out DIR")
    graph.add_argument("--k", type=int, default=GRAPH_K_DEFAULT,
                       help=f"neighbours per point (default {GRAPH_K_DEFAULT}, what labeling "
                            "and choosing k need)")
    graph.add_argument("--out", required=True, metavar="GRAPHDIR", help="output folder")
    graph.add_argument("--method", choices=["auto", "exact", "approx", "ivf", "ray"],
                       default="auto", help="exact, approx (pynndescent), ivf (faiss), ray (IVF "
                       "lists on a Ray cluster); default auto")
    graph.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (exact search)")
    graph.add_argument("--ray-address", metavar="ADDR", default=None,
                       help="Ray cluster for --method ray")
    graph.add_argument("--quiet", action="store_true", help="no progress on stderr")

    suggest = commands.add_parser("suggest", help="which images to label by hand next, and "
                                  "which seeds look wrong")
    dataset_options(suggest)
    encoder_options(suggest)
    suggest.add_argument("--n", type=int, default=10, help="how many suggestions (default 10)")
    suggest.add_argument("--k", default="auto", help="k when a new run is needed")
    suggest.add_argument("--leave-one-out", action="store_true",
                         help="check each seed by re-labeling without it (one HDL run per seed): "
                              "also finds wrong seeds whose neighbours copied their label")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from .embed import EmbeddingError, WeightsUnavailable
    from .workspace import StoreError
    try:
        return {"app": _app, "label": _label, "embed": _embed, "graph": _graph,
                "suggest": _suggest}[args.command](args)
    except (ValueError, EmbeddingError, WeightsUnavailable, StoreError, OSError) as error:
        # the system's own refusals in words; the project's errors say what they mean
        system = isinstance(error, OSError) and type(error).__module__ == "builtins"
        message = " ".join((_os_error(error) if system else str(error)).split())
        _say(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _say("interrupted", file=sys.stderr)
        return 130


def _os_error(error: OSError) -> str:
    """An operating system's refusal as one line: the file, what went wrong, what to do
    (not "[Errno 13] Permission denied: ...")."""
    what = (error.strerror or str(error)).lower()
    where = f"{error.filename}: " if error.filename else ""
    advice = {errno.EACCES: "check its permissions or choose another place",
              errno.EPERM: "check its permissions or choose another place",
              errno.EROFS: "that file system is read-only; choose another place",
              errno.ENOSPC: "free some space or choose another disk",
              errno.EEXIST: "a file of that name is in the way",
              errno.ENOTDIR: "part of that path is a file, not a folder"}.get(error.errno)
    return f"{where}{what}" + (f"; {advice}" if advice else "")


# --------------------------------------------------------------------------- commands

def _app(args) -> int:
    """Run ``streamlit run app.py`` from the app's folder (its .streamlit/config.toml applies)."""
    import subprocess
    from .config import app_folder
    folder = app_folder()
    if folder is None:
        raise ValueError("the dashboard's files (app.py, state.py, app_pages/) are not installed "
                         "here; run it from a checkout of hdl-studio (make run)")
    command = [sys.executable, "-m", "streamlit", "run", str(folder / "app.py"),
               "--server.port", str(args.port)]
    if args.address:
        command += ["--server.address", args.address]
    return subprocess.call(command, cwd=folder)


def _open(args):
    """Scan IMAGES (extracting a zip into the workspace) and store it; returns the workspace."""
    from . import data
    from .workspace import Workspace, pipeline

    source = Path(args.images).expanduser()
    if not source.exists():
        raise ValueError(f"{args.images}: no such file or folder")
    folder = Path(args.workspace).expanduser() if args.workspace else pipeline.workspace_for(source)
    ws = Workspace(folder)
    if source.is_dir():
        root = source.resolve()
    elif source.suffix.lower() == ".zip" or source.is_file():
        root = _extract_zip(source, ws)
    else:
        raise ValueError(f"{args.images}: neither a folder nor a .zip")
    seeds = None
    if args.seeds:
        # An absolute path: error messages name the file, and a CSV kept inside the
        # image folder is not scanned (and reported) as a non-image.
        seeds = Path(args.seeds).expanduser().resolve()
        if not seeds.is_file():
            raise ValueError(f"--seeds {args.seeds}: no such file")
    dataset = data.load_folder(root, root=root, seeds_csv=seeds,
                                 progress=_Progress("checking images", args.quiet))
    summary = pipeline.import_dataset(ws, dataset)
    _report_skipped(summary, args)
    if summary.items == 0:
        raise ValueError(f"{args.images}: no readable image found (see the skipped files above)")
    return ws, summary


def _extract_zip(source: Path, ws) -> Path:
    """Extract a zip into ``<workspace>/images``, first removing what an earlier run extracted.

    Without the removal, images deleted from an updated zip would linger and be labeled
    again. Only a folder this command extracted before (recorded in the workspace) is removed.
    """
    import shutil
    from . import data

    dest = ws.folder / _ZIP_FOLDER
    if ws.get_setting(_SETTING_EXTRACTED) and dest.is_dir():
        shutil.rmtree(dest)
    ws.set_setting(_SETTING_EXTRACTED, str(source.resolve()))
    return data.extract_zip(source, dest)


def _report_skipped(summary, args) -> None:
    skipped = summary.skipped
    if skipped:
        _say(f"skipped {len(skipped)} file(s):", file=sys.stderr)
        for path, reason in skipped:
            _say(f"  {path}: {reason}", file=sys.stderr)
    if summary.duplicates:
        _say(f"{len(summary.duplicates)} group(s) of identical files "
              f"(kept, labeled independently)", file=sys.stderr)


def _write_skipped(summary, out: Path) -> None:
    """List skipped files in ``<stem>.skipped.csv`` beside `out`; remove a stale one when none."""
    import pandas as pd
    target = out.with_name(out.stem + ".skipped.csv")
    if not summary.skipped:
        target.unlink(missing_ok=True)      # left by an earlier run; no longer true
        return
    frame = pd.DataFrame(summary.skipped, columns=["path", "reason"])
    from .workspace.pipeline import to_csv_bytes
    target.write_bytes(to_csv_bytes(frame))
    _say(f"skipped files listed in {target}", file=sys.stderr)


def _intent(k, **settings):
    """--k (and --noise-rate) as a KIntent: checked here, before any work starts."""
    from .auto_k import KIntent
    if "noise_rate" in settings:
        try:
            KIntent.parse("auto", noise_rate=settings["noise_rate"])
        except ValueError as error:
            raise ValueError(f"--noise-rate {settings['noise_rate']}: "
                             f"{str(error).removeprefix('noise_rate ')}") from None
    try:
        return KIntent.parse(k, **settings)
    except ValueError as error:
        raise ValueError(f"--k {k}: {error}") from None


def _spec(args):
    from .workspace.pipeline import EncoderSpec
    if args.encoder == "pixels":
        return EncoderSpec.of("pixels")
    pretrained = None if args.pretrained.lower() in ("none", "random") else args.pretrained
    return EncoderSpec.of("clip", model=args.model, pretrained=pretrained, device=args.device,
                          batch_size=args.batch_size)


def _embedding(ws, args):
    from .workspace import pipeline
    if getattr(args, "embeddings", None):
        from .embed import load_precomputed
        paths, X = load_precomputed(args.embeddings, args.paths,
                                    progress=_Progress(COPYING_VECTORS, args.quiet))
        return pipeline.import_embeddings(ws, paths, X, label=f"precomputed ({Path(args.embeddings).name})")
    try:
        embedding = pipeline.embed_workspace(ws, _spec(args),
                                             progress=_Progress("embedding", args.quiet))
    except KeyboardInterrupt:
        stopped = pipeline.stopped_embedding(ws)
        if stopped:
            _say("", file=sys.stderr)
            _say(f"stopped: {stopped['kept']} of {stopped['total']} images are embedded and "
                  "kept; run the same command again to continue", file=sys.stderr)
        raise
    stats = embedding.stats
    if not args.quiet:
        _say(f"embedded {stats.get('n')} images with {embedding.label}: "
              f"{stats.get('hits', 0)} from cache, {stats.get('encoded', 0)} encoded "
              f"in {stats.get('seconds', 0):.1f} s", file=sys.stderr)
    return embedding


def _output_format(args) -> tuple[Path, str]:
    out = Path(args.out).expanduser()
    by_suffix = {".json": "json", ".parquet": "parquet"}
    return out, args.format or by_suffix.get(out.suffix.lower(), "csv")


def _writable(out: Path, *, folder: bool = False) -> None:
    """Refuse an --out that cannot be written before any work is done: its folder cannot
    be made or written in, or it names a folder where a file is meant (or the reverse)."""
    if out.is_dir() and not folder:
        raise ValueError(f"--out {out} is a folder; give a file name")
    if out.exists() and not out.is_dir() and folder:
        raise ValueError(f"--out {out}: a file of that name exists; give a folder name")
    parent = out.parent
    blocked = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if blocked is not None and not blocked.is_dir():
        raise ValueError(f"--out {out}: {blocked} is a file, not a folder; choose another place")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"--out {out}: cannot make the folder {parent} "
                         f"({(error.strerror or str(error)).lower()}); choose another place") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: no permission to write in {parent}; choose another place")


def _label(args) -> int:
    from .workspace import labels, pipeline
    out, fmt = _output_format(args)
    _writable(out)
    if args.paths and not args.embeddings:
        raise ValueError("--paths needs --embeddings")
    intent = _intent(args.k, noise_rate=args.noise_rate)
    if args.images is None:
        return _label_from_files(args, intent, out, fmt)
    if args.graph:
        raise ValueError("--graph is for labeling from --embeddings DIR without IMAGES; "
                         "leave out IMAGES (or --graph)")
    ws, summary = _open(args)
    embedding = _embedding(ws, args)
    if not intent.auto:     # named as the flag here; the pipeline's words are the app's
        from .graph import check_k
        check_k(intent.k, len(embedding.item_ids), name="--k")
    run = pipeline.run_labeling(ws, embedding, intent, variant=args.variant,
                                with_baseline=not args.no_baseline, bridge=args.bridge)
    if not args.quiet:
        choice = run.choice
        how = "chosen by P(k)" if choice is not None and choice.reliable else (
            f"default ({choice.reason})" if choice is not None else
            "the variant's own" if intent.auto else "given")
        result = run.result
        _say(f"HDL ({args.variant}): k={run.k} ({how}), {int((result.step >= 0).sum())} labeled in "
              f"{result.n_rounds} rounds{_spread(result)}, {_bridged(result)}, "
              f"{run.seconds:.2f} s", file=sys.stderr)
    _warn_flood(run.result, ws.load_run(run.hdl_id).classes, args.variant, _suggest_command(args))
    frame = labels.export_frame(ws, run.hdl_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(out, index=False)
    else:
        out.write_bytes(pipeline.to_json_bytes(frame) if fmt == "json"
                        else pipeline.to_csv_bytes(frame))
    _write_skipped(summary, out)
    if not args.quiet:
        _say(f"wrote {len(frame)} rows to {out}", file=sys.stderr)
    return 0


def _spread(result) -> str:
    """How far the default's seeds reached (its length follows how deep the seeds are)."""
    if result.spread is None:
        return ""
    steps, alpha = result.spread
    if alpha is None:
        return f" (seeds propagated {steps} steps)"
    return f" (seeds spread {steps} steps, alpha {alpha:.3f})"


def _bridged(result) -> str:
    """How many points were bridged, and how many of those bridges were approximate."""
    text = f"{int(result.fallback.sum())} bridged"
    if result.approximate_bridges:
        text += (f" ({result.approximate_bridges} bridges searched approximately: faiss "
                 "k-means lists, candidates re-checked exactly)")
    return text


def _suggest_command(args) -> str:
    """The `suggest` command for the images, seeds, workspace and encoder `label` was given,
    so it reads the same embeddings and run."""
    import shlex
    words = ["hdl-studio", "suggest", str(args.images)]
    if args.seeds:
        words += ["--seeds", str(args.seeds)]
    if args.workspace:
        words += ["--workspace", str(args.workspace)]
    if args.encoder != "clip":
        words += ["--encoder", args.encoder]
    else:
        if args.model != DEFAULT_CLIP_MODEL:
            words += ["--model", args.model]
        if args.pretrained != DEFAULT_CLIP_PRETRAINED:
            words += ["--pretrained", args.pretrained]
    return " ".join(shlex.quote(word) for word in words)


def _warn_flood(result, classes, variant: str, suggest: str | None = None) -> None:
    """Say on stderr when the run looks like a flood, and what to try (even with --quiet);
    with `suggest`, the command that lists suspicious seeds."""
    from .flood import flood_report
    seeds = result.seed_labels
    report = flood_report(result, seeds, class_names=classes, variant=variant)
    if report.flooded:
        lines = str(report).splitlines()
        if report.seeds_to_check and suggest is not None:
            lines.append(f"- `{suggest}` lists the seeds that disagree with their neighbours.")
        for line in lines:
            _say(f"warning: {line}", file=sys.stderr)


def _label_from_files(args, intent, out: Path, fmt: str) -> int:
    """`label --embeddings DIR [--graph GRAPHDIR]` without IMAGES: files in, labels out."""
    from .embed import is_embeddings_dir
    from .workspace.files import label_from_files, write_labels
    if not args.embeddings:
        raise ValueError("give IMAGES, or --embeddings DIR (a folder written by "
                         "`embed --out DIR`) to label without the images")
    if not is_embeddings_dir(args.embeddings):
        raise ValueError(f"--embeddings {args.embeddings}: without IMAGES this must be a folder "
                         "written by `embed IMAGES --out DIR` (part-*.parquet + _meta.json)")
    if args.paths:
        raise ValueError("--paths is for a .npy file; an embeddings folder lists its paths")
    seeds = None
    if args.seeds:
        seeds = Path(args.seeds).expanduser().resolve()
        if not seeds.is_file():
            raise ValueError(f"--seeds {args.seeds}: no such file")
    run = label_from_files(args.embeddings, seeds_csv=seeds, graph=args.graph, intent=intent,
                           with_baseline=not args.no_baseline,
                           variant=args.variant, bridge=args.bridge,
                           progress=_Progress(COPYING_VECTORS, args.quiet))
    result = run.result
    if not args.quiet:
        how = ("chosen by P(k)" if run.choice is not None and run.choice.reliable else
               f"default ({run.choice.reason})" if run.choice is not None else
               "the variant's own" if intent.auto else "given")
        if intent.auto and run.graph_k is not None:
            how += f", at most the graph's {run.graph_k}"
        agreement = ("" if run.baseline_agreement is None
                     else f", kNN-DV agrees on {100 * run.baseline_agreement:.1f} %")
        _say(f"HDL ({args.variant}): k={run.k} ({how}), {int((result.step >= 0).sum())} labeled in "
              f"{result.n_rounds} rounds{_spread(result)}, {_bridged(result)}, "
              f"{sum(run.seconds.values()):.2f} s{agreement}", file=sys.stderr)
    _warn_flood(result, run.classes, args.variant)
    write_labels(run.table, out, fmt)
    if not args.quiet:
        _say(f"wrote {run.table.num_rows} rows to {out}", file=sys.stderr)
    return 0


def _embed(args) -> int:
    from .workspace import pipeline
    from .embed import save_embeddings_dir, save_precomputed
    out = Path(args.out).expanduser()
    to_folder = out.suffix.lower() not in (".npy", ".parquet")
    if to_folder and out.suffix and not out.is_dir():
        raise ValueError(f"--out {args.out}: use a .npy or .parquet file name, or a folder "
                         "name without an extension (part-*.parquet + _meta.json)")
    _writable(out, folder=to_folder)
    if args.engine == "ray":
        if not to_folder:
            raise ValueError(f"--out {args.out}: --engine ray writes a folder "
                             "(part-*.parquet + _meta.json); give a folder name")
        return _embed_on_ray(args, out)
    ws, summary = _open(args)
    embedding = _embedding(ws, args)
    paths = pipeline.item_frame(ws)["path"].tolist()
    out.parent.mkdir(parents=True, exist_ok=True)
    if to_folder:
        meta = {"engine": "local", "encoder": embedding.label,
                "cache_key": embedding.key.split("|items=")[0],
                "model": args.model if args.encoder == "clip" else args.encoder,
                "skipped": [{"path": p, "reason": r} for p, r in summary.skipped]}
        written = [save_embeddings_dir(out, paths, embedding.X, meta)]
    else:
        written = save_precomputed(out, paths, embedding.X)
    _write_skipped(summary, out)
    if not args.quiet:
        _say(f"wrote {embedding.X.shape[0]}×{embedding.X.shape[1]} embeddings to "
              f"{', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0


def _embed_on_ray(args, out: Path) -> int:
    from .distributed import embed_on_ray
    source = Path(args.images).expanduser()
    if not source.is_dir():
        raise ValueError(f"{args.images}: --engine ray reads a folder (every worker must see "
                         "it at this path); extract a zip first")
    options = {}
    if args.encoder == "clip":
        pretrained = None if args.pretrained.lower() in ("none", "random") else args.pretrained
        options = {"model": args.model, "pretrained": pretrained, "batch_size": args.batch_size}
    meta = embed_on_ray(source, out, encoder=args.encoder, options=options,
                        address=args.ray_address, actors=args.actors,
                        gpus_per_actor=args.gpus_per_actor, batch_size=args.batch_size,
                        progress=_Progress("embedding on Ray", args.quiet))
    if meta["skipped"]:
        print(f"skipped {len(meta['skipped'])} file(s):", file=sys.stderr)
        for entry in meta["skipped"]:
            print(f"  {entry['path']}: {entry['reason']}", file=sys.stderr)
    if not args.quiet:
        print(f"wrote {meta['n']}×{meta['dim']} embeddings to {out}", file=sys.stderr)
    return 0


def _graph(args) -> int:
    import time
    from .embed import is_embeddings_dir, map_embeddings_dir
    from .workspace.files import check_graph_folder, paths_digest, write_graph_dir
    if not is_embeddings_dir(args.embeddings):
        raise ValueError(f"{args.embeddings}: not an embeddings folder (part-*.parquet + "
                         "_meta.json); write one with `embed IMAGES --out DIR`")
    check_graph_folder(args.out)        # refused before the search, not after it
    _writable(Path(args.out).expanduser(), folder=True)
    paths, X, meta = map_embeddings_dir(args.embeddings,
                                        progress=_Progress(COPYING_VECTORS, args.quiet))
    if not 1 <= args.k < len(paths):
        raise ValueError(f"--k {args.k}: must be between 1 and {len(paths) - 1} "
                         f"(the embeddings hold {len(paths)} images)")
    started = time.perf_counter()
    if args.method == "ray":
        from .distributed import ivf_graph_on_ray
        graph = ivf_graph_on_ray(X, args.k, address=args.ray_address)
    else:
        from .graph import build_knn_graph
        graph = build_knn_graph(X, args.k, method=args.method, random_state=0,
                                device=args.device)
    seconds = time.perf_counter() - started
    write_graph_dir(args.out, graph, {"method": args.method, "embeddings": str(args.embeddings),
                                      "cache_key": meta.get("cache_key"),
                                      "embeddings_id": meta.get("embeddings_id"),
                                      "embeddings_written_at": meta.get("written_at"),
                                      "paths_digest": paths_digest(paths),
                                      "seconds": round(seconds, 3)})
    if not args.quiet:
        print(f"wrote the {args.k}-neighbour graph of {len(paths)} points ({args.method}, "
              f"{seconds:.1f} s) to {args.out}", file=sys.stderr)
    return 0


def _suggest(args) -> int:
    from . import suggest
    from .workspace import pipeline
    if args.n < 1:
        raise ValueError(f"--n {args.n}: must be at least 1")
    intent = _intent(args.k)
    ws, _ = _open(args)
    embedding = _embedding(ws, args)
    stored = ws.load_run(method="hdl")
    seeds = pipeline.seed_vector(ws, embedding.item_ids)
    if pipeline.run_status(stored, embedding, seeds) != pipeline.CURRENT:   # re-run
        stored = ws.load_run(pipeline.run_labeling(ws, embedding, intent,
                                                   with_baseline=False).hdl_id)
    result = stored.result
    graph = pipeline.neighbour_graph(ws, embedding, result.k)
    paths = pipeline.item_frame(ws)["path"].tolist()
    _say(f"label these {args.n} images next (run {stored.run_id}, k={result.k}):")
    for rank, s in enumerate(suggest.suggest_next(graph.indices, result, n=args.n,
                                                  class_names=stored.classes), 1):
        _say(f"{rank:3d}. {paths[s.point]}  score {s.score:.2f}  - {s.why}")
    suspicious = suggest.suspicious_seeds(graph.indices, result, class_names=stored.classes,
                                          X=embedding.X if args.leave_one_out else None,
                                          variant=stored.params.get("variant", "paper"))
    if suspicious:
        _say("")
        _say(f"seeds that look wrong ({len(suspicious)}):")
        for s in suspicious:
            _say(f"  {paths[s.point]}: {s.why}")
    else:
        _say("")
        _say("no seed disagrees with its neighbours")
    return 0
