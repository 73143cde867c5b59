"""Continuous-time rate networks as in computational neuroscience: ``CTRNN`` and ``CTRNNModel``.

:class:`CTRNN` is the recurrent layer (states, rates, Dale's law,
connectivity masks, noise, a trainable initial state) with the interface of
the other sequence layers (``forward``/``backward``/``params``/``grads``/
``internals``). :class:`CTRNNModel` adds the read-out from the rates (with
Dale's law: only excitatory units project out, as in PsychRNN), the masked
mean squared error of the cognitive tasks in :mod:`rnnkit.tasks` and the L2
penalties on rates and weights, and is what :class:`rnnkit.Trainer` trains.

Shape letters: T steps, B batch, D input size, H units, C outputs.
"""

from __future__ import annotations

import numpy as np

from ._module import Module
from ._validation import (
    as_dtype,
    as_float_array,
    as_generator,
    check_choice,
    check_float,
    check_int,
    check_shape,
)
from .cells.ctrnn import ACTIVATIONS, ctrnn_backward, ctrnn_forward
from .functional import mse_loss
from .recurrent import _check_lengths, lengths_to_mask

__all__ = ["CTRNN", "CTRNNModel"]


def _connectivity(mask, shape, name, dtype):
    """Return a 0/1 float mask of ``shape`` (ones when None); raise naming ``name``."""
    if mask is None:
        return np.ones(shape, dtype)
    m = np.asarray(mask)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of 0/1 (or booleans), got dtype {m.dtype}")
    if m.shape != tuple(shape):
        raise ValueError(f"{name}: Expected shape {tuple(shape)}, got {m.shape}")
    if not np.isin(m, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 (no connection) and 1 (connection)")
    return m.astype(dtype)


def _spectral_radius(w):
    return float(np.max(np.abs(np.linalg.eigvals(w.astype(np.float64))), initial=0.0))


class CTRNN(Module):
    r"""Continuous-time recurrent layer (leaky rate network), as in PsychRNN.

    .. math::
        r_t = f(h_t), \qquad
        h_{t+1} = (1 - \alpha) h_t + \alpha (W_{rec} r_t + W_{in} u_t + b)
                  + \sqrt{2 \alpha \sigma^2}\, \xi_t, \qquad \alpha = dt / \tau

    with :math:`\xi_t \sim N(0, I)`, ``f`` the rate function (relu or tanh)
    and :math:`\sigma` = ``noise_std``. This is the Euler discretization of
    :math:`\tau \dot h = -h + W_{rec} f(h) + W_{in} u + b + \text{noise}`.

    Parameters
    ----------
    input_size : int
        D, input channels.
    hidden_size : int
        H, units.
    dt : float, default=10.0
        Euler step (ms).
    tau : float, default=100.0
        Time constant of the units (ms); ``alpha = dt / tau`` must be in (0, 1].
    noise_std : float, default=0.0
        :math:`\sigma`, the recurrent noise (state units); it is added in
        training mode, or when ``forward(..., noise=True)``.
    activation : {'relu', 'tanh'}, default='relu'
        The rate function ``f``.
    dale_ratio : float in (0, 1], optional
        Dale's law: the first ``round(dale_ratio * H)`` units are excitatory
        (every outgoing weight >= 0), the rest inhibitory (<= 0); inputs are
        excitatory (``W_in >= 0``). None: no sign constraint.
    input_connectivity : array_like (H, D) of 0/1, optional
        Which input weights exist (1) and which are absent (0).
    recurrent_connectivity : array_like (H, H) of 0/1, optional
        ``[i, j] = 1`` if unit ``j`` projects to unit ``i``.
    allow_self_connections : bool, default=True
        False zeroes the diagonal of the recurrent connectivity (no autapses).
    train_initial_state : bool, default=False
        If True, the initial state ``h0`` (H,) is a parameter, shared by all
        trials and trained (initialized to 0.1 + 0.01 N(0, 1), as PsychRNN);
        otherwise the initial state is zero unless ``hx`` is given.
    spectral_radius : float, default=1.1
        The initial effective recurrent matrix is scaled to this spectral radius.
    dtype : {np.float32, np.float64}, default=np.float32
    rng : int, numpy.random.Generator or None
        Seeds the initialization and the noise.

    Attributes
    ----------
    params : dict of str to ndarray
        The *raw* trainable arrays: ``weight_ih`` (H, D), ``weight_hh`` (H, H),
        ``bias`` (H,), and ``h0`` (H,) with ``train_initial_state``.
    grads : dict of str to ndarray
        Same keys and shapes: the exact gradients with respect to the raw
        arrays (through the absolute value and the masks).
    alpha : float
        ``dt / tau``.
    signs : ndarray (H,)
        +1 for excitatory and -1 for inhibitory units (all +1 without Dale's law).
    n_excitatory : int
        Number of excitatory units (H without Dale's law).

    Notes
    -----
    Effective weights, what the dynamics use (:meth:`effective_weights`), with
    :math:`M` the connectivity masks and :math:`D = \mathrm{diag}(s)` the
    signs (PsychRNN's ``Dale_rec``)::

        W_rec = (|W_hh| * M_rec) @ D         W_in = |W_ih| * M_in     (Dale's law)
        W_rec =  W_hh   * M_rec              W_in =  W_ih  * M_in     (otherwise)

    so column ``j`` of ``W_rec`` (the outgoing weights of unit ``j``) has the
    sign ``s_j`` whatever the raw values, and no optimizer step can break
    Dale's law. The gradient with respect to the raw weights is exact:
    ``dW_hh = (dW_rec @ D) * M_rec * sign(W_hh)`` (``sign(0) = 0``; masked
    entries are held at 0).

    Inputs: ``input`` (T, B, D) (or (T, D) unbatched); ``hx`` (1, B, H).
    Outputs: the rates ``r_1 .. r_T`` (T, B, H) and ``h_n`` (1, B, H), the
    state at each sequence's last valid step.

    The plain algorithm (what ``forward`` computes, with one GEMM for all
    steps' input projection)::

        h = h0
        for t in range(T):
            h = (1 - alpha) * h + alpha * (f(h) @ W_rec.T + u[t] @ W_in.T + b) + noise[t]
            output[t] = f(h)

    Initialization: ``W_ih`` from U(-1/sqrt(D), 1/sqrt(D)); ``W_hh`` Gaussian
    N(0, 1/H) (without Dale's law) or, with it, half-normal magnitudes with
    the inhibitory columns scaled by n_E / n_I so that excitation and
    inhibition balance (Song et al. 2016); then scaled so that the effective
    recurrent matrix has spectral radius ``spectral_radius``; ``b`` zero.

    References
    ----------
    Song, Yang & Wang (2016), Training excitatory-inhibitory recurrent neural
    networks for cognitive tasks: a simple and flexible framework, PLoS
    Comput. Biol. 12(2): e1004792. Ehrlich, Stone, Brandfonbrener, Atanasov &
    Murray (2021), PsychRNN: an accessible and flexible Python package for
    training recurrent neural network models on cognitive tasks, eNeuro 8(1).

    Examples
    --------
    >>> import numpy as np, rnnkit
    >>> from rnnkit.ctrnn import CTRNN
    >>> net = CTRNN(3, 20, dt=10, tau=100, dale_ratio=0.8, rng=0)
    >>> rates, h_n = net(np.ones((5, 2, 3), np.float32))
    >>> rates.shape, h_n.shape, net.n_excitatory
    ((5, 2, 20), (1, 2, 20), 16)
    """

    def __init__(self, input_size, hidden_size, *, dt=10.0, tau=100.0, noise_std=0.0,
                 activation="relu", dale_ratio=None, input_connectivity=None,
                 recurrent_connectivity=None, allow_self_connections=True,
                 train_initial_state=False, spectral_radius=1.1, dtype=np.float32, rng=None):
        self.input_size = check_int(input_size, "input_size", minimum=1)
        self.hidden_size = check_int(hidden_size, "hidden_size", minimum=1)
        self.dt = check_float(dt, "dt", low=0.0, low_open=True)
        self.tau = check_float(tau, "tau", low=0.0, low_open=True)
        if self.dt > self.tau:
            raise ValueError(f"alpha = dt / tau must be in (0, 1] for a stable Euler step, "
                             f"got dt={self.dt} and tau={self.tau} (alpha={self.dt / self.tau})")
        self.noise_std = check_float(noise_std, "noise_std", low=0.0)
        self.activation = check_choice(activation, "activation", ACTIVATIONS)
        if dale_ratio is not None:
            dale_ratio = check_float(dale_ratio, "dale_ratio", low=0.0, high=1.0, low_open=True)
        self.dale_ratio = dale_ratio
        self.allow_self_connections = bool(allow_self_connections)
        self.train_initial_state = bool(train_initial_state)
        self.spectral_radius = check_float(spectral_radius, "spectral_radius", low=0.0)
        self.dtype = as_dtype(dtype)
        self.rng = as_generator(rng)
        self.training = True
        H, D = self.hidden_size, self.input_size
        if dale_ratio is None:
            self.n_excitatory = H
        else:
            self.n_excitatory = round(dale_ratio * H)
            if self.n_excitatory < 1:
                raise ValueError(f"dale_ratio={dale_ratio} with hidden_size={H} leaves no "
                                 "excitatory unit; use a larger dale_ratio or more units")
        self.signs = np.ones(H, self.dtype)
        self.signs[self.n_excitatory:] = -1.0
        self.input_connectivity = _connectivity(input_connectivity, (H, D),
                                                "input_connectivity", self.dtype)
        self.recurrent_connectivity = _connectivity(recurrent_connectivity, (H, H),
                                                    "recurrent_connectivity", self.dtype)
        if not self.allow_self_connections:
            np.fill_diagonal(self.recurrent_connectivity, 0.0)
        self.params = self._init_params()
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._cache = None

    # ------------------------------------------------------------ parameters
    @property
    def alpha(self):
        """``dt / tau``."""
        return self.dt / self.tau

    @property
    def dale(self):
        """True if Dale's law constrains the signs."""
        return self.dale_ratio is not None

    def _init_params(self):
        H, D, rng = self.hidden_size, self.input_size, self.rng
        bound = 1.0 / np.sqrt(D)
        w_ih = rng.uniform(-bound, bound, (H, D)) * self.input_connectivity
        if self.dale:
            w_hh = np.abs(rng.standard_normal((H, H)))
            n_i = H - self.n_excitatory
            if n_i:
                w_hh[:, self.n_excitatory:] *= self.n_excitatory / n_i  # E/I balance
            eff = w_hh * self.recurrent_connectivity * self.signs
        else:
            w_hh = rng.standard_normal((H, H)) / np.sqrt(H)
            eff = w_hh * self.recurrent_connectivity
        w_hh = w_hh * self.recurrent_connectivity
        radius = _spectral_radius(eff)
        if radius > 0:
            w_hh *= self.spectral_radius / radius
        params = {"weight_ih": w_ih.astype(self.dtype), "weight_hh": w_hh.astype(self.dtype),
                  "bias": np.zeros(H, self.dtype)}
        if self.train_initial_state:
            params["h0"] = (0.1 + 0.01 * rng.standard_normal(H)).astype(self.dtype)
        return params

    def effective_weights(self):
        """The weights the dynamics use, after the masks and Dale's law.

        Returns
        -------
        dict
            ``weight_ih`` (H, D) and ``weight_hh`` (H, H) (see Notes of the class).
        """
        p = self.params
        if self.dale:
            return {"weight_ih": np.abs(p["weight_ih"]) * self.input_connectivity,
                    "weight_hh": np.abs(p["weight_hh"]) * self.recurrent_connectivity
                    * self.signs}
        return {"weight_ih": p["weight_ih"] * self.input_connectivity,
                "weight_hh": p["weight_hh"] * self.recurrent_connectivity}

    def accumulate_effective_grads(self, d_effective):
        """Add gradients given with respect to the effective weights to the raw ``grads``.

        Parameters
        ----------
        d_effective : dict
            ``weight_ih`` (H, D) and/or ``weight_hh`` (H, H): dL/d(effective weight).

        Notes
        -----
        ``dW_raw = dW_eff * M * sign(W_raw)`` (times the column signs ``s``
        for the recurrent matrix) with Dale's law, ``dW_eff * M`` without.
        """
        masks = {"weight_ih": self.input_connectivity, "weight_hh": self.recurrent_connectivity}
        for key, d in d_effective.items():
            d = d * masks[key]
            if self.dale:
                if key == "weight_hh":
                    d *= self.signs
                d *= np.sign(self.params[key])
            self.grads[key] += d

    def train(self, mode=True):
        """Training mode (noise on); returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode (noise off unless asked for); returns self."""
        return self.train(False)

    def __repr__(self):
        s = (f"CTRNN({self.input_size}, {self.hidden_size}, dt={self.dt:g}, tau={self.tau:g}, "
             f"activation={self.activation!r}")
        if self.noise_std:
            s += f", noise_std={self.noise_std:g}"
        if self.dale:
            s += f", dale_ratio={self.dale_ratio:g}"
        if not self.allow_self_connections:
            s += ", allow_self_connections=False"
        if self.train_initial_state:
            s += ", train_initial_state=True"
        return s + ")"

    # ------------------------------------------------------------------ forward
    def forward(self, input, hx=None, *, lengths=None, noise=None):
        """Run the network over a sequence.

        Parameters
        ----------
        input : ndarray (T, B, D), or (T, D) unbatched
        hx : ndarray (1, B, H) (or (1, H) unbatched), optional
            Initial state; default the trained ``h0`` (``train_initial_state``)
            or zeros.
        lengths : array_like of int (B,), optional
            Valid length of each sequence; padded steps keep the state.
        noise : bool, optional
            Add the recurrent noise (needs ``noise_std > 0``); default: in
            training mode only. The noise comes from ``self.rng``.

        Returns
        -------
        output : ndarray (T, B, H)
            The rates ``f(h_t)`` after each step; zero at padded steps.
        h_n : ndarray (1, B, H)
            The state after each sequence's last valid step.
        """
        name = "CTRNN"
        x = as_float_array(input, "input", self.dtype, ndims=(2, 3), owner=name)
        batched = x.ndim == 3
        if not batched:
            x = x[:, None, :]
        T, B, D = x.shape
        if D != self.input_size:
            raise ValueError(f"{name}: input.size(-1) must be equal to input_size. "
                             f"Expected {self.input_size}, got {D}")
        if T == 0 or B == 0:
            raise ValueError(f"{name}: input must have at least one step and one sequence, "
                             f"got shape {tuple(np.shape(input))}")
        H = self.hidden_size
        if hx is None:
            h0 = np.broadcast_to(self.params["h0"], (B, H)) if self.train_initial_state \
                else np.zeros((B, H), self.dtype)
        else:
            hx = as_float_array(hx, "hx", self.dtype, ndims=(3,) if batched else (2,),
                                owner=name)
            if not batched:
                hx = hx[:, None, :]
            check_shape(hx, (1, B, H), "hx" if batched else "hx (batched view)", name)
            h0 = hx[0]
        mask = None
        if lengths is not None:
            lengths = _check_lengths(np.atleast_1d(lengths), T, B, name)
            if lengths.min() < T:
                mask = lengths_to_mask(lengths, T)[:, :, None]  # (T, B, 1)
        eff = self.effective_weights()
        alpha = self.alpha
        x = np.ascontiguousarray(x)
        gx = (x.reshape(T * B, D) @ eff["weight_ih"].T).reshape(T, B, H)  # (T, B, H)
        gx += self.params["bias"]
        gx *= alpha
        if noise is None:
            noise = self.training
        if noise and self.noise_std > 0:
            scale = np.sqrt(2.0 * alpha) * self.noise_std
            gx += (scale * self.rng.standard_normal((T, B, H))).astype(self.dtype)
        w_rec_alpha = alpha * eff["weight_hh"]  # (H, H)
        cache = ctrnn_forward(gx, h0, w_rec_alpha, alpha, self.activation, mask)
        output = cache.r[1:].copy()  # (T, B, H)
        if mask is None:
            h_n = cache.h[-1][None].copy()
        else:
            output *= mask
            h_n = cache.h[lengths, np.arange(B)][None]  # state at step lengths[b]
        self._cache = {"cache": cache, "input": x, "w_rec_alpha": w_rec_alpha,
                       "weight_ih": eff["weight_ih"], "batched": batched, "mask": mask,
                       "hx_given": hx is not None, "lengths": lengths}
        if not batched:
            output, h_n = output[:, 0], h_n[:, 0]
        return output, h_n

    __call__ = forward

    def internals(self):
        """Per-step states and rates of the most recent ``forward``.

        Returns
        -------
        dict of str to ndarray (T, B, H)
            ``h_l0``: the state after each step; ``r_l0``: the rate ``f(h)``.
            Copies, in the input's time order.

        Raises
        ------
        RuntimeError
            If there is no forward pass whose cache is still held.
        """
        if self._cache is None:
            raise RuntimeError("CTRNN.internals: no forward pass is cached "
                               "(call it after forward and before backward)")
        c = self._cache["cache"]
        return {"h_l0": c.h[1:].copy(), "r_l0": c.r[1:].copy()}

    # ----------------------------------------------------------------- backward
    def backward(self, d_output, d_hx=None):
        """Backpropagate through time; accumulate the raw parameters' gradients.

        Parameters
        ----------
        d_output : ndarray (T, B, H) (like ``output``) or None
            dL/d(rates) at every step.
        d_hx : ndarray (1, B, H) (like ``h_n``), optional
            dL/d(final state).

        Returns
        -------
        d_input : ndarray like ``input``
        d_h0 : ndarray (1, B, H) (or (1, H) unbatched)
            dL/d(initial state). With ``train_initial_state`` and no ``hx``
            given to forward, its sum over the batch is also added to
            ``grads['h0']``.

        Raises
        ------
        RuntimeError
            Without a forward pass to backpropagate through.
        """
        name = "CTRNN.backward"
        if self._cache is None:
            raise RuntimeError(f"{name}: no forward pass to backpropagate through "
                               "(call forward first; each forward allows one backward)")
        state, self._cache = self._cache, None
        cache, x, batched, mask = state["cache"], state["input"], state["batched"], state["mask"]
        T, B, D = x.shape
        H = self.hidden_size
        if d_output is not None:
            d_output = as_float_array(d_output, "d_output", self.dtype, ndims=(2, 3), owner=name)
            if not batched:
                d_output = d_output[:, None, :]
            check_shape(d_output, (T, B, H), "d_output", name)
            if mask is not None:
                d_output = d_output * mask  # padded outputs are constant zeros
        dh_n = None
        if d_hx is not None:
            d_hx = as_float_array(d_hx, "d_hx", self.dtype, ndims=(3,) if batched else (2,),
                                  owner=name)
            if not batched:
                d_hx = d_hx[:, None, :]
            check_shape(d_hx, (1, B, H), "d_hx", name)
            dh_n = d_hx[0]
        da, dh0 = ctrnn_backward(d_output, dh_n, cache, state["w_rec_alpha"])
        da2 = da.reshape(T * B, H)  # (T*B, H)
        self.accumulate_effective_grads({
            "weight_ih": da2.T @ x.reshape(T * B, D),  # (H, D)
            "weight_hh": da2.T @ cache.r[:-1].reshape(T * B, H),  # (H, H)
        })
        self.grads["bias"] += da2.sum(axis=0)
        if self.train_initial_state and not state["hx_given"]:
            self.grads["h0"] += dh0.sum(axis=0)
        d_input = (da2 @ state["weight_ih"]).reshape(T, B, D)  # (T, B, D)
        d_h0 = dh0[None]
        if not batched:
            d_input, d_h0 = d_input[:, 0], d_h0[:, 0]
        return d_input, d_h0


class CTRNNModel(Module):
    r"""A :class:`CTRNN` with a read-out from the rates, a masked MSE and L2 penalties.

    .. math::
        y_t = W_{out} r_t + b_{out}, \qquad
        L = \frac{\sum_{t,b} m_{tb} \|y_{tb} - \hat y_{tb}\|^2}{C \sum_{t,b} m_{tb}}
            + \lambda_r \,\overline{r^2} + \lambda_{in} \overline{W_{in}^2}
            + \lambda_{rec} \overline{W_{rec}^2} + \lambda_{out} \overline{W_{out}^2}

    where :math:`m` is the per-step loss mask of the task, the bars are means
    over all entries (PsychRNN's ``L2_firing_rate``, ``L2_in``, ``L2_rec``,
    ``L2_out``) and the weights are the effective ones.

    Parameters
    ----------
    input_size, hidden_size : int
        D and H.
    output_size : int
        C, read-out channels.
    dt, tau, noise_std, activation, dale_ratio, input_connectivity, recurrent_connectivity,
    allow_self_connections, train_initial_state, spectral_radius
        As in :class:`CTRNN`.
    output_connectivity : array_like (C, H) of 0/1, optional
        Which read-out weights exist.
    l2_firing_rate, l2_in, l2_rec, l2_out : float, default=0
        Penalty weights (included in ``loss`` and in the gradient).
    dtype : {np.float32, np.float64}, default=np.float32
    rng : int, Generator or None

    Attributes
    ----------
    rnn : CTRNN
    params, grads : dict of str to ndarray
        ``rnn.weight_ih`` (H, D), ``rnn.weight_hh`` (H, H), ``rnn.bias`` (H,),
        ``rnn.h0`` (H,) (with ``train_initial_state``), ``head.weight``
        (C, H), ``head.bias`` (C,): raw arrays, shared with the layer.

    Notes
    -----
    With Dale's law the read-out is ``W_out = (|W_head| * M_out) @ diag(e)``
    with ``e`` 1 for excitatory and 0 for inhibitory units: only excitatory
    units project out (PsychRNN's ``Dale_out``).

    ``loss(y, target, mask)`` takes the target as an array (T, B, C), with a
    boolean ``mask`` (T, B) of the steps that count, or as a pair
    ``(target, mask)`` (:class:`rnnkit.tasks.MaskedTarget`; this is how the
    task batches pass their masks through :class:`rnnkit.Trainer`). ``loss``
    adds the penalties, and the next ``backward`` adds their gradients; a
    ``backward`` without ``loss`` (saliency) backpropagates ``dy`` alone.

    References
    ----------
    Song, Yang & Wang (2016), PLoS Comput. Biol. 12(2): e1004792. Ehrlich et al.
    (2021), PsychRNN, eNeuro 8(1).

    Examples
    --------
    >>> import numpy as np
    >>> from rnnkit.ctrnn import CTRNNModel
    >>> m = CTRNNModel(3, 20, 2, dale_ratio=0.8, l2_firing_rate=1e-3, rng=0)
    >>> y, h_n = m.forward(np.ones((5, 2, 3), np.float32))
    >>> loss, dy = m.loss(y, np.zeros_like(y))
    >>> m.backward(dy).shape
    (5, 2, 3)
    """

    _LAYER_ARGS = ("dt", "tau", "noise_std", "activation", "dale_ratio",
                   "allow_self_connections", "train_initial_state", "spectral_radius")

    def __init__(self, input_size, hidden_size, output_size, *, dt=10.0, tau=100.0,
                 noise_std=0.0, activation="relu", dale_ratio=None, input_connectivity=None,
                 recurrent_connectivity=None, output_connectivity=None,
                 allow_self_connections=True, train_initial_state=False, spectral_radius=1.1,
                 l2_firing_rate=0.0, l2_in=0.0, l2_rec=0.0, l2_out=0.0, dtype=np.float32,
                 rng=None):
        self.output_size = check_int(output_size, "output_size", minimum=1)
        self.dtype = as_dtype(dtype)
        self.rng = as_generator(rng)
        self.rnn = CTRNN(input_size, hidden_size, dt=dt, tau=tau, noise_std=noise_std,
                         activation=activation, dale_ratio=dale_ratio,
                         input_connectivity=input_connectivity,
                         recurrent_connectivity=recurrent_connectivity,
                         allow_self_connections=allow_self_connections,
                         train_initial_state=train_initial_state,
                         spectral_radius=spectral_radius, dtype=self.dtype, rng=self.rng)
        self.input_size, self.hidden_size = self.rnn.input_size, self.rnn.hidden_size
        for nm, v in (("l2_firing_rate", l2_firing_rate), ("l2_in", l2_in), ("l2_rec", l2_rec),
                      ("l2_out", l2_out)):
            setattr(self, nm, check_float(v, nm, low=0.0))
        H, C = self.hidden_size, self.output_size
        self.output_connectivity = _connectivity(output_connectivity, (C, H),
                                                 "output_connectivity", self.dtype)
        self.output_gain = (self.rnn.signs > 0).astype(self.dtype)  # (H,) e: 1 for E, 0 for I
        bound = 1.0 / np.sqrt(H)
        self.head_params = {
            "weight": (self.rng.uniform(-bound, bound, (C, H)) * self.output_connectivity)
            .astype(self.dtype),
            "bias": np.zeros(C, self.dtype)}
        self.head_grads = {k: np.zeros_like(v) for k, v in self.head_params.items()}
        self.params, self.grads = {}, {}
        for k in self.rnn.params:
            self.params[f"rnn.{k}"] = self.rnn.params[k]
            self.grads[f"rnn.{k}"] = self.rnn.grads[k]
        for k in self.head_params:
            self.params[f"head.{k}"] = self.head_params[k]
            self.grads[f"head.{k}"] = self.head_grads[k]
        self.training = True
        self._cache = None
        self._penalty_pending = False
        self.loss_terms = {}

    # --------------------------------------------------------------- bookkeeping
    @property
    def dale(self):
        return self.rnn.dale

    def effective_weights(self):
        """Effective ``weight_ih``, ``weight_hh`` (:meth:`CTRNN.effective_weights`) and ``weight_out`` (C, H)."""
        eff = self.rnn.effective_weights()
        w = self.head_params["weight"]
        if self.dale:
            eff["weight_out"] = np.abs(w) * self.output_connectivity * self.output_gain
        else:
            eff["weight_out"] = w * self.output_connectivity
        return eff

    def _head_grad_from_effective(self, d):
        d = d * self.output_connectivity
        if self.dale:
            d *= self.output_gain
            d *= np.sign(self.head_params["weight"])
        self.head_grads["weight"] += d

    def config(self):
        """The constructor arguments as a JSON-able dict (masks as nested lists)."""
        cfg = {"input_size": self.input_size, "hidden_size": self.hidden_size,
               "output_size": self.output_size, "dtype": str(self.dtype),
               "l2_firing_rate": self.l2_firing_rate, "l2_in": self.l2_in,
               "l2_rec": self.l2_rec, "l2_out": self.l2_out}
        for k in self._LAYER_ARGS:
            cfg[k] = getattr(self.rnn, k)
        for k, m in (("input_connectivity", self.rnn.input_connectivity),
                     ("recurrent_connectivity", self.rnn.recurrent_connectivity),
                     ("output_connectivity", self.output_connectivity)):
            cfg[k] = None if m.all() else m.astype(int).tolist()
        if not self.rnn.allow_self_connections and cfg["recurrent_connectivity"] is not None:
            rc = np.array(cfg["recurrent_connectivity"])
            np.fill_diagonal(rc, 1)
            cfg["recurrent_connectivity"] = None if rc.all() else rc.tolist()
        return cfg

    @classmethod
    def from_config(cls, config, rng=None):
        """Build a model from :meth:`config`'s dict (weights freshly initialized)."""
        if not isinstance(config, dict):
            raise TypeError(f"model config must be a dict, got {type(config).__name__}")
        args = dict(config)
        try:
            return cls(args.pop("input_size"), args.pop("hidden_size"), args.pop("output_size"),
                       rng=rng, **args)
        except KeyError as exc:
            raise ValueError(f"model config lacks the field {exc.args[0]!r}") from None

    def train(self, mode=True):
        """Training mode (recurrent noise on); returns self."""
        self.training = bool(mode)
        self.rnn.train(mode)
        return self

    def eval(self):
        """Evaluation mode (no recurrent noise); returns self."""
        return self.train(False)

    def __repr__(self):
        return f"CTRNNModel(rnn={self.rnn!r}, output_size={self.output_size})"

    # ------------------------------------------------------------ forward/backward
    def forward(self, x, state=None, *, lengths=None, noise=None):
        """Rates and read-out for a batch of trials.

        Parameters
        ----------
        x : ndarray (T, B, D)
        state : ndarray (1, B, H), optional
        lengths : ndarray (B,) of int, optional
        noise : bool, optional
            See :meth:`CTRNN.forward`.

        Returns
        -------
        y : ndarray (T, B, C)
        h_n : ndarray (1, B, H)
        """
        x = np.asarray(x)
        if x.dtype.kind in "iuf" and x.dtype != self.dtype:
            x = x.astype(self.dtype)  # as SequenceModel's dense input does
        if x.ndim != 3:
            raise ValueError(f"CTRNNModel: Expected x of shape (T, B, D), got shape {x.shape}")
        rates, h_n = self.rnn.forward(x, state, lengths=lengths, noise=noise)
        w_out = self.effective_weights()["weight_out"]
        y = rates @ w_out.T  # (T, B, C)
        y += self.head_params["bias"]
        self._cache = {"rates": rates, "w_out": w_out, "mask": self.rnn._cache["mask"]}
        self._penalty_pending = False
        return y, h_n

    __call__ = forward

    def loss(self, y, target, mask=None):
        """Masked mean squared error plus the L2 penalties.

        Parameters
        ----------
        y : ndarray (T, B, C)
        target : ndarray (T, B, C), or a pair ``(target, step_mask)`` with
            ``step_mask`` (T, B) of bool (:class:`rnnkit.tasks.MaskedTarget`)
        mask : ndarray (T, B) of bool, optional
            Steps that count (e.g. from ``lengths``); combined with the pair's mask.

        Returns
        -------
        value : float
            The task error plus the penalties; the parts are in ``loss_terms``.
        dy : ndarray (T, B, C)
            Gradient of the task error (the penalties' gradients are added by
            the next :meth:`backward`).
        """
        if isinstance(target, tuple):
            if len(target) != 2:
                raise TypeError("CTRNNModel.loss: target must be an array or a pair "
                                f"(target, mask), got a tuple of {len(target)}")
            target, step_mask = target
            step_mask = np.asarray(step_mask)
            if step_mask.dtype != bool:
                raise TypeError(f"CTRNNModel.loss: the step mask must be boolean, got dtype "
                                f"{step_mask.dtype}")
            mask = step_mask if mask is None else np.logical_and(mask, step_mask)
        value, dy = mse_loss(y, target, mask)
        terms = {"task": value}
        penalty = 0.0
        if self._cache is not None and self.l2_firing_rate:
            r, m = self._cache["rates"], self._cache["mask"]
            n = r.size if m is None else int(m.sum()) * r.shape[-1]
            terms["firing_rate"] = self.l2_firing_rate * float(
                np.square(r, dtype=np.float64).sum()) / n
            penalty += terms["firing_rate"]
        eff = self.effective_weights()
        for key, lam in (("weight_ih", self.l2_in), ("weight_hh", self.l2_rec),
                         ("weight_out", self.l2_out)):
            if lam:
                terms[key] = lam * float(np.mean(np.square(eff[key], dtype=np.float64)))
                penalty += terms[key]
        self.loss_terms = terms
        self._penalty_pending = self._cache is not None
        return value + penalty, dy

    def backward(self, dy):
        """Backpropagate ``dy`` (T, B, C) (and, after ``loss``, the penalties).

        Returns
        -------
        d_input : ndarray (T, B, D)
            dL/dx (what saliency maps read).
        """
        if self._cache is None:
            raise RuntimeError("CTRNNModel.backward: no forward pass to backpropagate through")
        cache, self._cache = self._cache, None
        rates, w_out = cache["rates"], cache["w_out"]
        T, B, H = rates.shape
        C = self.output_size
        dy = as_float_array(dy, "dy", self.dtype, ndims=(3,), owner="CTRNNModel.backward")
        check_shape(dy, (T, B, C), "dy", "CTRNNModel.backward")
        dy2 = dy.reshape(T * B, C)
        self._head_grad_from_effective(dy2.T @ rates.reshape(T * B, H))  # (C, H)
        self.head_grads["bias"] += dy2.sum(axis=0)
        d_rates = dy @ w_out  # (T, B, H)
        if self._penalty_pending:
            self._penalty_pending = False
            if self.l2_firing_rate:
                m = cache["mask"]
                n = rates.size if m is None else int(m.sum()) * H
                d_rates += (2.0 * self.l2_firing_rate / n) * rates
            eff = self.effective_weights()
            d_eff = {}
            for key, lam in (("weight_ih", self.l2_in), ("weight_hh", self.l2_rec)):
                if lam:
                    d_eff[key] = (2.0 * lam / eff[key].size) * eff[key]
            self.rnn.accumulate_effective_grads(d_eff)
            if self.l2_out:
                w = eff["weight_out"]
                self._head_grad_from_effective((2.0 * self.l2_out / w.size) * w)
        d_input, _ = self.rnn.backward(d_rates)
        return d_input

    def internals(self):
        """The layer's ``internals()`` (call after forward, before backward)."""
        return self.rnn.internals()

