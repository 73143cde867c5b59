"""rnnkit: recurrent neural networks on NumPy with exact, hand-derived BPTT.

Layers with PyTorch's names and numbers (:class:`RNN`, :class:`LSTM`,
:class:`GRU`), a model (:class:`SequenceModel`), optimizers
(:mod:`rnnkit.optim`), a trainer (:class:`Trainer`), text data
(:mod:`rnnkit.data`), safe model files (:mod:`rnnkit.io`) and a command
line (``rnnkit --help``).
"""

from ._workspace import clear as empty_cache
from .cells.compiled import parallel
from .ctrnn import CTRNN, CTRNNModel
from .layers import Dropout, Embedding, Linear, OneHot
from .models import SequenceModel
from .recurrent import GRU, LSTM, RNN
from .recurrent_cells import GRUCell, LSTMCell, RNNCell
from .training import Trainer, TrainerConfig, TrainingError

__version__ = "0.1.0"

# subpackages loaded on first use (PEP 562): ``import rnnkit`` then
# ``rnnkit.datasets.load("digits")`` works without importing scikit-learn's estimators
# and the other heavier parts at ``import rnnkit``
_SUBMODULES = ("analysis", "data", "datasets", "estimators", "functional", "gradcheck", "io",
               "optim", "selection", "tasks")


def __getattr__(name):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))

__all__ = [
    "CTRNN",
    "GRU",
    "LSTM",
    "RNN",
    "CTRNNModel",
    "Dropout",
    "Embedding",
    "GRUCell",
    "LSTMCell",
    "Linear",
    "OneHot",
    "RNNCell",
    "SequenceModel",
    "Trainer",
    "TrainerConfig",
    "TrainingError",
    "__version__",
    "empty_cache",
    "parallel",
]
