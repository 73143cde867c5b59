"""Argument types for the command line: each parses one option value or says what it expected."""

from __future__ import annotations

import argparse
import math


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
