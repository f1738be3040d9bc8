"""Tests for hdl_core.cli: `python -m hdl_core label|embed|suggest`, in-process and as a program."""
from __future__ import annotations

import errno
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hdl_core import cli
from hdl_core.workspace.labels import EXPORT_COLUMNS
from hdl_core.workspace.store import Workspace
from tests.test_pipeline import COLOURS, png_bytes, write_colour_folder

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"seed", "hdl", "fallback", "manual"}


# --------------------------------------------------------------------------- helpers

pytestmark = pytest.mark.usefixtures("roots")   # every test gets private data/workspace roots


@pytest.fixture
def colours(roots):
    """A three-colour folder (2 seeds, 6 unlabeled per class) and the true class of each path."""
    folder = roots[0] / "colours"
    return folder, write_colour_folder(folder)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit status, stdout, stderr)."""
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def label(capsys, images, out, *options) -> tuple[int, str, str]:
    return run_cli(capsys, "label", images, "--out", out, "--encoder", "pixels", *options)


def read_labels(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, dtype={"label": str})


def assert_one_line_error(status: int, err: str, *fragments: str) -> None:
    assert status == cli.EXIT_BAD_INPUT
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def assert_steps_consistent(frame: pd.DataFrame) -> None:
    """Seeds have no step/round; every other image one distinct step, rounds following steps."""
    seeds = frame["source"].isin(["seed", "manual"])
    assert (frame.loc[seeds, ["step", "round"]] == -1).all().all()
    rest = frame[~seeds].sort_values("step")
    assert rest["step"].tolist() == list(range(len(rest)))
    assert (rest["round"] >= 0).all() and rest["round"].is_monotonic_increasing


# --------------------------------------------------------------------------- label

def test_label_folder_writes_a_row_per_image_with_the_export_columns(capsys, colours, tmp_path):
    folder, truth = colours
    out = tmp_path / "out" / "labels.csv"
    status, stdout, err = label(capsys, folder, out)
    assert status == 0
    frame = read_labels(out)
    assert list(frame.columns) == EXPORT_COLUMNS
    assert sorted(frame["path"]) == sorted(truth)               # relative, every image once
    assert dict(zip(frame["path"], frame["label"])) == truth
    assert set(frame["source"]) <= SOURCES
    seeds = frame[frame["source"] == "seed"]
    assert sorted(seeds["path"]) == sorted(p for p in truth if not p.startswith("unlabeled/"))
    assert (seeds["confidence"] == 1.0).all()
    assert_steps_consistent(frame)
    assert f"wrote {len(truth)} rows to {out}" in err and "embedding:" in err
    assert stdout == ""
    assert not out.with_name("labels.skipped.csv").exists()


def test_label_runs_reach_ordered_hdl_unless_told_another_variant(capsys, colours, tmp_path):
    folder, truth = colours
    out = tmp_path / "labels.csv"
    status, _, err = label(capsys, folder, out, "--workspace", tmp_path / "a")
    assert status == 0 and "HDL (reach)" in err
    params = Workspace(tmp_path / "a").load_run(method="hdl").params
    assert params["variant"] == "reach"
    # the reach's length depends on the seeds, so the summary says what it was
    assert f"(seeds propagated {params['spread_steps']} steps)" in err
    assert "spread_alpha" not in params                 # harmonic: no alpha to record
    assert dict(zip(read_labels(out)["path"], read_labels(out)["label"])) == truth
    for variant in ("paper", "balanced"):
        status, _, err = label(capsys, folder, out, "--workspace", tmp_path / variant,
                               "--variant", variant)
        assert status == 0 and f"HDL ({variant})" in err and "seeds propagated" not in err
        assert Workspace(tmp_path / variant).load_run(method="hdl").params["variant"] == variant


def test_label_bridge_is_auto_unless_told_and_is_recorded(capsys, colours, tmp_path):
    folder, truth = colours
    out = tmp_path / "labels.csv"
    status, _, err = label(capsys, folder, out, "--workspace", tmp_path / "a")
    assert status == 0 and "searched approximately" not in err        # small: exact
    params = Workspace(tmp_path / "a").load_run(method="hdl").params
    assert params["bridge"] == "auto" and params["approximate_bridges"] == 0
    status, _, err = label(capsys, folder, out, "--workspace", tmp_path / "b",
                           "--bridge", "approx", "--variant", "paper", "--k", "1")
    assert status == 0, err
    params = Workspace(tmp_path / "b").load_run(method="hdl").params
    assert params["bridge"] == "approx"
    run = Workspace(tmp_path / "b").load_run(method="hdl")
    bridged = int(run.result.fallback.sum())
    assert params["approximate_bridges"] == bridged
    assert bridged > 0 and f"{bridged} bridged ({bridged} bridges searched approximately" in err
    with pytest.raises(SystemExit) as stop:
        cli.main(["label", str(folder), "--out", str(out), "--bridge", "fast"])
    assert stop.value.code == 2
    assert "argument --bridge: invalid choice: 'fast' (choose from" in capsys.readouterr().err


def test_a_flooded_run_is_called_out_on_stderr(capsys, colours, tmp_path, monkeypatch):
    from hdl_core import hdl
    real = hdl.label_prepared_rows

    def flooding(rows, y, **kwargs):                # one class takes every unlabeled image
        result = real(rows, y, **kwargs)
        result.labels[result.step >= 0] = 0
        return result

    monkeypatch.setattr(hdl, "label_prepared_rows", flooding)
    folder, _ = colours
    status, _, err = label(capsys, folder, tmp_path / "x.csv", "--variant", "paper", "--quiet",
                           "--workspace", tmp_path / "ws")
    assert status == 0
    assert "warning: This labeling looks like a flood:" in err
    assert "reach-ordered" in err                   # what to try
    # where to find the seeds to check, in the command line's terms, not the app's: the
    # suggest command for the same images, workspace and encoder (else it would embed again)
    assert (f"`hdl-studio suggest {folder} --workspace {tmp_path / 'ws'} --encoder pixels` "
            "lists the seeds that disagree") in err
    assert "Review page" not in err
    command = shlex.split(re.search(r"`(hdl-studio suggest [^`]*)`", err).group(1))
    status, out, err = run_cli(capsys, *command[1:])
    assert status == 0, err
    assert "0 encoded" in err and "seeds that look wrong" in out    # the same embeddings


def test_label_k_is_recorded_in_both_runs_and_in_the_steps(capsys, colours, tmp_path):
    folder, _ = colours
    workspace = tmp_path / "ws"
    out = tmp_path / "labels.csv"
    status, _, err = label(capsys, folder, out, "--k", "5", "--workspace", workspace)
    assert status == 0 and "k=5 (given)" in err
    runs = Workspace(workspace).runs()
    assert [(r.method, r.k) for r in runs] == [("hdl", 5), ("knn_dv", 5)]
    frame = read_labels(out)
    stored = Workspace(workspace).load_run(runs[0].run_id)
    assert_steps_consistent(frame)
    assert sorted(frame.loc[frame["step"] >= 0, "step"]) == sorted(stored.result.step[stored.result.step >= 0])
    assert frame["round"].max() == stored.result.round.max()


def test_label_writes_json_by_flag_or_extension(capsys, colours, tmp_path):
    folder, truth = colours
    for out, options in ((tmp_path / "labels.txt", ("--format", "json")),
                         (tmp_path / "labels.json", ())):
        status, _, _ = label(capsys, folder, out, "--quiet", *options)
        assert status == 0
        rows = json.loads(out.read_text(encoding="utf-8"))
        assert len(rows) == len(truth) and all(list(row) == EXPORT_COLUMNS for row in rows)
        assert {row["path"]: row["label"] for row in rows} == truth
        assert all(row["step"] == -1 and row["confidence"] == 1.0
                   for row in rows if row["source"] == "seed")


def test_label_quiet_writes_nothing_to_stderr(capsys, colours, tmp_path):
    folder, _ = colours
    status, stdout, err = label(capsys, folder, tmp_path / "l.csv", "--quiet")
    assert (status, stdout, err) == (0, "", "")


def test_seed_csv_adds_seeds_and_blank_labels_unseed(capsys, roots, tmp_path):
    folder = roots[0] / "flat"
    write_colour_folder(folder, seeds=0, unlabeled=6)
    (folder / "red").mkdir()
    (folder / "red" / "layout.png").write_bytes(png_bytes(COLOURS["red"], seed=321))
    # The CSV lives inside the image folder: it must not be scanned as an image.
    seeds = folder / "seeds.csv"
    seeds.write_text("path,label,note\n"
                     "unlabeled/red0.png,red,x\n./unlabeled/green0.png,green,\n"
                     "unlabeled/blue0.png,blue,\nunlabeled\\blue1.png,blue,\n"
                     "red/layout.png,,blank: not a seed\n", encoding="utf-8")
    out = tmp_path / "labels.csv"
    status, _, err = label(capsys, folder, out, "--seeds", seeds)
    assert status == 0, err
    frame = read_labels(out).set_index("path")
    seeded = sorted(frame.index[frame["source"] == "seed"])
    assert seeded == ["unlabeled/blue0.png", "unlabeled/blue1.png", "unlabeled/green0.png",
                      "unlabeled/red0.png"]
    assert frame.loc["red/layout.png", "source"] == "hdl" and frame.loc["red/layout.png", "label"] == "red"
    assert "seeds.csv" not in frame.index and "skipped" not in err
    colour_of = {path: next(c for c in COLOURS if path.startswith(f"unlabeled/{c}"))
                 for path in frame.index if path.startswith("unlabeled/")}
    assert frame["label"].to_dict() == {**colour_of, "red/layout.png": "red"}


def test_seed_csv_with_unknown_paths_exits_2_naming_the_rows(capsys, colours, tmp_path):
    folder, _ = colours
    seeds = tmp_path / "my-seeds.csv"
    seeds.write_text("path,label\nunlabeled/red2.png,red\nnope/cat.png,cat\n\n"
                     "unlabeled/green2.png,green\nmissing.png,dog\n", encoding="utf-8")
    out = tmp_path / "labels.csv"
    status, _, err = label(capsys, folder, out, "--seeds", seeds, "--quiet")
    assert_one_line_error(status, err, "my-seeds.csv", "rows 3, 6", "'nope/cat.png'", "'missing.png'")
    assert not out.exists()


def test_label_a_zip_and_rerun_after_the_zip_changed(capsys, colours, tmp_path):
    folder, truth = colours
    archive = tmp_path / "colours.zip"

    def write_zip(paths):
        with zipfile.ZipFile(archive, "w") as zf:
            for path in paths:
                zf.write(folder / path, f"colours/{path}")

    write_zip(truth)
    out = tmp_path / "labels.csv"
    status, _, err = label(capsys, archive, out, "--quiet")
    assert status == 0, err
    frame = read_labels(out)
    assert dict(zip(frame["path"], frame["label"])) == truth

    # Images removed from the archive are gone from the next run's output.
    kept = [p for p in truth if p != "unlabeled/blue7.png"]
    write_zip(kept)
    status, _, err = label(capsys, archive, out, "--quiet")
    assert status == 0, err
    assert sorted(read_labels(out)["path"]) == sorted(kept)


@pytest.mark.parametrize("case", ["not a zip", "no seeds", "missing input", "bad k",
                                  "paths without embeddings", "embed to csv",
                                  "no images, no folder", "no images, a npy",
                                  "graph of no folder", "bad noise rate", "k above the images",
                                  "out inside a file", "out is a folder"])
def test_bad_input_exits_2_with_one_error_line(capsys, roots, tmp_path, case):
    folder = roots[0] / "plain"
    write_colour_folder(folder, seeds=0, unlabeled=2)
    out = tmp_path / "labels.csv"
    fake_zip = tmp_path / "photos.zip"
    fake_zip.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    seeds = tmp_path / "seeds.csv"
    seeds.write_text("unlabeled/red0.png,red\nunlabeled/green0.png,green\n", encoding="utf-8")
    argv, fragments = {
        "not a zip": (["label", fake_zip, "--out", out], ["photos.zip is not a zip archive"]),
        "no seeds": (["label", folder, "--out", out], ["no seeds"]),
        "missing input": (["label", tmp_path / "nowhere", "--out", out], ["no such file or folder"]),
        "bad k": (["label", folder, "--out", out, "--k", "many", "--seeds", seeds], ["'many'"]),
        "paths without embeddings": (["label", folder, "--out", out, "--paths", "p.txt"],
                                     ["--paths needs --embeddings"]),
        "embed to csv": (["embed", folder, "--out", tmp_path / "emb.csv"], [".npy or .parquet"]),
        "no images, no folder": (["label", "--out", out], ["--embeddings DIR"]),
        "no images, a npy": (["label", "--out", out, "--embeddings", tmp_path / "e.npy"],
                             ["must be a folder written by `embed IMAGES --out DIR`"]),
        "graph of no folder": (["graph", tmp_path, "--out", tmp_path / "g"],
                               ["not an embeddings folder"]),
        "bad noise rate": (["label", folder, "--out", out, "--noise-rate", "1.5", "--seeds", seeds],
                           ["--noise-rate 1.5: must lie in [0, 1)"]),
        "k above the images": (["label", folder, "--out", out, "--k", "500", "--seeds", seeds],
                               ["--k=500 must be smaller than the number of points"]),
        "out inside a file": (["label", folder, "--out", seeds / "labels.csv", "--seeds", seeds],
                              ["seeds.csv is a file, not a folder"]),
        "out is a folder": (["label", folder, "--out", tmp_path, "--seeds", seeds],
                            ["is a folder; give a file name"]),
    }[case]
    status, _, err = run_cli(capsys, *argv, *(["--encoder", "pixels"] if argv[0] != "graph"
                                              else []), "--quiet")
    assert_one_line_error(status, err, *fragments)
    assert "Choose k page" not in err       # the app's words, not the command line's
    assert not out.exists()


def test_the_operating_systems_refusals_are_one_line_in_words():
    assert cli._os_error(PermissionError(errno.EACCES, "Permission denied", "/data/out.csv")) \
        == "/data/out.csv: permission denied; check its permissions or choose another place"
    assert cli._os_error(OSError(errno.ENOSPC, "No space left on device", "/data/x")) \
        == "/data/x: no space left on device; free some space or choose another disk"
    assert cli._os_error(OSError(errno.EIO, "Input/output error")) == "input/output error"


def test_skipped_files_are_named_on_stderr_and_written_beside_the_output(capsys, colours, tmp_path):
    folder, truth = colours
    (folder / "unlabeled" / "noise.png").write_bytes(np.random.default_rng(0).bytes(300))
    (folder / "red" / "empty.jpg").write_bytes(b"")
    out = tmp_path / "result" / "labels.csv"
    status, _, err = label(capsys, folder, out)
    assert status == 0
    assert "skipped 2 file(s):" in err
    assert "  red/empty.jpg: empty file (0 bytes)" in err
    assert "  unlabeled/noise.png: not an image" in err
    skipped = pd.read_csv(tmp_path / "result" / "labels.skipped.csv")
    assert list(skipped.columns) == ["path", "reason"]
    assert dict(zip(skipped["path"], skipped["reason"])) == {
        "red/empty.jpg": "empty file (0 bytes)",
        "unlabeled/noise.png": "not an image (JPEG, PNG, WebP, GIF, BMP, TIFF are read)"}
    assert sorted(read_labels(out)["path"]) == sorted(truth)

    # Fixed files: the next run's list would be empty, so the old list goes.
    (folder / "unlabeled" / "noise.png").unlink()
    (folder / "red" / "empty.jpg").unlink()
    status, _, err = label(capsys, folder, out, "--quiet")
    assert status == 0 and not (tmp_path / "result" / "labels.skipped.csv").exists()


# --------------------------------------------------------------------------- embed, then label anywhere

def test_embed_then_label_from_the_embeddings_gives_the_same_labels(capsys, demo_folder, tmp_path):
    direct = tmp_path / "direct.csv"
    status, _, err = label(capsys, demo_folder, direct, "--k", "3", "--workspace", tmp_path / "ws1")
    assert status == 0, err

    embeddings = tmp_path / "cluster" / "emb.npy"
    status, _, err = run_cli(capsys, "embed", demo_folder, "--out", embeddings, "--encoder", "pixels",
                             "--workspace", tmp_path / "ws2")
    assert status == 0, err
    paths = embeddings.with_name("emb.paths.txt").read_text(encoding="utf-8").splitlines()
    assert len(paths) == np.load(embeddings).shape[0] == 1797
    assert paths == sorted(paths) and all(not p.startswith("/") for p in paths)
    assert "1797 from cache" not in err                  # a fresh workspace encodes

    from_embeddings = tmp_path / "from-embeddings.csv"
    status, _, err = run_cli(capsys, "label", demo_folder, "--out", from_embeddings, "--k", "3",
                             "--embeddings", embeddings, "--paths", embeddings.with_name("emb.paths.txt"),
                             "--workspace", tmp_path / "ws3")
    assert status == 0, err
    assert "embedding:" not in err                       # nothing was encoded
    a, b = read_labels(direct), read_labels(from_embeddings)
    pd.testing.assert_frame_equal(a[["path", "label", "source", "step", "round"]],
                                  b[["path", "label", "source", "step", "round"]])
    np.testing.assert_allclose(a["confidence"], b["confidence"], rtol=1e-5)


def test_label_with_embeddings_that_miss_images_exits_2(capsys, colours, tmp_path):
    folder, truth = colours
    embeddings = tmp_path / "emb.npy"
    paths = sorted(truth)[1:]
    np.save(embeddings, np.random.default_rng(0).random((len(paths), 8)))
    embeddings.with_name("emb.paths.txt").write_text("\n".join(paths) + "\n", encoding="utf-8")
    status, _, err = run_cli(capsys, "label", folder, "--out", tmp_path / "l.csv",
                             "--embeddings", embeddings, "--quiet")
    assert_one_line_error(status, err, "1 image(s) have no embedding row", sorted(truth)[0])


# --------------------------------------------------------------------------- encoders

def test_encoder_options_reach_the_clip_encoder(capsys, colours, tmp_path, monkeypatch):
    from hdl_core import embed as encoders
    asked = []
    real_make_encoder = encoders.make_encoder

    def recording_make_encoder(name, **options):
        asked.append((name, options))
        return real_make_encoder("pixels")           # stands in for CLIP: no model to load

    monkeypatch.setattr(encoders, "make_encoder", recording_make_encoder)
    folder, _ = colours
    common = ["--encoder", "clip", "--quiet"]
    assert run_cli(capsys, "embed", folder, "--out", tmp_path / "a.npy", *common)[0] == 0
    assert run_cli(capsys, "embed", folder, "--out", tmp_path / "b.npy", *common, "--model", "RN50",
                   "--pretrained", "none", "--device", "cpu", "--batch-size", "8")[0] == 0
    assert run_cli(capsys, "embed", folder, "--out", tmp_path / "c.npy", *common,
                   "--pretrained", "weights/my.pt")[0] == 0
    assert asked == [
        ("clip", dict(model="ViT-B-32", pretrained="laion2b_s34b_b79k", device="auto", batch_size=64)),
        ("clip", dict(model="RN50", pretrained=None, device="cpu", batch_size=8)),
        ("clip", dict(model="ViT-B-32", pretrained="weights/my.pt", device="auto", batch_size=64)),
    ]


@pytest.mark.slow
def test_label_with_randomly_initialised_clip_end_to_end(capsys, roots, tmp_path):
    folder = roots[0] / "small"
    truth = write_colour_folder(folder, seeds=2, unlabeled=2, colours={
        name: COLOURS[name] for name in ("red", "blue")})
    workspace = tmp_path / "ws"
    out = tmp_path / "labels.csv"
    # A small open_clip model with random weights: the real CLIP path, no download.
    status, _, err = run_cli(capsys, "label", folder, "--out", out, "--encoder", "clip",
                             "--model", "ViT-S-32", "--pretrained", "none", "--device", "cpu",
                             "--k", "2", "--workspace", workspace)
    assert status == 0, err
    assert "with CLIP ViT-S-32 (random weights" in err
    frame = read_labels(out)
    assert sorted(frame["path"]) == sorted(truth) and (frame["label"] != "").all()
    assert (frame["source"] == "seed").sum() == 4
    from hdl_core.workspace.pipeline import require_embedding
    embedding = require_embedding(Workspace(workspace))
    assert embedding.X.shape[0] == len(truth) and embedding.label.startswith("CLIP ViT-S-32")
    np.testing.assert_allclose(np.linalg.norm(embedding.X, axis=1), 1.0, rtol=1e-5)


# --------------------------------------------------------------------------- suggest

def test_suggest_prints_ranked_images_and_the_suspicious_seed(capsys, roots):
    folder = roots[0] / "suggest"
    write_colour_folder(folder, seeds=3, unlabeled=6)
    # A green image filed under red/: a wrong seed its neighbours disagree with.
    (folder / "red" / "oops.png").write_bytes(png_bytes(COLOURS["green"], seed=4242))
    status, out, err = run_cli(capsys, "suggest", folder, "--n", "3", "--k", "3",
                               "--encoder", "pixels", "--quiet")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("label these 3 images next (run 1, k=3)")
    ranked = [line for line in lines if line[:4].strip().rstrip(".").isdigit()]
    assert [line.split(".")[0].strip() for line in ranked] == ["1", "2", "3"]
    assert all(" score " in line and "unlabeled/" in line for line in ranked)
    scores = [float(line.split(" score ")[1].split()[0]) for line in ranked]
    assert scores == sorted(scores, reverse=True)
    section = lines.index("seeds that look wrong (1):")
    assert lines[section + 1].startswith("  red/oops.png: seed 'red', but ")
    assert lines[section + 1].endswith("ended up 'green', none 'red'")

    # A second call reuses the stored run (no new run without new seeds or images).
    status, out_again, _ = run_cli(capsys, "suggest", folder, "--n", "3", "--encoder", "pixels",
                                   "--quiet")
    assert status == 0 and out_again == out

    # Leaving each seed out re-labels without it: the green image under red/ comes out green.
    status, out_loo, err = run_cli(capsys, "suggest", folder, "--n", "3", "--encoder", "pixels",
                                   "--leave-one-out", "--quiet")
    assert status == 0, err
    lines = out_loo.splitlines()
    section = lines.index("seeds that look wrong (1):")
    assert lines[section + 1].startswith(
        "  red/oops.png: seed 'red', but HDL without this seed's label gives it 'green'")


# --------------------------------------------------------------------------- help, entry point

def test_app_starts_streamlit_on_the_checkouts_app_from_its_folder(monkeypatch):
    started = {}

    def fake_call(command, cwd):
        started.update(command=command, cwd=cwd)
        return 0

    monkeypatch.setattr("subprocess.call", fake_call)
    assert cli.main(["app", "--port", "8600"]) == 0
    assert started["command"][1:4] == ["-m", "streamlit", "run"]
    assert started["command"][4] == str(REPO_ROOT / "app.py")
    assert started["command"][-2:] == ["--server.port", "8600"]
    assert started["cwd"] == REPO_ROOT            # so .streamlit/config.toml applies


def test_app_without_the_dashboards_files_says_where_to_run_it(monkeypatch, capsys):
    monkeypatch.setattr("hdl_core.config.app_folder", lambda: None)
    assert cli.main(["app"]) == 2
    assert "run it from a checkout" in capsys.readouterr().err


def test_the_wheel_carries_every_file_the_dashboard_reads():
    """A wheel installs the dashboard from pyproject's data-files: every script, stylesheet
    and component module under app_pages/ must be listed there (unit tests need not be)."""
    import tomllib
    listed = set()
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for patterns in config["tool"]["setuptools"]["data-files"].values():
        for pattern in patterns:
            listed.update(p.relative_to(REPO_ROOT).as_posix() for p in REPO_ROOT.glob(pattern))
    needed = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "app_pages").rglob("*")
              if p.suffix in (".py", ".mjs", ".css") and not p.name.endswith(".test.mjs")
              and "__pycache__" not in p.parts}
    assert needed and needed <= listed, sorted(needed - listed)
    assert {"app.py", "state.py", ".streamlit/config.toml"} <= listed


@pytest.mark.parametrize("command, options", [
    ("label", ["--out", "--seeds", "--encoder", "--k", "--format", "--embeddings", "--paths",
               "--workspace", "--device", "--pretrained", "--graph", "--no-baseline",
               "--bridge"]),
    ("embed", ["--out", "--encoder", "--model", "--batch-size", "--engine", "--ray-address",
               "--actors", "--gpus-per-actor"]),
    ("graph", ["--k", "--out", "--method", "--device", "--ray-address"]),
    ("suggest", ["--n", "--k", "--seeds", "--leave-one-out"]),
    ("app", ["--port", "--address"]),
])
def test_help_of_each_command_lists_its_options(capsys, command, options):
    with pytest.raises(SystemExit) as stop:
        cli.main([command, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: hdl-studio {command}")
    for option in options:
        assert option in text


def test_no_command_prints_the_overview(capsys):
    status, out, _ = run_cli(capsys)
    assert status == 0
    assert all(command in out for command in ("label", "embed", "graph", "suggest"))


@pytest.mark.slow
def test_module_entry_point_exit_status_and_streams(colours, tmp_path, roots):
    folder, truth = colours
    env = {**os.environ, "HDL_WORKSPACE_ROOT": str(roots[1]), "HDL_DATA_ROOT": str(roots[0])}
    out = tmp_path / "labels.csv"
    done = subprocess.run([sys.executable, "-m", "hdl_core", "label", str(folder), "--out", str(out),
                           "--encoder", "pixels", "--quiet"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert len(read_labels(out)) == len(truth)

    not_zip = tmp_path / "broken.zip"
    not_zip.write_bytes(b"definitely not a zip")
    failed = subprocess.run([sys.executable, "-m", "hdl_core", "label", str(not_zip), "--out", str(out),
                             "--encoder", "pixels"],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and failed.stdout == ""
    assert failed.stderr.startswith("error: broken.zip is not a zip archive")
    assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr


# --------------------------------------------------------------------------- from files, at scale

def test_label_from_an_embeddings_folder_equals_label_from_the_folder(capsys, roots, tmp_path):
    # unseeded colours need bridges; a seed CSV adds one seed and unseeds another
    folder = roots[0] / "mixed"
    truth = write_colour_folder(folder, seeds=2, unlabeled=5, seeded=["red", "green"])
    (folder / "unlabeled" / "noise.png").write_bytes(b"not an image")
    seeds = tmp_path / "seeds.csv"
    seeds.write_text("path,label\nunlabeled/green3.png,green\nred/red1.png,\n", encoding="utf-8")
    direct = tmp_path / "direct.csv"
    status, _, err = label(capsys, folder, direct, "--seeds", seeds, "--workspace", tmp_path / "w1")
    assert status == 0, err

    embeddings = tmp_path / "emb"
    status, _, err = run_cli(capsys, "embed", folder, "--out", embeddings, "--encoder", "pixels",
                             "--workspace", tmp_path / "w2")
    assert status == 0, err
    meta = json.loads((embeddings / "_meta.json").read_text())
    assert meta["n"] == len(truth) and meta["dim"] == 768 and meta["engine"] == "local"
    assert [entry["path"] for entry in meta["skipped"]] == ["unlabeled/noise.png"]
    assert meta["skipped"][0]["reason"].startswith("not an image")
    assert meta["cache_key"].startswith("pixels-")

    from_files = tmp_path / "from-files.csv"
    status, _, err = run_cli(capsys, "label", "--embeddings", embeddings, "--seeds", seeds,
                             "--out", from_files)
    assert status == 0, err
    assert "bridged" in err and "kNN-DV agrees on" in err
    assert "copying the vectors once" in err            # the first run on the folder says so
    assert from_files.read_bytes() == direct.read_bytes()
    assert set(read_labels(from_files)["source"]) >= {"seed", "hdl", "fallback"}
    # the vectors were labeled from the folder's mapped copy, which the next runs reuse
    assert [p.name.split("-")[1] for p in embeddings.glob("_vectors-*.npy")] == [
        meta["embeddings_id"]]

    # the paper's variant from files is the paper's variant from the folder too
    direct_paper, files_paper = tmp_path / "direct-paper.csv", tmp_path / "files-paper.csv"
    status, _, err = label(capsys, folder, direct_paper, "--seeds", seeds, "--variant", "paper",
                           "--workspace", tmp_path / "w1")
    assert status == 0, err
    status, _, err = run_cli(capsys, "label", "--embeddings", embeddings, "--seeds", seeds,
                             "--variant", "paper", "--out", files_paper)
    assert status == 0 and "HDL (paper)" in err, err
    assert "copying the vectors" not in err             # mapped, not copied again
    assert files_paper.read_bytes() == direct_paper.read_bytes()

    graph = tmp_path / "graph"
    status, _, err = run_cli(capsys, "graph", embeddings, "--k", "6", "--out", graph)
    assert status == 0, err
    indices, distances = np.load(graph / "indices.npy"), np.load(graph / "distances.npy")
    assert indices.dtype == np.int32 and distances.dtype == np.float16
    assert indices.shape == (len(truth), 6)
    with_graph = tmp_path / "with-graph.parquet"
    status, _, err = run_cli(capsys, "label", "--embeddings", embeddings, "--graph", graph,
                             "--seeds", seeds, "--k", "3", "--out", with_graph, "--no-baseline")
    assert status == 0, err and "kNN-DV" not in err
    direct_k3 = tmp_path / "direct-k3.csv"
    status, _, err = label(capsys, folder, direct_k3, "--seeds", seeds, "--k", "3",
                           "--workspace", tmp_path / "w3", "--no-baseline", "--quiet")
    assert status == 0, err
    a = read_labels(direct_k3)
    b = pd.read_parquet(with_graph)
    assert list(b.columns) == EXPORT_COLUMNS
    pd.testing.assert_frame_equal(a[["path", "label", "source", "step", "round"]],
                                  b[["path", "label", "source", "step", "round"]].astype(
                                      {"label": str, "source": object}), check_dtype=False)
    np.testing.assert_allclose(a["confidence"], b["confidence"], rtol=1e-5)


def test_a_graph_too_small_or_of_other_embeddings_is_refused(capsys, colours, tmp_path):
    folder, _ = colours
    emb_a, emb_b = tmp_path / "a", tmp_path / "b"
    for emb, size in ((emb_a, None), (emb_b, 2)):
        if size:
            (folder / "unlabeled" / "red2.png").unlink()
        status, _, err = run_cli(capsys, "embed", folder, "--out", emb, "--encoder", "pixels",
                                 "--workspace", tmp_path / f"ws-{emb.name}", "--quiet")
        assert status == 0, err
    status, _, err = run_cli(capsys, "graph", emb_a, "--k", "3", "--out", tmp_path / "g", "--quiet")
    assert status == 0, err
    status, _, err = run_cli(capsys, "label", "--embeddings", emb_b, "--graph", tmp_path / "g",
                             "--out", tmp_path / "x.csv", "--quiet")
    assert_one_line_error(status, err, "was built from other embeddings", "hdl-studio graph")
    # the same images embedded again by another encoder: the same paths, other vectors
    emb_c = tmp_path / "c"
    shutil.copytree(emb_a, emb_c)
    meta = json.loads((emb_c / "_meta.json").read_text())
    meta["cache_key"] = "clip-ViT-B-32|laion2b_s34b_b79k"
    (emb_c / "_meta.json").write_text(json.dumps(meta))
    status, _, err = run_cli(capsys, "label", "--embeddings", emb_c, "--graph", tmp_path / "g",
                             "--out", tmp_path / "x.csv", "--quiet")
    assert_one_line_error(status, err, "was built from embeddings by another encoder",
                          "clip-ViT-B-32", "hdl-studio graph")
    status, _, err = run_cli(capsys, "label", "--embeddings", emb_a, "--graph", tmp_path / "g",
                             "--k", "5", "--out", tmp_path / "x.csv", "--quiet")
    assert_one_line_error(status, err, "has 3 neighbours per point but k=5", "give --k 3 or less")
    # k left to the labeling stays within the graph's neighbours, for every variant
    for variant in ("reach", "balanced", "paper"):
        status, _, err = run_cli(capsys, "label", "--embeddings", emb_a, "--graph", tmp_path / "g",
                                 "--variant", variant, "--out", tmp_path / f"{variant}.csv")
        assert status == 0, err
        k = int(re.search(r"k=(\d+) \(", err).group(1))
        assert 1 <= k <= 3 and "at most the graph's 3" in err, err
        n = json.loads((emb_a / "_meta.json").read_text())["n"]
        assert len(read_labels(tmp_path / f"{variant}.csv")) == n


def test_a_graph_of_an_earlier_write_of_the_embeddings_is_refused(capsys, colours, tmp_path):
    # an image replaced under its own name and the folder embedded again by the same
    # encoder: same paths, same encoder, other vectors; only the write itself tells
    folder, _ = colours
    embeddings, graph = tmp_path / "emb", tmp_path / "g"
    embed = ("embed", folder, "--out", embeddings, "--encoder", "pixels",
             "--workspace", tmp_path / "ws", "--quiet")
    assert run_cli(capsys, *embed)[0] == 0
    assert run_cli(capsys, "graph", embeddings, "--k", "3", "--out", graph, "--quiet")[0] == 0
    copy = tmp_path / "copy"                    # a copy is the same write: its graph holds
    shutil.copytree(embeddings, copy)
    status, _, err = run_cli(capsys, "label", "--embeddings", copy, "--graph", graph,
                             "--out", tmp_path / "a.csv", "--quiet")
    assert status == 0, err
    (folder / "unlabeled" / "red2.png").write_bytes(png_bytes(COLOURS["blue"], seed=999))
    assert run_cli(capsys, *embed)[0] == 0
    status, _, err = run_cli(capsys, "label", "--embeddings", embeddings, "--graph", graph,
                             "--out", tmp_path / "b.csv", "--quiet")
    assert_one_line_error(status, err, "built from an earlier write of these embeddings",
                          "embedded again since", "hdl-studio graph")
    assert not (tmp_path / "b.csv").exists()
    assert run_cli(capsys, "graph", embeddings, "--k", "3", "--out", graph, "--quiet")[0] == 0
    status, _, err = run_cli(capsys, "label", "--embeddings", embeddings, "--graph", graph,
                             "--out", tmp_path / "b.csv", "--quiet")
    assert status == 0, err


def test_a_graph_is_written_only_over_an_earlier_graph(capsys, colours, tmp_path):
    # the embeddings folder and the graph folder both keep a _meta.json: writing the graph
    # into the embeddings would have replaced theirs (their skipped files, model, dim)
    folder, _ = colours
    embeddings = tmp_path / "emb"
    status, _, err = run_cli(capsys, "embed", folder, "--out", embeddings, "--encoder", "pixels",
                             "--workspace", tmp_path / "ws", "--quiet")
    assert status == 0, err
    before = {p.name: p.read_bytes() for p in embeddings.iterdir()}
    status, _, err = run_cli(capsys, "graph", embeddings, "--k", "3", "--out", embeddings)
    assert_one_line_error(status, err, "--out", "holds other files (part-00000.parquet)",
                          "empty folder")
    assert {p.name: p.read_bytes() for p in embeddings.iterdir()} == before
    status, _, err = run_cli(capsys, "graph", embeddings, "--k", "3", "--out",
                             embeddings / "part-00000.parquet")
    assert_one_line_error(status, err, "a file of that name exists")
    for k in ("3", "4"):          # an earlier graph is simply replaced
        status, _, err = run_cli(capsys, "graph", embeddings, "--k", k, "--out", tmp_path / "g",
                                 "--quiet")
        assert status == 0, err
    assert np.load(tmp_path / "g" / "indices.npy").shape[1] == 4


def test_seed_csv_naming_paths_the_embeddings_lack_exits_2_naming_the_rows(capsys, colours,
                                                                           tmp_path):
    folder, _ = colours
    embeddings = tmp_path / "emb"
    status, _, err = run_cli(capsys, "embed", folder, "--out", embeddings, "--encoder", "pixels",
                             "--workspace", tmp_path / "ws", "--quiet")
    assert status == 0, err
    seeds = tmp_path / "my-seeds.csv"
    seeds.write_text("path,label\nunlabeled/red2.png,red\nnope/cat.png,cat\n", encoding="utf-8")
    status, _, err = run_cli(capsys, "label", "--embeddings", embeddings, "--seeds", seeds,
                             "--out", tmp_path / "x.csv", "--quiet")
    assert_one_line_error(status, err, "my-seeds.csv row 3", "'nope/cat.png'",
                          "relative to the folder", "was embedded from")
    assert not (tmp_path / "x.csv").exists()
