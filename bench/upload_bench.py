"""Memory of storing uploaded files (issue 15, finding 6): whole bytes against chunks.

Streamlit hands the page each uploaded file as an in-memory ``UploadedFile`` (a BytesIO
over the bytes its server received). Before, the Data page passed ``f.getvalue()`` of each
to the store; now `hdl_core.data.uploads.store_files` reads each file object in 1 MiB
chunks. Each way runs in a fresh process on real ``UploadedFile`` objects; the number is
how far the peak RSS rose above what the uploaded files themselves take.

What this shows: CPython's BytesIO shares its buffer with ``getvalue()`` until written, so
neither way copies an upload; the memory an upload costs the server is Streamlit's own
copy of each file, held for the browser session (``server.maxUploadSize`` caps a file).

    .venv/bin/python bench/upload_bench.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _common import ROOT, machine_info, print_table, write_json

CHILD = r"""
import io, json, resource, sys, tempfile, os
sys.path.insert(0, sys.argv[3])
from hdl_core.data import archives, uploads
n_files, size_mib, how = int(sys.argv[1]), int(sys.argv[2]), sys.argv[4]
from streamlit.runtime.uploaded_file_manager import UploadedFile, UploadedFileRec
files = [UploadedFile(UploadedFileRec(f"id{i}", f"photos/IMG_{i:04d}.png", "image/png",
                                      os.urandom(size_mib * 2**20)), None)
         for i in range(n_files)]
peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with tempfile.TemporaryDirectory() as root:
    os.environ["HDL_DATA_ROOT"] = root
    limits = uploads.UploadLimits(max_upload_bytes=2**40, max_total_bytes=2**40, min_free_bytes=0)
    if how == "copies":     # what the Data page did: getvalue() of each, stored as bytes
        pairs = [(f.name, f.getvalue()) for f in files]
        archives.save_uploads(pairs, __import__("pathlib").Path(root) / "up")
    else:
        uploads.store_files([(f.name, f) for f in files], "a" * 32, limits=limits)
peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"extra_peak_mib": (peak_after - peak_before) / 1024}))
"""


def run(how: str, n_files: int, size_mib: int) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, str(n_files), str(size_mib), str(ROOT), how],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["extra_peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_files, size_mib = (3, 50) if args.quick else (3, 150)
    rows, records = [], []
    for how, label in (("copies", "before: getvalue() of each"), ("chunks", "now: 1 MiB chunks")):
        extra = run(how, n_files, size_mib)
        rows.append([label, f"{n_files} × {size_mib} MiB", extra])
        records.append({"how": how, "files": n_files, "file_mib": size_mib, "extra_peak_mib": extra})
    print_table(["storing uploads", "uploaded", "peak RSS above the uploads (MiB)"], rows,
                title="Storing uploaded files")
    write_json("upload", {"machine": machine_info("numpy"), "runs": records})


if __name__ == "__main__":
    main()
