"""Per-family unrolls over time with their backward passes: RNN, LSTM, GRU, CTRNN.

Each function takes the input already projected by one GEMM over all steps
(``gx = x W_ih^T + b``), so the sequence layers and the single-step cells
share the same per-step math.
"""

from .ctrnn import CTRNNCache, ctrnn_backward, ctrnn_forward
from .gru import GRUCache, gru_backward, gru_forward
from .lstm import LSTMCache, lstm_backward, lstm_forward
from .rnn import RNNCache, rnn_backward, rnn_forward

__all__ = [
    "CTRNNCache",
    "GRUCache",
    "LSTMCache",
    "RNNCache",
    "ctrnn_backward",
    "ctrnn_forward",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "rnn_backward",
    "rnn_forward",
]
