"""Argument types for the command line: each parses one option value or says what it expected."""

from __future__ import annotations

import argparse
import math
import os


def _parse(text, convert, ok, expected):
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
    return value


def positive_int(text):
    return _parse(text, int, lambda v: v >= 1, "a positive integer")


def non_negative_int(text):
    return _parse(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text):
    return _parse(text, float, lambda v: v > 0 and math.isfinite(v), "a positive finite number")


def non_negative_float(text):
    return _parse(text, float, lambda v: v >= 0 and math.isfinite(v), "a finite number >= 0")


def fraction(text):
    return _parse(text, float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def validation_fraction(text):
    """The held-out part of the data: more than nothing, at most half, so training keeps most."""
    return _parse(text, float, lambda v: 0 < v <= 0.5, "a fraction in (0, 0.5]")


def positive_int_list(text):
    """Comma-separated integers >= 1, e.g. ``8,16,32``; returns them in order, repeats dropped."""
    expected = "comma-separated integers >= 1"
    values = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r} (an empty item)")
        try:
            value = int(item)
        except ValueError:
            value = None
        if value is None or value < 1:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r} (item {item!r})")
        values.append(value)
    return list(dict.fromkeys(values))


def check_output_file(path, option):
    """Before any work: ``path`` can be written as a file. Returns it.

    Raises
    ------
    ValueError
        If ``path`` is a folder, or its folder does not exist or is not writable.
    """
    if os.path.isdir(path):
        raise ValueError(f"{option} {path} is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{option} {path}: the folder {folder} is not writable")
    return path


def make_output_folder(path, option, holds=""):
    """Before any work: create the folder ``path`` if needed and check it is writable.

    Raises
    ------
    ValueError
        If ``path`` is a file, cannot be created, or is not writable.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{option} {path} is a file; it must be a folder{holds}")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot create the folder ({exc.strerror})") from None
    if not os.access(path, os.W_OK):
        raise ValueError(f"{option} {path}: the folder is not writable")
    return path
