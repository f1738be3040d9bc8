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


def check_number_in(value, name: str, low: float, high: float, *, open_low: bool = False,
                    open_high: bool = False) -> float:
    """`value` as a float when it is a real number in the interval from `low` to `high`
    (`open_low` / `open_high`: that end excluded).

    Booleans and non-numbers are refused; the message names the parameter, the interval
    and the value.

    >>> check_number_in(0.7, "split", 0, 1, open_high=True)
    0.7
    >>> check_number_in(1, "split", 0, 1, open_high=True)
    Traceback (most recent call last):
    ...
    ValueError: split must be a number in [0, 1), got 1
    """
    if not isinstance(value, bool) and isinstance(value, (int, float, np.number)):
        number = float(value)
        if (low < number if open_low else low <= number) \
                and (number < high if open_high else number <= high):
            return number
    interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    raise ValueError(f"{name} must be a number in {interval}, got {value!r}")


# Class names are shown in legends, lists and file names: long enough for any real class,
# short enough that a map's legend stays a legend.
MAX_CLASS_NAME_LENGTH = 100


def class_name_problem(name: str) -> str | None:
    """Why `name` (already stripped) cannot be a class name, or None.

    >>> class_name_problem("cat") is None
    True
    >>> class_name_problem("x" * 101)
    'class names can be at most 100 characters; this one has 101 (xxxxxxxxxxxxxxxxxxxx…)'
    """
    if not name:
        return "class names cannot be empty"
    if len(name) > MAX_CLASS_NAME_LENGTH:
        return (f"class names can be at most {MAX_CLASS_NAME_LENGTH} characters; this one has "
                f"{len(name)} ({name[:20]}…)")
    if any(not character.isprintable() for character in name):
        return "class names cannot hold control characters (newlines, tabs, escapes)"
    return None
