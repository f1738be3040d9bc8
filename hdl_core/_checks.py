"""Validation shared at the doors of hdl_core: one check per kind of value."""
from __future__ import annotations

import numpy as np


def check_positive_int(value, name: str, *, allow_zero: bool = False,
                       error: type[Exception] = ValueError) -> int:
    """`value` as an int when it is a whole number >= 1 (>= 0 with `allow_zero`).

    Booleans and floats are refused; the message names the parameter and the value.

    >>> check_positive_int(3, "k")
    3
    >>> check_positive_int(0, "k")
    Traceback (most recent call last):
    ...
    ValueError: k must be a positive integer, got 0
    """
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        need = "a non-negative" if allow_zero else "a positive"
        raise error(f"{name} must be {need} integer, got {value!r}")
    return int(value)
