"""Pure array functions: activations with their derivatives, losses, sampling."""

from .activations import (
    log_softmax,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    tanh,
    tanh_grad,
)
from .losses import cross_entropy, mse_loss
from .sampling import sample_logits

__all__ = [
    "cross_entropy", "log_softmax", "mse_loss", "relu", "relu_grad", "sample_logits",
    "sigmoid", "sigmoid_grad", "softmax", "tanh", "tanh_grad",
]
