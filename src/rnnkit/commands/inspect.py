"""``rnnkit inspect MODEL_DIR``: look inside a saved model, as PNG plots.

Runs the model on one input sequence (a text for a character model saved by
``rnnkit train``; a ``.npy`` array, or seeded noise, for a model of
features) and writes into the output folder:

- ``states.png``: every layer's hidden state (and LSTM cell state) per step;
- ``gates.png``: the top layer's gate activations (LSTM i, f, g, o; GRU r, z, n);
- ``saliency.png``: how much each input step moves the model's prediction at
  the last step (the norm of the gradient of the predicted class's score with
  respect to each step's encoded input, through the model's own backward);
- ``trajectories.png``: the top layer's state over time in its first
  principal components, each step labelled with its input.

It prints the path of each file. No math here: it calls
:mod:`rnnkit.analysis`.
"""

from __future__ import annotations

import os

import numpy as np

from .._argtypes import positive_int

NAME = "inspect"

DEFAULT_TEXT_CHARS = 80


def add_parser(subparsers, formatter_class):
    p = subparsers.add_parser(
        NAME, formatter_class=formatter_class,
        help="plot the states, gates, saliency and trajectories of a saved model",
        description=(
            "Run a saved model on one sequence and write PNG plots of its hidden states,\n"
            "gates, input saliency and state trajectory (PCA) into an output folder.\n\n"
            "For a character model from 'rnnkit train' the sequence is --text (by default\n"
            "the first characters of the text it was trained on); for a model of features\n"
            "it is --input FILE.npy, shape (T, D), or seeded Gaussian noise.\n"
            "Needs matplotlib: pip install 'rnnkit[plot]'."),
        epilog=("examples:\n"
                "  rnnkit inspect runs/charlm --text 'def forward(self, x):'\n"
                "  rnnkit inspect runs/series --input window.npy --out plots/"))
    p.add_argument("model_dir", metavar="MODEL_DIR", help="folder of a saved model")
    p.add_argument("--text", default=None,
                   help="text to run a character model on (its characters must be in the "
                        f"vocabulary; default: the first {DEFAULT_TEXT_CHARS} characters of the "
                        "training text)")
    p.add_argument("--input", default=None, metavar="FILE.npy",
                   help="input of a model of features: a .npy array (T, D) (no pickles)")
    p.add_argument("--steps", type=positive_int, default=40,
                   help="length of the noise input when a feature model gets no --input")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise input")
    p.add_argument("--max-units", type=int, default=64, help="units drawn per panel")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: MODEL_DIR/inspect)")
    return p


def _char_input(model_dir, metadata, text):
    from ..charlm import load_char_model
    from ..data.text import BUILTIN_CORPUS_NAME, builtin_corpus, read_text

    model, vocab, _ = load_char_model(model_dir)
    if text is None:
        source = metadata.get("source")
        if source == BUILTIN_CORPUS_NAME:
            text = builtin_corpus()[:DEFAULT_TEXT_CHARS]
        elif source and os.path.isfile(source):
            text = read_text(source)[:DEFAULT_TEXT_CHARS]
        else:
            raise ValueError("the training text of this model is not available; "
                             "pass the text to look at with --text")
    if len(text) < 2:
        raise ValueError(f"--text needs at least 2 characters, got {len(text)}")
    unknown = sorted(set(text) - set(vocab.chars))
    if unknown:
        raise ValueError(f"--text has characters the model does not know: "
                         f"{''.join(unknown)!r}")
    ids = vocab.encode(text)
    return model, ids[:, None], list(text)  # (T, 1)


def _feature_input(model, path, steps, seed):
    D = model.input_size
    if path is None:
        if steps < 2:
            raise ValueError(f"--steps must be >= 2, got {steps}")
        x = np.random.default_rng(seed).standard_normal((steps, 1, D))
        print(f"no --input: using Gaussian noise of {steps} steps (seed {seed})")
    else:
        try:
            with open(path, "rb") as f:
                magic = f.read(6)
        except FileNotFoundError:
            raise FileNotFoundError(f"input file not found: '{path}'") from None
        if magic != b"\x93NUMPY":  # (NumPy would read anything else as a pickle, refused)
            raise ValueError(f"{path}: not a .npy file (it lacks NumPy's header); write the "
                             "input with numpy.save")
        try:
            x = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{path}: not a .npy array without pickles ({exc})") from None
        shape = x.shape
        if x.ndim == 2:
            x = x[:, None, :]
        if x.ndim != 3 or x.shape[-1] != D or x.shape[1] != 1:  # the shape as saved
            raise ValueError(f"{path}: expected an array of shape (T, {D}) (or (T, 1, {D})), "
                             f"got {shape}")
    return x.astype(model.dtype), [str(t) for t in range(x.shape[0])]


def run(args):
    from .._argtypes import make_output_folder
    from ..analysis import fit_pca, project, saliency, saliency_scores
    from ..analysis._model import evaluating
    from ..analysis.plots import plot_saliency, plot_states, plot_trajectories
    from ..io import load_model

    if args.max_units < 1:
        raise ValueError(f"--max-units must be >= 1, got {args.max_units}")
    if args.out is not None:
        make_output_folder(args.out, "--out")
    model, metadata = load_model(args.model_dir)
    if metadata.get("task") == "charlm":
        if args.input is not None:
            raise ValueError("this is a character model: give --text, not --input")
        model, x, labels = _char_input(args.model_dir, metadata, args.text)
    else:
        if args.text is not None:
            if getattr(model, "encoder_kind", "dense") == "dense":
                raise ValueError("this model reads features, not text: give --input FILE.npy")
            raise ValueError("this model has no vocabulary saved with it; --text needs a "
                             "character model from 'rnnkit train'")
        if getattr(model, "encoder_kind", "dense") != "dense":
            raise ValueError("this token model has no vocabulary saved with it to encode a "
                             "text; inspect works on character models from 'rnnkit train' "
                             "and on models of features")
        x, labels = _feature_input(model, args.input, args.steps, args.seed)
    out = args.out or make_output_folder(os.path.join(args.model_dir, "inspect"), "the folder")
    rnn = model.rnn
    with evaluating(model):
        y, _ = model.forward(x)
        internals = rnn.internals()
    written = []
    T = x.shape[0]
    num_layers = getattr(rnn, "num_layers", 1)  # a CTRNN is one layer
    mode = getattr(rnn, "mode", type(rnn).__name__)
    top = f"_l{num_layers - 1}"

    # 1) hidden states (and cell states) of every layer
    state_names = ("h", "c", "r") if mode == "CTRNN" else ("h", "c")  # r: a CTRNN's rates
    states = {k: v[:, 0] for k, v in internals.items() if k.split("_l")[0] in state_names}
    written.append(plot_states(states, os.path.join(out, "states.png"), xlabels=labels,
                               max_units=args.max_units,
                               title=f"{rnn!r}: states per step"))
    # 2) gates of the top layer
    gate_names = {"LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n")}.get(mode, ())
    if gate_names:
        gates = {g + top: internals[g + top][:, 0] for g in gate_names}
        written.append(plot_states(gates, os.path.join(out, "gates.png"), xlabels=labels,
                                   max_units=args.max_units,
                                   title=f"{mode} gates of layer {num_layers - 1}"))
    # 3) saliency of the prediction at the last step
    last = y[-1, 0] if y.ndim == 3 else y[0]
    cls = int(np.argmax(last))
    grad, _value = saliency(model, x, cls)
    scores = saliency_scores(grad)[:, 0]
    what = f"class {cls}"
    if metadata.get("task") == "charlm":
        from ..data.text import Vocabulary

        what = repr(Vocabulary.from_json(metadata["vocabulary"]).chars[cls])
    written.append(plot_saliency(
        scores, os.path.join(out, "saliency.png"), labels=labels,
        target_step=T - 1 if y.ndim == 3 else None,
        title=f"d(score of the prediction {what} after the last step) / d(input step)"))
    # 4) trajectory of the top layer's state in its principal components
    h = internals["h" + top]  # (T, 1, H)
    k = min(2, h.shape[-1], T)
    if k >= 2:
        pca = fit_pca(h, k)
        written.append(plot_trajectories(project(h, pca), os.path.join(out, "trajectories.png"),
                                         pca=pca, labels=labels,
                                         title=f"state of layer {num_layers - 1} over "
                                               f"{T} steps"))
    for path in written:
        print(path)
    return 0
