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
