"""Files in: scanning folders, seed CSVs, zips and uploads, decoding images, the demo.

Everything here touches the file system and nothing else (no Streamlit, no network).
"""
from .archives import DEFAULT_MAX_ZIP_BYTES, DEFAULT_MAX_ZIP_FILES, extract_zip, save_uploads
from .dataset import (TRUTH_CSV, UNLABELED_FOLDERS, Dataset, DatasetError, Item, Skipped,
                      data_root, dataset_folders, resolve_in_data_root)
from .demo import DEMO_FOLDER, make_demo
from .files import DatasetFile, DatasetFileError, open_dataset_file
from .imageio import DEFAULT_MAX_PIXELS, RASTER_FORMATS, image_extensions, open_image, thumbnail
from .scan import load_folder
from .seed_csv import read_seed_csv

__all__ = [
    "Dataset", "DatasetError", "Item", "Skipped", "data_root", "resolve_in_data_root",
    "load_folder", "read_seed_csv", "extract_zip", "save_uploads", "open_image", "thumbnail",
    "make_demo", "DEMO_FOLDER", "TRUTH_CSV", "UNLABELED_FOLDERS", "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_ZIP_BYTES", "DEFAULT_MAX_ZIP_FILES", "DatasetFile", "DatasetFileError",
    "open_dataset_file", "RASTER_FORMATS", "image_extensions", "dataset_folders",
]
