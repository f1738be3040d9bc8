"""Where work is kept: the SQLite store, array files, the pipeline and the one label table.

Every module here reads or writes the workspace folder.
"""
from .schema import StoreError
from .store import StoredRun, Workspace

__all__ = ["Workspace", "StoredRun", "StoreError"]
