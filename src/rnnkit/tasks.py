"""Cognitive tasks for recurrent networks, generated in NumPy with a seed.

Each generator returns :class:`Trials`: inputs ``x`` (T, B, D), targets
``y`` (T, B, C), a per-step loss mask ``mask`` (T, B) (True where the error
counts) and ``info``, a dict with the condition of every trial (for
psychometric curves and for colouring trajectories) and the task's epochs
(``slice`` objects over the T steps). Time is in milliseconds; a trial has
``round(duration / dt)`` steps per epoch.

- :func:`perceptual_decision`: noisy evidence for two options, respond after a go cue.
- :func:`delayed_discrimination`: two vibration frequencies separated by a
  delay; report whether the first was higher (Romo et al. 1999).
- :func:`flip_flop`: the 3-bit flip-flop (Sussillo & Barak 2013).
- :func:`context_dependent_integration`: integrate motion or colour evidence
  according to a context cue (Mante, Sussillo, Shenoy & Newsome 2013).

:class:`TaskBatches` turns a generator into the sequence of batches
:class:`rnnkit.Trainer` reads, with the masks passed through
:class:`MaskedTarget` (which :class:`rnnkit.ctrnn.CTRNNModel` accepts).

References
----------
Song, Yang & Wang (2016), PLoS Comput. Biol. 12(2): e1004792 (task
conventions). Romo, Brody, Hernandez & Lemus (1999), Nature 399: 470-473.
Sussillo & Barak (2013), Opening the black box: low-dimensional dynamics in
high-dimensional recurrent neural networks, Neural Comput. 25(3): 626-649.
Mante, Sussillo, Shenoy & Newsome (2013), Context-dependent computation by
recurrent dynamics in prefrontal cortex, Nature 503: 78-84.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._validation import as_dtype, as_generator, check_float, check_int

__all__ = [
    "MaskedTarget",
    "TaskBatches",
    "Trials",
    "context_dependent_integration",
    "decision_accuracy",
    "delayed_discrimination",
    "flip_flop",
    "perceptual_decision",
]

LOW, HIGH = 0.2, 1.0  # target levels of the unchosen and the chosen output (PsychRNN)


class Trials(NamedTuple):
    """A batch of trials.

    Attributes
    ----------
    x : ndarray (T, B, D)
        Inputs.
    y : ndarray (T, B, C)
        Targets.
    mask : ndarray (T, B) of bool
        True at the steps where the output is scored.
    info : dict
        Per-trial conditions (arrays of shape (B,)) and ``epochs`` (name -> slice).
    """

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    info: dict


class MaskedTarget(NamedTuple):
    """A target with its per-step loss mask, as one object the trainer passes along.

    ``np.size`` of it (what the trainer weights validation batches by) is the
    number of scored values.
    """

    y: np.ndarray  # (T, B, C)
    mask: np.ndarray  # (T, B) of bool

    @property
    def size(self):
        return int(self.mask.sum()) * self.y.shape[-1]


def _steps(duration, dt, name):
    duration = check_float(duration, name, low=0.0)
    n = round(duration / dt)
    return n


def _epochs(dt, **durations):
    """Consecutive epochs -> (dict of slices, T)."""
    out, t = {}, 0
    for name, d in durations.items():
        n = _steps(d, dt, name)
        out[name] = slice(t, t + n)
        t += n
    return out, t


def _check_common(batch_size, dt, dtype, rng):
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    dt = check_float(dt, "dt", low=0.0, low_open=True)
    return batch_size, dt, as_dtype(dtype), as_generator(rng)


def _signed_levels(levels, name):
    levels = np.asarray(levels, dtype=np.float64)
    if levels.ndim != 1 or levels.size == 0 or not np.isfinite(levels).all():
        raise ValueError(f"{name} must be a non-empty 1-D sequence of finite numbers, "
                         f"got {levels!r}")
    return levels


def perceptual_decision(batch_size, *, dt=20.0, coherences=(0.05, 0.1, 0.2, 0.4, 0.8),
                        stim_noise=0.1, fixation=100.0, stimulus=800.0, response=300.0,
                        grace=100.0, random_sign=True, rng=None, dtype=np.float32):
    """Perceptual decision-making: which of two noisy inputs is larger on average?

    A random-dots-like two-alternative forced choice (Song et al. 2016;
    PsychRNN's ``PerceptualDiscrimination``). Epochs: fixation (the fixation
    cue alone), stimulus (two noisy evidence streams), response (the
    fixation cue goes off: the go signal).

    Inputs, D = 3: ``[fixation cue, evidence A, evidence B]`` with, during the
    stimulus, ``evidence A = (1 + c) / 2 + stim_noise N(0, 1)`` and
    ``evidence B = (1 - c) / 2 + stim_noise N(0, 1)`` for the signed
    coherence ``c``. Outputs, C = 2: during the response the chosen option's
    target is 1.0 and the other's 0.2; before it both are 0.2. The mask
    scores every step but the first ``grace`` ms of the response.

    Parameters
    ----------
    batch_size : int
        B, trials.
    dt : float, default=20.0
        Step (ms).
    coherences : sequence of float, default=(0.05, 0.1, 0.2, 0.4, 0.8)
        Each trial draws one, and a random sign (see ``random_sign``). The
        correct choice is A for ``c > 0`` and B for ``c < 0`` (random for ``c = 0``).
    stim_noise : float, default=0.1
        Standard deviation of the evidence noise per step.
    fixation, stimulus, response, grace : float
        Durations (ms).
    random_sign : bool, default=True
        False uses the drawn coherences as given (signed), e.g. one signed
        value per call for a psychometric curve.
    rng : int, Generator or None
    dtype : {np.float32, np.float64}

    Returns
    -------
    Trials
        ``info``: ``coherence`` (B,) signed, ``choice`` (B,) correct option
        (0 = A, 1 = B), ``epochs`` with ``fixation``, ``stimulus``,
        ``response`` and ``decision`` (the scored part of the response).
    """
    B, dt, dtype, rng = _check_common(batch_size, dt, dtype, rng)
    levels = _signed_levels(coherences, "coherences")
    stim_noise = check_float(stim_noise, "stim_noise", low=0.0)
    epochs, T = _epochs(dt, fixation=fixation, stimulus=stimulus, response=response)
    n_grace = _steps(grace, dt, "grace")
    resp = epochs["response"]
    if resp.stop - resp.start <= n_grace:
        raise ValueError(f"the response ({response} ms) must last longer than the grace "
                         f"period ({grace} ms)")
    epochs["decision"] = slice(resp.start + n_grace, resp.stop)
    coh = rng.choice(levels, B)
    if random_sign:
        coh = coh * rng.choice([-1.0, 1.0], B)
    choice = np.where(coh > 0, 0, 1)
    ties = coh == 0
    choice[ties] = rng.integers(0, 2, int(ties.sum()))
    x = np.zeros((T, B, 3))
    x[: resp.start, :, 0] = 1.0  # fixation cue until the go signal
    st = epochs["stimulus"]
    n = st.stop - st.start
    x[st, :, 1] = (1.0 + coh) / 2 + stim_noise * rng.standard_normal((n, B))
    x[st, :, 2] = (1.0 - coh) / 2 + stim_noise * rng.standard_normal((n, B))
    y = np.full((T, B, 2), LOW)
    y[resp, np.arange(B), choice] = HIGH
    mask = np.ones((T, B), bool)
    mask[resp.start: resp.start + n_grace] = False
    info = {"coherence": coh, "choice": choice, "epochs": epochs}
    return Trials(x.astype(dtype), y.astype(dtype), mask, info)


ROMO_F1 = (10.0, 14.0, 18.0, 22.0, 26.0, 30.0, 34.0)  # Hz, Romo et al. (1999)


def delayed_discrimination(batch_size, *, dt=20.0, f1_values=ROMO_F1, f_gap=8.0, f_min=10.0,
                           f_max=34.0, stim_noise=0.05, fixation=100.0, f1=200.0, delay=1000.0,
                           f2=200.0, response=300.0, grace=100.0, rng=None, dtype=np.float32):
    """Delayed discrimination (Romo et al. 1999): was the first frequency higher?

    Epochs: fixation, f1 (first stimulus), delay, f2 (second stimulus),
    response (the fixation cue goes off). The network must hold f1 through the
    delay and compare it with f2.

    Inputs, D = 3: ``[fixation cue, u+, u-]``, where during a stimulus of
    frequency f the positively and negatively tuned channels carry
    ``u+ = (f - f_min) / (f_max - f_min)`` and ``u- = 1 - u+`` (Song et al.
    2016), plus ``stim_noise N(0, 1)``. Outputs, C = 2: ``[f1 > f2, f1 < f2]``,
    targets 1.0 (chosen) and 0.2 during the response, 0.2 before it.

    Parameters
    ----------
    batch_size : int
    dt : float, default=20.0
    f1_values : sequence of float, default=(10, 14, ..., 34)
        The first frequency is drawn from these (Hz).
    f_gap : float, default=8.0
        ``f2 = f1 +/- f_gap`` (the sign at random, kept in [f_min, f_max]).
    f_min, f_max : float
        The range the tuning maps to [0, 1].
    stim_noise : float, default=0.05
    fixation, f1, delay, f2, response, grace : float
        Durations (ms).
    rng : int, Generator or None
    dtype : {np.float32, np.float64}

    Returns
    -------
    Trials
        ``info``: ``f1``, ``f2`` (B,) in Hz, ``choice`` (B,) (0: f1 > f2,
        1: f1 < f2) and ``epochs``.
    """
    B, dt, dtype, rng = _check_common(batch_size, dt, dtype, rng)
    values = _signed_levels(f1_values, "f1_values")
    f_gap = check_float(f_gap, "f_gap", low=0.0, low_open=True)
    if not f_max > f_min:
        raise ValueError(f"f_max must be larger than f_min, got {f_min} and {f_max}")
    stim_noise = check_float(stim_noise, "stim_noise", low=0.0)
    epochs, T = _epochs(dt, fixation=fixation, f1=f1, delay=delay, f2=f2, response=response)
    n_grace = _steps(grace, dt, "grace")
    resp = epochs["response"]
    if resp.stop - resp.start <= n_grace:
        raise ValueError(f"the response ({response} ms) must last longer than the grace "
                         f"period ({grace} ms)")
    epochs["decision"] = slice(resp.start + n_grace, resp.stop)
    freq1 = rng.choice(values, B)
    sign = rng.choice([-1.0, 1.0], B)
    freq2 = freq1 + sign * f_gap
    out = (freq2 < f_min) | (freq2 > f_max)
    freq2[out] = freq1[out] - sign[out] * f_gap  # the other side stays in range
    choice = np.where(freq1 > freq2, 0, 1)
    x = np.zeros((T, B, 3))
    x[: resp.start, :, 0] = 1.0
    for name, f in (("f1", freq1), ("f2", freq2)):
        sl = epochs[name]
        n = sl.stop - sl.start
        up = (f - f_min) / (f_max - f_min)
        x[sl, :, 1] = up + stim_noise * rng.standard_normal((n, B))
        x[sl, :, 2] = 1.0 - up + stim_noise * rng.standard_normal((n, B))
    y = np.full((T, B, 2), LOW)
    y[resp, np.arange(B), choice] = HIGH
    mask = np.ones((T, B), bool)
    mask[resp.start: resp.start + n_grace] = False
    info = {"f1": freq1, "f2": freq2, "choice": choice, "epochs": epochs}
    return Trials(x.astype(dtype), y.astype(dtype), mask, info)


def flip_flop(batch_size, *, n_steps=100, n_bits=3, p_pulse=0.05, rng=None, dtype=np.float32):
    """The n-bit flip-flop of Sussillo & Barak (2013).

    Each of ``n_bits`` input channels carries rare pulses of +1 or -1; the
    matching output must hold the sign of the most recent pulse on its
    channel until the next one. Every bit gets a pulse at step 0, so the
    target is defined (+/-1) at every step and the mask is all True. A trained
    network stores the 2^n_bits memories as stable fixed points at the corners
    of a cube, with saddles between them.

    Parameters
    ----------
    batch_size : int
    n_steps : int, default=100
        T.
    n_bits : int, default=3
        D = C = n_bits.
    p_pulse : float in [0, 1], default=0.05
        Probability of a pulse on a channel at each step after the first.
    rng : int, Generator or None
    dtype : {np.float32, np.float64}

    Returns
    -------
    Trials
        ``info``: ``n_pulses`` (B,), the number of pulses in each trial, and
        ``final_state`` (B, n_bits), the bits held at the end.
    """
    B = check_int(batch_size, "batch_size", minimum=1)
    T = check_int(n_steps, "n_steps", minimum=1)
    n = check_int(n_bits, "n_bits", minimum=1)
    p = check_float(p_pulse, "p_pulse", low=0.0, high=1.0)
    dtype, rng = as_dtype(dtype), as_generator(rng)
    pulse = rng.random((T, B, n)) < p
    pulse[0] = True
    signs = rng.choice([-1.0, 1.0], (T, B, n))
    x = np.where(pulse, signs, 0.0)
    # the held bit: the sign of the last pulse so far (forward fill over time)
    idx = np.where(pulse, np.arange(T)[:, None, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    y = np.take_along_axis(x, idx, axis=0)
    mask = np.ones((T, B), bool)
    info = {"n_pulses": pulse.sum(axis=(0, 2)), "final_state": y[-1].copy()}
    return Trials(x.astype(dtype), y.astype(dtype), mask, info)


def context_dependent_integration(batch_size, *, dt=20.0,
                                  coherences=(0.05, 0.1, 0.2, 0.4), stim_noise=0.5,
                                  fixation=200.0, stimulus=800.0, response=300.0, grace=100.0,
                                  rng=None, dtype=np.float32):
    """Context-dependent integration (Mante, Sussillo, Shenoy & Newsome 2013).

    Two noisy evidence streams are shown at once (motion and colour); a
    context cue says which one to integrate. The other must be ignored.

    Inputs, D = 4: ``[motion evidence, colour evidence, motion context,
    colour context]``; the context cue (one-hot) is on for the whole trial,
    the evidence ``coherence + stim_noise N(0, 1)`` during the stimulus. The
    output, C = 1, must be 0 before the response and ``sign`` of the relevant
    coherence (+1 or -1) during it; the first ``grace`` ms of the response
    are not scored.

    Parameters
    ----------
    batch_size : int
    dt : float, default=20.0
    coherences : sequence of float, default=(0.05, 0.1, 0.2, 0.4)
        Magnitudes; each stream draws one and a random sign, independently.
    stim_noise : float, default=0.5
    fixation, stimulus, response, grace : float
        Durations (ms).
    rng : int, Generator or None
    dtype : {np.float32, np.float64}

    Returns
    -------
    Trials
        ``info``: ``motion_coherence``, ``color_coherence`` (B,) signed,
        ``context`` (B,) (0 motion, 1 colour), ``choice`` (B,) (0 for +1,
        1 for -1) and ``epochs``.
    """
    B, dt, dtype, rng = _check_common(batch_size, dt, dtype, rng)
    levels = _signed_levels(coherences, "coherences")
    if np.any(levels == 0):
        raise ValueError("coherences must be non-zero (the sign of the relevant one is the "
                         "answer)")
    stim_noise = check_float(stim_noise, "stim_noise", low=0.0)
    epochs, T = _epochs(dt, fixation=fixation, stimulus=stimulus, response=response)
    n_grace = _steps(grace, dt, "grace")
    resp = epochs["response"]
    if resp.stop - resp.start <= n_grace:
        raise ValueError(f"the response ({response} ms) must last longer than the grace "
                         f"period ({grace} ms)")
    epochs["decision"] = slice(resp.start + n_grace, resp.stop)
    motion = rng.choice(levels, B) * rng.choice([-1.0, 1.0], B)
    color = rng.choice(levels, B) * rng.choice([-1.0, 1.0], B)
    context = rng.integers(0, 2, B)
    relevant = np.where(context == 0, motion, color)
    answer = np.sign(relevant)
    x = np.zeros((T, B, 4))
    st = epochs["stimulus"]
    n = st.stop - st.start
    x[st, :, 0] = motion + stim_noise * rng.standard_normal((n, B))
    x[st, :, 1] = color + stim_noise * rng.standard_normal((n, B))
    x[:, np.arange(B), 2 + context] = 1.0
    y = np.zeros((T, B, 1))
    y[resp, :, 0] = answer
    mask = np.ones((T, B), bool)
    mask[resp.start: resp.start + n_grace] = False
    info = {"motion_coherence": motion, "color_coherence": color, "context": context,
            "choice": np.where(answer > 0, 0, 1), "epochs": epochs}
    return Trials(x.astype(dtype), y.astype(dtype), mask, info)


def decision_accuracy(y, trials):
    """Fraction of trials whose output picks the correct option in the decision epoch.

    Parameters
    ----------
    y : ndarray (T, B, C)
        The network's output for ``trials``.
    trials : Trials
        From :func:`perceptual_decision`, :func:`delayed_discrimination`
        (C = 2: the larger mean output is the choice) or
        :func:`context_dependent_integration` (C = 1: the sign is the choice).

    Returns
    -------
    accuracy : float
    choice : ndarray (B,) of int
        The network's choices (same coding as ``info['choice']``).
    """
    y = np.asarray(y)
    if y.shape[:2] != trials.y.shape[:2] or y.ndim != 3:
        raise ValueError(f"decision_accuracy: Expected y of shape {trials.y.shape[:2]} + (C,), "
                         f"got {y.shape}")
    if "decision" not in trials.info.get("epochs", {}):
        raise ValueError("decision_accuracy needs trials with a 'decision' epoch")
    mean = y[trials.info["epochs"]["decision"]].mean(axis=0)  # (B, C)
    if mean.shape[-1] == 1:
        choice = np.where(mean[:, 0] > 0, 0, 1)
    else:
        choice = np.argmax(mean, axis=-1)
    return float(np.mean(choice == trials.info["choice"])), choice


class TaskBatches:
    """The batches of a task as a sequence :class:`rnnkit.Trainer` reads.

    Batch ``i`` is ``task(batch_size, rng=numpy.random.default_rng([seed, i]),
    **task_kwargs)``, so every batch is fresh, the same on every run and
    independent of the order it is asked for (a resumed run sees the same
    data). Each item is ``(x, MaskedTarget(y, mask))`` (or ``(x, y)``, see ``masked``).

    Parameters
    ----------
    task : callable
        One of the generators of this module (or one with the same signature).
    n_batches : int
        ``len`` of the sequence (batches per epoch).
    batch_size : int
    seed : int, default=0
        Use different seeds for training and held-out data.
    masked : bool, default=True
        Items are ``(x, MaskedTarget(y, mask))``; False gives plain ``(x, y)``
        for models whose loss takes no mask (e.g. a ``SequenceModel`` with
        ``loss='mse'`` on :func:`flip_flop`, whose mask is all True); then a
        batch whose mask is not all True raises ValueError.
    **task_kwargs
        Passed to ``task``.

    Examples
    --------
    >>> from rnnkit.tasks import TaskBatches, flip_flop
    >>> data = TaskBatches(flip_flop, n_batches=10, batch_size=8, seed=1, n_steps=20)
    >>> x, target = data[0]
    >>> x.shape, target.y.shape, target.mask.shape
    ((20, 8, 3), (20, 8, 3), (20, 8))
    """

    def __init__(self, task, n_batches, batch_size, *, seed=0, masked=True, **task_kwargs):
        if not callable(task):
            raise TypeError(f"task must be callable, got {type(task).__name__}")
        self.task = task
        self.n_batches = check_int(n_batches, "n_batches", minimum=1)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.seed = check_int(seed, "seed", minimum=0)
        self.masked = bool(masked)
        self.task_kwargs = task_kwargs

    def __len__(self):
        return self.n_batches

    def trials(self, i):
        """The :class:`Trials` of batch ``i`` (with ``info``)."""
        if not -self.n_batches <= i < self.n_batches:
            raise IndexError(f"batch index {i} out of range for {self.n_batches} batches")
        i %= self.n_batches
        rng = np.random.default_rng([self.seed, i])
        return self.task(self.batch_size, rng=rng, **self.task_kwargs)

    def __getitem__(self, i):
        tr = self.trials(i)
        if self.masked:
            return tr.x, MaskedTarget(tr.y, tr.mask)
        if not tr.mask.all():
            raise ValueError(f"TaskBatches(masked=False): batch {i} of {self.task.__name__} has "
                             "steps outside the loss mask; use masked=True and a model whose "
                             "loss takes the mask (CTRNNModel)")
        return tr.x, tr.y
