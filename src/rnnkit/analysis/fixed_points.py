r"""Fixed points of a trained recurrent network and their stability.

For a constant input ``u``, one step of a network is a map ``s -> F(s, u)`` of
its state ``s`` (``h`` for RNN, GRU and CTRNN; ``[h, c]`` for LSTM). Its fixed
and slow points organize the dynamics (Sussillo & Barak 2013): a 3-bit
flip-flop network stores its 8 memories as stable fixed points at the
corners of a cube, with saddle points between them. They are the minima of

.. math::
    q(s) = \tfrac12 \|F(s) - s\|^2, \qquad
    \nabla q(s) = (J(s) - I)^T (F(s) - s), \qquad J = \partial F / \partial s,

found here, as in FixedPointFinder (Golub & Sussillo 2018), from many states
sampled on the network's own trajectories plus noise. The default optimizer
is a batched Levenberg-Marquardt iteration on ``F(s) - s = 0`` (NumPy only,
quadratic convergence; it finds saddles as readily as attractors);
``method='lbfgs'`` minimizes each candidate's ``q`` with SciPy's L-BFGS-B
and the same exact gradient. Then the finder drops candidates with ``q`` above a threshold
(slow points that are not fixed points), merges duplicates closer than
``tol_unique``, drops outliers far from the sampled states, and classifies
each point by the eigenvalues ``lambda`` of ``J`` (a discrete-time map):

- stable: every ``|lambda| < 1``;
- unstable: every ``|lambda| > 1``;
- saddle: some of each (``n_unstable`` counts the expanding directions).

The Jacobians are exact formulas per cell family (see each ``*Step`` class),
computed from the post-activation values the cells' own forward functions
store.

References
----------
Sussillo & Barak (2013), Opening the black box: low-dimensional dynamics in
high-dimensional recurrent neural networks, Neural Comput. 25(3): 626-649.
Golub & Sussillo (2018), FixedPointFinder: a Tensorflow toolbox for
identifying and characterizing fixed points in recurrent neural networks,
J. Open Source Softw. 3(31): 1003.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_generator, check_float, check_int
from ..cells.ctrnn import ctrnn_forward, rate, rate_grad
from ..cells.gru import gru_forward
from ..cells.lstm import lstm_forward
from ..cells.rnn import activation_grad, rnn_forward
from ._model import as_model_input, evaluating, recurrent_layer

__all__ = [
    "CTRNNStep",
    "FixedPointFinder",
    "FixedPoints",
    "GRUStep",
    "LSTMStep",
    "RNNStep",
    "StepMap",
    "find_fixed_points",
    "sample_states",
    "step_map",
    "trajectory_states",
]

KINDS = ("stable", "saddle", "unstable")


def _f64(a):
    return None if a is None else np.array(a, dtype=np.float64)


class StepMap:
    """One step ``s -> F(s)`` of a recurrent network at a constant input.

    Attributes
    ----------
    size : int
        n, the dimension of the state.
    """

    size: int

    def __call__(self, s):
        """F(s): (N, n) -> (N, n)."""
        raise NotImplementedError

    def jacobian(self, s):
        """``dF/ds`` at each state: (N, n) -> (N, n, n), ``J[k, i, j] = dF_i / ds_j``."""
        raise NotImplementedError

    def states(self, internals):
        """The states of a trajectory, (T, B, n), from a layer's ``internals()``."""
        return internals["h_l0"]

    def _check(self, s):
        s = np.asarray(s, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != self.size:
            raise ValueError(f"{type(self).__name__}: Expected states of shape (N, {self.size}), "
                             f"got {s.shape}")
        return s


class RNNStep(StepMap):
    """Elman step ``h' = f(W_ih u + b_ih + W_hh h + b_hh)``.

    Jacobian: ``J = diag(f'(a)) W_hh``, with ``f'`` from the output ``h'``
    (``1 - h'^2`` for tanh, ``1[h' > 0]`` for relu, ``h'(1 - h')`` for sigmoid).

    Parameters
    ----------
    weight_ih : ndarray (H, D)
    weight_hh : ndarray (H, H)
    bias : ndarray (H,) or None
        ``b_ih + b_hh``.
    nonlinearity : {'tanh', 'relu', 'sigmoid'}
    input : ndarray (D,)
        The constant input ``u``.
    """

    def __init__(self, weight_ih, weight_hh, bias, nonlinearity, input):
        self.w_hh = _f64(weight_hh)
        self.size = self.w_hh.shape[0]
        self.gx = _f64(weight_ih) @ _f64(input)  # (H,)
        if bias is not None:
            self.gx += _f64(bias)
        self.nonlinearity = nonlinearity

    def __call__(self, s):
        s = self._check(s)
        gx = np.broadcast_to(self.gx, (1,) + s.shape).copy()  # (1, N, H)
        return rnn_forward(gx, s, self.w_hh, self.nonlinearity).h[1]

    def jacobian(self, s):
        h1 = self(s)
        fp = activation_grad(h1, self.nonlinearity)  # (N, H)
        return fp[:, :, None] * self.w_hh  # (N, H, H)


class GRUStep(StepMap):
    """GRU step (PyTorch's variant) at a constant input.

    With ``a_r, a_z`` the gate pre-activations, ``hn = W_hn h + b_hn``::

        dz/dh  = diag(z (1 - z)) W_hz           dr/dh = diag(r (1 - r)) W_hr
        dn/dh  = diag(1 - n^2) (diag(hn) dr/dh + diag(r) W_hn)
        J      = diag(z) + diag(h - n) dz/dh + diag(1 - z) dn/dh

    Parameters
    ----------
    weight_ih : ndarray (3H, D)
    weight_hh : ndarray (3H, H)
    bias_ih, bias_hh : ndarray (3H,) or None
    input : ndarray (D,)
    """

    def __init__(self, weight_ih, weight_hh, bias_ih, bias_hh, input):
        self.w_hh = _f64(weight_hh)
        H = self.size = self.w_hh.shape[1]
        self.gx = _f64(weight_ih) @ _f64(input)  # (3H,)
        self.b_hn = None
        if bias_ih is not None:
            self.gx += _f64(bias_ih)
            self.gx[: 2 * H] += _f64(bias_hh)[: 2 * H]
            self.b_hn = _f64(bias_hh)[2 * H:]

    def _cache(self, s):
        s = self._check(s)
        gx = np.broadcast_to(self.gx, (1, s.shape[0], self.gx.size)).copy()  # (1, N, 3H)
        return gru_forward(gx, s, self.w_hh, self.b_hn)

    def __call__(self, s):
        return self._cache(s).h[1]

    def jacobian(self, s):
        c = self._cache(s)
        H = self.size
        r, z, n, hn, h = c.r[0], c.z[0], c.n[0], c.hn[0], c.h[0]  # (N, H) each
        w_r, w_z, w_n = self.w_hh[:H], self.w_hh[H: 2 * H], self.w_hh[2 * H:]
        dz = (z * (1 - z))[:, :, None] * w_z  # (N, H, H)
        dr = (r * (1 - r))[:, :, None] * w_r
        dn = (1 - n**2)[:, :, None] * (hn[:, :, None] * dr + r[:, :, None] * w_n)
        J = (h - n)[:, :, None] * dz + (1 - z)[:, :, None] * dn
        J[:, np.arange(H), np.arange(H)] += z
        return J


class LSTMStep(StepMap):
    """LSTM step on the joint state ``s = [h, c]`` (n = 2H) at a constant input.

    With ``dX/dh = diag(X'(a)) W_hX`` for each gate (``X' = X (1 - X)`` for
    sigmoids, ``1 - g^2`` for g) and ``c' = f c + i g``, ``h' = o tanh(c')``::

        dc'/dh = diag(c) df/dh + diag(g) di/dh + diag(i) dg/dh,   dc'/dc = diag(f)
        dh'/dh = diag(tanh c') do/dh + diag(o (1 - tanh^2 c')) dc'/dh
        dh'/dc = diag(o (1 - tanh^2 c') f)
        J = [[dh'/dh, dh'/dc], [dc'/dh, dc'/dc]]

    Parameters
    ----------
    weight_ih : ndarray (4H, D)
    weight_hh : ndarray (4H, H)
    bias_ih, bias_hh : ndarray (4H,) or None
    input : ndarray (D,)
    """

    def __init__(self, weight_ih, weight_hh, bias_ih, bias_hh, input):
        self.w_hh = _f64(weight_hh)
        self.H = self.w_hh.shape[1]
        self.size = 2 * self.H
        self.gx = _f64(weight_ih) @ _f64(input)  # (4H,)
        if bias_ih is not None:
            self.gx += _f64(bias_ih) + _f64(bias_hh)

    def _cache(self, s):
        s = self._check(s)
        H = self.H
        gx = np.broadcast_to(self.gx, (1, s.shape[0], self.gx.size)).copy()  # (1, N, 4H)
        return lstm_forward(gx, s[:, :H], s[:, H:], self.w_hh)

    def __call__(self, s):
        c = self._cache(s)
        return np.concatenate([c.h[1], c.c[1]], axis=-1)

    def jacobian(self, s):
        cache = self._cache(s)
        H = self.H
        i, f, g, o = cache.i[0], cache.f[0], cache.g[0], cache.o[0]  # (N, H)
        c0, tc = cache.c[0], cache.tanh_c[0]
        w = self.w_hh
        di = (i * (1 - i))[:, :, None] * w[:H]  # (N, H, H)
        df = (f * (1 - f))[:, :, None] * w[H: 2 * H]
        dg = (1 - g**2)[:, :, None] * w[2 * H: 3 * H]
        do = (o * (1 - o))[:, :, None] * w[3 * H:]
        dc_dh = c0[:, :, None] * df + g[:, :, None] * di + i[:, :, None] * dg
        k = o * (1 - tc**2)  # (N, H)
        J = np.zeros((c0.shape[0], 2 * H, 2 * H))
        J[:, :H, :H] = tc[:, :, None] * do + k[:, :, None] * dc_dh
        d = np.arange(H)
        J[:, d, H + d] = k * f
        J[:, H:, :H] = dc_dh
        J[:, H + d, H + d] = f
        return J

    def states(self, internals):
        return np.concatenate([internals["h_l0"], internals["c_l0"]], axis=-1)


class CTRNNStep(StepMap):
    """Continuous-time RNN Euler step (noise off) at a constant input.

    ``h' = (1 - alpha) h + alpha (W_rec f(h) + W_in u + b)``, so
    ``J = (1 - alpha) I + alpha W_rec diag(f'(h))`` (effective weights).

    Parameters
    ----------
    weight_in, weight_rec : ndarray (H, D), (H, H)
        Effective weights (:meth:`rnnkit.ctrnn.CTRNN.effective_weights`).
    bias : ndarray (H,)
    alpha : float
    activation : {'relu', 'tanh'}
    input : ndarray (D,)
    """

    def __init__(self, weight_in, weight_rec, bias, alpha, activation, input):
        self.alpha = float(alpha)
        self.w_rec = _f64(weight_rec)
        self.size = self.w_rec.shape[0]
        self.gx = self.alpha * (_f64(weight_in) @ _f64(input) + _f64(bias))  # (H,)
        self.activation = activation

    def __call__(self, s):
        s = self._check(s)
        gx = np.broadcast_to(self.gx, (1,) + s.shape).copy()  # (1, N, H)
        return ctrnn_forward(gx, s, self.alpha * self.w_rec, self.alpha, self.activation).h[1]

    def jacobian(self, s):
        s = self._check(s)
        fp = rate_grad(rate(s, self.activation), self.activation)  # (N, H)
        J = self.alpha * self.w_rec[None] * fp[:, None, :]  # (N, H, H)
        d = np.arange(self.size)
        J[:, d, d] += 1.0 - self.alpha
        return J


def step_map(model, input=None):
    """The step map of a model's recurrent layer at a constant input.

    Parameters
    ----------
    model : SequenceModel, CTRNNModel, or a layer (RNN, GRU, LSTM, CTRNN)
        One layer, one direction, no LSTM projection.
    input : array_like (D,), optional
        The constant input the layer sees (after the model's encoder); zeros by default.

    Returns
    -------
    RNNStep, GRUStep, LSTMStep or CTRNNStep
    """
    rnn = recurrent_layer(model)
    D = rnn.input_size
    u = np.zeros(D) if input is None else np.asarray(input, dtype=np.float64)
    if u.shape != (D,):
        raise ValueError(f"step_map: Expected input of shape ({D},), got {u.shape}")
    if type(rnn).__name__ == "CTRNN":
        eff = rnn.effective_weights()
        return CTRNNStep(eff["weight_ih"], eff["weight_hh"], rnn.params["bias"], rnn.alpha,
                         rnn.activation, u)
    if rnn.num_layers != 1 or rnn.bidirectional or getattr(rnn, "proj_size", 0):
        raise ValueError("fixed points are defined for a single-layer, unidirectional layer "
                         f"without projection, got {rnn!r}")
    p = rnn.params
    b_ih, b_hh = p.get("bias_ih_l0"), p.get("bias_hh_l0")
    if rnn.mode == "RNN":
        bias = None if b_ih is None else b_ih + b_hh
        return RNNStep(p["weight_ih_l0"], p["weight_hh_l0"], bias, rnn.nonlinearity, u)
    if rnn.mode == "GRU":
        return GRUStep(p["weight_ih_l0"], p["weight_hh_l0"], b_ih, b_hh, u)
    return LSTMStep(p["weight_ih_l0"], p["weight_hh_l0"], b_ih, b_hh, u)


def trajectory_states(model, x, step=None, *, state=None, lengths=None):
    """The states (T, B, n) a model visits on the inputs ``x``, in the step map's coordinates.

    ``[h, c]`` for LSTM; ``h`` otherwise (for a CTRNN the state, not the rate).
    """
    step = step_map(model) if step is None else step
    rnn = recurrent_layer(model)
    x = as_model_input(model, x)
    with evaluating(model):
        model.forward(x, state, lengths=lengths)
        internals = rnn.internals()
    return np.asarray(step.states(internals), dtype=np.float64)


def sample_states(states, n_samples, *, noise_std=0.0, rng=None):
    """Draw starting points for the finder from visited states, plus Gaussian noise.

    Parameters
    ----------
    states : ndarray (..., n)
        E.g. :func:`trajectory_states`; all leading axes are samples.
    n_samples : int
    noise_std : float, default=0.0
        Standard deviation of the noise added to each coordinate.
    rng : int, Generator or None

    Returns
    -------
    ndarray (n_samples, n)
    """
    X = np.asarray(states, dtype=np.float64)
    X = X.reshape(-1, X.shape[-1])
    n_samples = check_int(n_samples, "n_samples", minimum=1)
    noise_std = check_float(noise_std, "noise_std", low=0.0)
    rng = as_generator(rng)
    idx = rng.choice(X.shape[0], n_samples, replace=n_samples > X.shape[0])
    return X[idx] + noise_std * rng.standard_normal((n_samples, X.shape[1]))


@dataclass
class FixedPoints:
    """Fixed points found by :class:`FixedPointFinder`, with their stability.

    Attributes
    ----------
    states : ndarray (K, n)
        The fixed points ``s*`` (FixedPointFinder's ``xstar``).
    q : ndarray (K,)
        ``0.5 ||F(s*) - s*||^2``.
    jacobians : ndarray (K, n, n)
    eigenvalues : ndarray (K, n) of complex
        Of each Jacobian, by decreasing modulus.
    kinds : ndarray (K,) of str
        ``'stable'``, ``'saddle'`` or ``'unstable'``.
    initial_states : ndarray (K, n)
        The starting point each was reached from.
    n_initial : int
        Starting points tried.
    n_converged : int
        Of those, how many reached ``q <= q_threshold`` (before merging duplicates).
    """

    states: np.ndarray
    q: np.ndarray
    jacobians: np.ndarray
    eigenvalues: np.ndarray
    kinds: np.ndarray
    initial_states: np.ndarray
    n_initial: int = 0
    n_converged: int = 0

    def __len__(self):
        return int(self.states.shape[0])

    @property
    def n_unstable(self):
        """(K,) number of eigenvalues with modulus > 1 (expanding directions)."""
        return (np.abs(self.eigenvalues) > 1.0).sum(axis=1)

    def counts(self):
        """``{'stable': ..., 'saddle': ..., 'unstable': ...}``."""
        return {k: int(np.sum(self.kinds == k)) for k in KINDS}

    def select(self, which):
        """The subset given by a boolean mask, indices, or a kind name."""
        if isinstance(which, str):
            if which not in KINDS:
                raise ValueError(f"kind must be one of {KINDS}, got {which!r}")
            which = self.kinds == which
        return FixedPoints(self.states[which], self.q[which], self.jacobians[which],
                           self.eigenvalues[which], self.kinds[which],
                           self.initial_states[which], self.n_initial, self.n_converged)

    def __repr__(self):
        c = self.counts()
        return (f"FixedPoints({len(self)} points: {c['stable']} stable, {c['saddle']} saddle, "
                f"{c['unstable']} unstable; from {self.n_initial} starts)")


def classify(eigenvalues):
    """Kinds from eigenvalues (K, n) of a discrete-time map: stable / saddle / unstable."""
    mod = np.abs(np.asarray(eigenvalues))
    kinds = np.full(mod.shape[0], "saddle", dtype="<U8")
    kinds[(mod < 1.0).all(axis=1)] = "stable"
    kinds[(mod > 1.0).all(axis=1)] = "unstable"
    return kinds


class FixedPointFinder:
    """Find and classify fixed points of a step map (FixedPointFinder-style).

    Parameters
    ----------
    step : StepMap
        E.g. ``step_map(model)``.
    method : {'lm', 'lbfgs'}, default='lm'
        ``'lm'``: batched Levenberg-Marquardt on ``F(s) - s = 0`` (NumPy);
        ``'lbfgs'``: SciPy's L-BFGS-B on each candidate's ``q`` with the
        exact gradient (needs scipy; slower, one call per candidate).
    max_iter : int, default=200
    tol_q : float, default=1e-20
        A candidate stops once its q is this small.
    q_threshold : float, default=1e-12
        Candidates that end with a larger q are slow points, not fixed
        points, and are dropped.
    tol_unique : float, default=1e-3
        Points closer than this (Euclidean) are the same point; the one with
        the smaller q is kept.
    outlier_distance_scale : float or None, default=10.0
        Drop points farther from the centroid of the starting points than
        this many times the starting points' mean distance to it; None keeps all.

    Examples
    --------
    Two bistable tanh units (``h' = tanh(2 h)``) have 4 stable points, 4
    saddles and an unstable point at the origin:

    >>> import numpy as np
    >>> from rnnkit.analysis.fixed_points import FixedPointFinder, RNNStep
    >>> step = RNNStep(np.zeros((2, 1)), 2 * np.eye(2), None, "tanh", np.zeros(1))
    >>> grid = np.stack(np.meshgrid(*[np.linspace(-1.2, 1.2, 7)] * 2), -1).reshape(-1, 2)
    >>> FixedPointFinder(step).find(grid).counts()
    {'stable': 4, 'saddle': 4, 'unstable': 1}
    """

    def __init__(self, step, *, method="lm", max_iter=200, tol_q=1e-20, q_threshold=1e-12,
                 tol_unique=1e-3, outlier_distance_scale=10.0):
        if not isinstance(step, StepMap):
            raise TypeError(f"step must be a StepMap (see step_map), got {type(step).__name__}")
        if method not in ("lm", "lbfgs"):
            raise ValueError(f"method must be one of 'lm', 'lbfgs', got {method!r}")
        self.step = step
        self.method = method
        self.max_iter = check_int(max_iter, "max_iter", minimum=1)
        self.tol_q = check_float(tol_q, "tol_q", low=0.0)
        self.q_threshold = check_float(q_threshold, "q_threshold", low=0.0)
        self.tol_unique = check_float(tol_unique, "tol_unique", low=0.0)
        self.outlier_distance_scale = None if outlier_distance_scale is None else check_float(
            outlier_distance_scale, "outlier_distance_scale", low=0.0, low_open=True)

    def q(self, states):
        """``q`` and its exact gradient ``(J - I)^T (F(s) - s)`` at each state.

        Parameters
        ----------
        states : ndarray (N, n)

        Returns
        -------
        q : ndarray (N,)
        grad : ndarray (N, n)
        """
        s = self.step._check(states)
        e = self.step(s) - s  # (N, n)
        J = self.step.jacobian(s)  # (N, n, n)
        grad = np.einsum("nij,ni->nj", J, e) - e  # (J - I)^T e
        return 0.5 * np.square(e).sum(axis=1), grad

    # ---------------------------------------------------------------- optimizers
    def _lm(self, s):
        step, n = self.step, self.step.size
        eye = np.eye(n)
        e = step(s) - s
        q = 0.5 * np.square(e).sum(axis=1)
        lam = np.full(s.shape[0], 1e-3)
        active = q > self.tol_q
        it = 0
        while it < self.max_iter and active.any():
            idx = np.flatnonzero(active)
            A = step.jacobian(s[idx])  # (M, n, n)
            A[:, np.arange(n), np.arange(n)] -= 1.0  # J - I
            At = A.transpose(0, 2, 1)
            g = (At @ e[idx][:, :, None])[:, :, 0]  # (M, n) gradient of q
            M = At @ A + lam[idx, None, None] * eye  # (M, n, n)
            delta = -np.linalg.solve(M, g[:, :, None])[:, :, 0]
            s_new = s[idx] + delta
            e_new = step(s_new) - s_new
            q_new = 0.5 * np.square(e_new).sum(axis=1)
            better = q_new < q[idx]
            acc = idx[better]
            s[acc], e[acc], q[acc] = s_new[better], e_new[better], q_new[better]
            lam[acc] = np.maximum(lam[acc] / 3.0, 1e-12)
            lam[idx[~better]] *= 4.0
            # stop when converged, or stuck at a minimum of q that is not a root (slow point)
            active = (q > self.tol_q) & (lam < 1e8)
            it += 1
        return s, q, it

    def _lbfgs(self, s):
        try:
            from scipy.optimize import minimize
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("method='lbfgs' needs scipy: pip install scipy "
                              "(or use the default method='lm')") from None

        def fun(flat):
            q, grad = self.q(flat[None])
            return float(q[0]), grad[0]

        q = np.empty(s.shape[0])
        n_iter = 0
        for k in range(s.shape[0]):  # each candidate on its own, as FixedPointFinder does
            res = minimize(fun, s[k], jac=True, method="L-BFGS-B",
                           options={"maxiter": self.max_iter, "ftol": self.tol_q,
                                    "gtol": 1e-15, "maxcor": 20})
            s[k], q[k] = res.x, res.fun
            n_iter = max(n_iter, int(res.nit))
        return s, q, n_iter

    # --------------------------------------------------------------------- find
    def find(self, initial_states):
        """Optimize from every starting state, then filter, merge and classify.

        Parameters
        ----------
        initial_states : ndarray (N, n)
            E.g. from :func:`sample_states`.

        Returns
        -------
        FixedPoints
        """
        init = self.step._check(initial_states)
        if init.shape[0] == 0:
            raise ValueError("find: initial_states is empty")
        if not np.isfinite(init).all():
            raise ValueError("find: initial_states contain NaN or infinite values")
        s = init.copy()
        with np.errstate(over="ignore", invalid="ignore"):
            s, q, self.n_iter_ = (self._lm if self.method == "lm" else self._lbfgs)(s)
        ok = np.isfinite(q) & (q <= self.q_threshold)
        n_converged = int(ok.sum())
        s, q, start = s[ok], q[ok], init[ok]
        # merge duplicates, keeping the best of each cluster
        order = np.argsort(q, kind="stable")
        keep = []
        for i in order:
            if not keep or np.min(np.linalg.norm(s[keep] - s[i], axis=1)) > self.tol_unique:
                keep.append(i)
        keep = np.array(keep, dtype=np.int64)
        s, q, start = s[keep], q[keep], start[keep]
        if self.outlier_distance_scale is not None and len(s):
            centre = init.mean(axis=0)
            scale = np.mean(np.linalg.norm(init - centre, axis=1))
            if scale > 0:
                near = np.linalg.norm(s - centre, axis=1) <= self.outlier_distance_scale * scale
                s, q, start = s[near], q[near], start[near]
        n = self.step.size
        if len(s):
            J = self.step.jacobian(s)
            eig = np.linalg.eigvals(J)
            eig = np.take_along_axis(eig, np.argsort(-np.abs(eig), axis=1, kind="stable"), 1)
        else:
            J, eig = np.zeros((0, n, n)), np.zeros((0, n), complex)
        return FixedPoints(s, q, J, eig, classify(eig), start, init.shape[0], n_converged)


def find_fixed_points(model, x, *, input=None, n_samples=256, noise_std=0.05, rng=None,
                      **finder_kwargs):
    """Fixed points of a model's recurrent layer, started from its own trajectories.

    Parameters
    ----------
    model : SequenceModel, CTRNNModel or a recurrent layer
    x : ndarray (T, B, D) (or token ids)
        Inputs whose trajectories give the starting states.
    input : array_like (D,), optional
        The constant input of the step map (zeros by default: the dynamics
        between stimuli).
    n_samples : int, default=256
    noise_std : float, default=0.05
    rng : int, Generator or None
    **finder_kwargs
        Passed to :class:`FixedPointFinder`.

    Returns
    -------
    fixed_points : FixedPoints
    states : ndarray (T, B, n)
        The trajectories (for plotting).
    """
    step = step_map(model, input)
    states = trajectory_states(model, x, step)
    init = sample_states(states, n_samples, noise_std=noise_std, rng=rng)
    return FixedPointFinder(step, **finder_kwargs).find(init), states
