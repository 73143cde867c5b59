"""The bookkeeping every layer and model shares (micrograd's ``Module`` idea).

A module holds ``params`` and ``grads``: dicts of ndarrays with the same keys
and shapes. Gradients only accumulate (``+=``), so ``zero_grad`` resets them.
"""

from __future__ import annotations

import numpy as np


class Module:
    """``params``/``grads`` dicts and what every layer and model does with them."""

    params: dict
    grads: dict

    def zero_grad(self):
        """Set every gradient to zero, in place (the arrays stay the same objects)."""
        for g in self.grads.values():
            g.fill(0.0)

    def state_dict(self):
        """Copies of the parameters, keyed like ``params``."""
        return {k: v.copy() for k, v in self.params.items()}

    def num_parameters(self):
        """Total number of scalar parameters."""
        return int(sum(p.size for p in self.params.values()))

    def load_state_dict(self, state_dict):
        """Copy arrays into the parameters in place; every key must match.

        Every array is checked (name, shape, float dtype, finite values)
        before any is copied, so a refused state dict leaves the module as it was.

        Raises
        ------
        ValueError
            Naming the missing, unexpected, mis-shaped, non-float or non-finite entries.
        """
        missing = sorted(set(self.params) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(self.params))
        arrays = {k: np.asarray(v) for k, v in state_dict.items() if k in self.params}
        bad = [f"{k}: expected {self.params[k].shape}, got {a.shape}"
               for k, a in arrays.items() if a.shape != self.params[k].shape]
        bad += [f"{k}: expected a float array, got dtype {a.dtype}"
                for k, a in arrays.items() if a.dtype.kind != "f"]
        bad += [f"{k}: contains NaN or infinite values"
                for k, a in arrays.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]
        if missing or unexpected or bad:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected {', '.join(unexpected)}")
            parts += bad
            raise ValueError("state_dict does not match the model: " + "; ".join(parts))
        for k, a in arrays.items():
            self.params[k][...] = a
        return self
