"""Real data sets that load offline: ``rnnkit.datasets.load("digits")`` and friends.

A short name for :mod:`rnnkit.data.datasets` (the implementation and its docs).
"""

from .data.datasets import *
from .data.datasets import __all__  # noqa: F401
