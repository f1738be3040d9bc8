"""The built-in demo: scikit-learn's handwritten digits written as a dataset folder."""
from __future__ import annotations

import csv
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from .dataset import TRUTH_CSV, DatasetError, data_root

DEMO_FOLDER = "demo-digits"
DEMO_SEEDS_PER_CLASS = 3
DEMO_IMAGE_SIZE = 32
DEMO_RANDOM_SEED = 0


def make_demo(root: Path | None = None) -> Path:
    """The built-in demo: scikit-learn's handwritten digits as a dataset folder.

    1797 images of 8×8 digits, upscaled to 32×32 grayscale PNGs (dark ink on white), named
    by their index in ``load_digits()``: three seeds per class in folders ``0`` .. ``9``
    (``3/digit_0123.png``), the rest in ``unlabeled/``. ``truth.csv`` (``path,label`` for
    every image) holds the ground truth, which `load_folder` reads into `Dataset.truth`.
    Seeds are chosen with a fixed random generator, so every run writes the same files.
    Generated once into a temporary folder that is renamed into place when complete, so an
    interrupted run is never mistaken for the demo; later calls return at once.

    Parameters
    ----------
    root : Path, optional
        The data root; default `data_root()`. The demo goes to ``<root>/demo-digits``.

    Returns
    -------
    Path
        The demo folder.

    Raises
    ------
    DatasetError
        When ``demo-digits`` exists but is not a finished demo.
    """
    root = (data_root() if root is None else Path(root)).resolve()
    root.mkdir(parents=True, exist_ok=True)
    folder = root / DEMO_FOLDER
    if folder.exists():
        return _finished_demo(folder)
    building = Path(tempfile.mkdtemp(prefix=f".{DEMO_FOLDER}-", suffix=".partial", dir=root))
    try:
        _write_demo(building)
        try:
            os.rename(building, folder)
        except OSError:
            if not folder.exists():   # not another process finishing first
                raise
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    return _finished_demo(folder)


def _finished_demo(folder: Path) -> Path:
    if not (folder / TRUTH_CSV).is_file():
        raise DatasetError(f"{folder.name!r} in the data root exists but is not a finished demo "
                           f"(no {TRUTH_CSV}); delete or rename it and try again")
    return folder


def _write_demo(folder: Path) -> None:
    from sklearn.datasets import load_digits   # scikit-learn is slow to import; only here

    digits = load_digits()
    labels = digits.target
    rng = np.random.default_rng(DEMO_RANDOM_SEED)
    seeds = set()
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        seeds.update(int(i) for i in rng.choice(members, DEMO_SEEDS_PER_CLASS, replace=False))

    truth_rows = []
    for index, (pixels, digit) in enumerate(zip(digits.images, labels)):
        subfolder = str(digit) if index in seeds else "unlabeled"
        relative = f"{subfolder}/digit_{index:04d}.png"
        # load_digits pixels run 0 (background) .. 16 (ink); draw dark ink on white paper.
        paper = np.round(255 - pixels * (255 / 16)).astype(np.uint8)
        image = Image.fromarray(paper, "L").resize((DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE),
                                                   Image.Resampling.BICUBIC)
        (folder / subfolder).mkdir(exist_ok=True)
        image.save(folder / relative, format="PNG")
        truth_rows.append((relative, str(digit)))
    with open(folder / TRUTH_CSV, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["path", "label"])
        writer.writerows(sorted(truth_rows))

