"""Real data sets that load offline: digits, sunspots, airline, JapaneseVowels, spoken digits.

Every loader returns NumPy arrays in a documented layout, in one of two containers:

- :class:`SequenceDataset` for sequence classification. ``X`` is either one
  array ``(n_samples, n_timesteps, n_features)`` (the estimator layout) or,
  for variable-length data, a list of ``n_samples`` arrays ``(T_i, D)``;
  ``y`` is ``(n_samples,)`` int64. Where the data set has an official split,
  ``is_test`` marks the test samples and ``X_train``, ``y_train``,
  ``X_test``, ``y_test`` give the two parts.
- :class:`SeriesDataset` for forecasting. ``y`` is a 1-D float64 series
  ``(n_timesteps,)`` and ``index`` its time index of the same length;
  ``train`` and ``test`` are slices of both, as the issue's benchmarks use them.

========================  ==============================  ===============================
name                      loader                          layout
========================  ==============================  ===============================
``"digits"``              :func:`load_digits_sequences`   X (1797, 8, 8), no official split
``"sunspots"``            :func:`load_sunspots`           yearly 1700-2008 (309)
``"airline"``             :func:`load_airline`            monthly 1949-01..1960-12 (144)
``"japanese_vowels"``     :func:`load_japanese_vowels`    640 of (T_i, 12), T_i in 7..29
``"fsdd"``                :func:`load_fsdd`               3000 of (T_i, 13) MFCC frames
========================  ==============================  ===============================

``load(name, **kwargs)`` calls a loader by name, and :data:`DATASETS` describes
each one (task, source, licence, citation, what it needs).

The loaders need optional packages (scikit-learn, statsmodels, sktime,
librosa, soundfile), which this module imports only inside the loader that
uses them; a missing one raises an ImportError naming the extra to install,
``pip install 'rnnkit[data]'``. The spoken digits also need the archive
``fsdd_recordings.tar.gz`` (see :func:`load_fsdd`); nothing else needs a file
or the network.

No loader uses randomness.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import io
import json
import os
import re
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "SequenceDataset",
    "SeriesDataset",
    "find_fsdd",
    "fsdd_cache_dir",
    "load",
    "load_airline",
    "load_digits_sequences",
    "load_fsdd",
    "load_japanese_vowels",
    "load_sunspots",
]

#: The extra that installs every optional package a loader needs.
DATA_EXTRA = "rnnkit[data]"

#: Environment variable naming the FSDD archive (or a folder of its WAV files).
FSDD_ENV = "RNNKIT_FSDD"

#: Environment variable naming the cache folder for computed features.
CACHE_ENV = "RNNKIT_CACHE"

FSDD_FILENAME = "fsdd_recordings.tar.gz"
FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset"
FSDD_SAMPLE_RATE = 8000

# bump when the cached arrays or the feature computation change meaning
_FSDD_CACHE_VERSION = 1
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


# --------------------------------------------------------------------------- containers


@dataclasses.dataclass(frozen=True, eq=False)
class SequenceDataset:
    """A labelled set of sequences, with its official train/test split if it has one.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"japanese_vowels"``.
    X : ndarray of shape (n_samples, n_timesteps, n_features), or list of ndarray
        The sequences, float64. Variable-length data sets give a list of
        ``n_samples`` arrays of shape ``(T_i, n_features)``.
    y : ndarray of shape (n_samples,)
        Integer class labels, int64.
    is_test : ndarray of shape (n_samples,) of bool, or None
        True for the samples of the official test split; None when the data
        set has no official split.
    groups : ndarray of shape (n_samples,) of str, or None
        Who produced each sample (the speaker for spoken digits), for grouped
        cross-validation; None when unknown.
    target_names : tuple of str
        Display name of each class, in label order.
    description : str
        One line on what the data are.
    meta : mapping of str to ndarray
        Further per-sample arrays of length ``n_samples`` (e.g. ``"recording"``).
    """

    name: str
    X: np.ndarray | list[np.ndarray]
    y: np.ndarray
    is_test: np.ndarray | None
    groups: np.ndarray | None
    target_names: tuple[str, ...]
    description: str
    meta: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        """Number of sequences."""
        return len(self.y)

    @property
    def n_features(self) -> int:
        """Features per time step, ``D``."""
        return int(self.X[0].shape[-1]) if isinstance(self.X, list) else int(self.X.shape[2])

    @property
    def variable_length(self) -> bool:
        """True when ``X`` is a list of arrays of different lengths."""
        return isinstance(self.X, list)

    @property
    def lengths(self) -> np.ndarray:
        """Length ``T_i`` of each sequence, int64 of shape (n_samples,)."""
        if isinstance(self.X, list):
            return np.array([len(x) for x in self.X], dtype=np.int64)
        return np.full(self.X.shape[0], self.X.shape[1], dtype=np.int64)

    def _part(self, test: bool) -> tuple[np.ndarray | list[np.ndarray], np.ndarray]:
        if self.is_test is None:
            raise ValueError(
                f"data set {self.name!r} has no official train/test split; split it yourself,"
                " e.g. sklearn.model_selection.train_test_split(ds.X, ds.y, test_size=0.2,"
                " stratify=ds.y, random_state=seed)"
            )
        mask = self.is_test if test else ~self.is_test
        if isinstance(self.X, list):
            return [x for x, m in zip(self.X, mask) if m], self.y[mask]
        return self.X[mask], self.y[mask]

    @property
    def X_train(self) -> np.ndarray | list[np.ndarray]:
        """Sequences of the official training split (ValueError if there is none)."""
        return self._part(test=False)[0]

    @property
    def y_train(self) -> np.ndarray:
        """Labels of the official training split (ValueError if there is none)."""
        return self._part(test=False)[1]

    @property
    def X_test(self) -> np.ndarray | list[np.ndarray]:
        """Sequences of the official test split (ValueError if there is none)."""
        return self._part(test=True)[0]

    @property
    def y_test(self) -> np.ndarray:
        """Labels of the official test split (ValueError if there is none)."""
        return self._part(test=True)[1]


@dataclasses.dataclass(frozen=True, eq=False)
class SeriesDataset:
    """A univariate time series with the train/test split its benchmark uses.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"sunspots"``.
    y : ndarray of shape (n_timesteps,)
        The values, float64, in ``unit``.
    index : ndarray of shape (n_timesteps,)
        The time of each value: int64 years, or ``datetime64[M]`` months.
    train, test : slice
        Positions of the training and test parts in ``y`` and ``index``. They
        do not overlap, ``train`` comes first, and values after ``test`` (if
        any) belong to neither.
    unit : str
        Unit of the values.
    freq : str
        ``"yearly"`` or ``"monthly"``.
    description : str
        One line on what the data are.
    """

    name: str
    y: np.ndarray
    index: np.ndarray
    train: slice
    test: slice
    unit: str
    freq: str
    description: str

    @property
    def y_train(self) -> np.ndarray:
        """Values of the training part, float64 (n_train,)."""
        return self.y[self.train]

    @property
    def y_test(self) -> np.ndarray:
        """Values of the test part, float64 (n_test,)."""
        return self.y[self.test]

    @property
    def index_train(self) -> np.ndarray:
        """Time index of the training part."""
        return self.index[self.train]

    @property
    def index_test(self) -> np.ndarray:
        """Time index of the test part."""
        return self.index[self.test]


# --------------------------------------------------------------------------- helpers


def _require(module: str, loader: str, pip_name: str | None = None):
    """Import an optional package, or raise an ImportError that names the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pip_name = pip_name or module
        raise ImportError(
            f"{loader}() needs the optional package {pip_name!r}, which is not installed;"
            f" install the data extra: pip install '{DATA_EXTRA}' (or: pip install {pip_name})"
        ) from exc


def _years_slice(years: np.ndarray, first: int, last: int) -> slice:
    """Positions of ``first..last`` (inclusive) in a sorted array of consecutive years."""
    start = int(np.searchsorted(years, first))
    stop = int(np.searchsorted(years, last, side="right"))
    if years[start] != first or years[stop - 1] != last or stop - start != last - first + 1:
        raise RuntimeError(f"years {first}-{last} are not all present in the series")
    return slice(start, stop)


# --------------------------------------------------------------------------- digits


def load_digits_sequences() -> SequenceDataset:
    """Load scikit-learn's 8x8 handwritten digits, each read row by row as a sequence.

    Each image is a sequence of 8 time steps (its rows, top to bottom) of 8
    features (the pixels of the row, left to right).

    Returns
    -------
    SequenceDataset
        ``X`` float64 of shape (1797, 8, 8) with pixel values 0..16 (each is
        the count of set pixels in a 4x4 block of the original 32x32 bitmap;
        divide by 16 for 0..1), ``y`` int64 (1797,) the digit 0..9 (about 180
        of each). There is no official split (``is_test`` is None): the
        issue's benchmark uses a stratified 80/20 split,
        ``train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)``.

    Raises
    ------
    ImportError
        If scikit-learn is missing (``pip install 'rnnkit[data]'``).

    Notes
    -----
    Source: UCI Machine Learning Repository, "Optical Recognition of
    Handwritten Digits" (E. Alpaydin, C. Kaynak, 1998), test part as shipped
    with scikit-learn (``sklearn.datasets.load_digits``). Licence: CC BY 4.0.
    """
    _require("sklearn", "load_digits_sequences", "scikit-learn")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = np.asarray(bunch.images, dtype=np.float64)  # (1797, 8, 8): (sample, row = step, column)
    y = np.asarray(bunch.target, dtype=np.int64)
    return SequenceDataset(
        name="digits",
        X=np.ascontiguousarray(X),
        y=y,
        is_test=None,
        groups=None,
        target_names=tuple(str(d) for d in range(10)),
        description="8x8 handwritten digits read row by row: 8 steps of 8 pixels (0..16)",
    )


# --------------------------------------------------------------------------- series


def load_sunspots() -> SeriesDataset:
    """Load the yearly sunspot numbers 1700-2008 with the classic forecasting split.

    Returns
    -------
    SeriesDataset
        ``y`` float64 (309,): yearly mean sunspot number (Wolf/Zurich number,
        SIDC version 1 of the series), all >= 0; ``index`` int64 (309,): the
        years 1700..2008. ``train`` is 1700-1920 (221 years) and ``test`` is
        1921-1987 (67 years), the split of Weigend et al. (1990) and of the
        issue's benchmark (test MSE against an AR(9)); the years 1988-2008 are in
        neither part.

    Raises
    ------
    ImportError
        If statsmodels is missing (``pip install 'rnnkit[data]'``).

    Notes
    -----
    Source: National Geophysical Data Center (NOAA), as shipped with
    statsmodels (``statsmodels.datasets.sunspots``). Licence: public domain.
    """
    _require("statsmodels", "load_sunspots")
    from statsmodels.datasets import sunspots

    frame = sunspots.load_pandas().data
    years = frame["YEAR"].to_numpy(dtype=np.float64)
    values = frame["SUNACTIVITY"].to_numpy(dtype=np.float64)
    if not np.array_equal(years, np.round(years)) or np.any(np.diff(years) != 1):
        raise RuntimeError("statsmodels' sunspots are not consecutive whole years")
    years = years.astype(np.int64)
    return SeriesDataset(
        name="sunspots",
        y=np.ascontiguousarray(values),
        index=years,
        train=_years_slice(years, 1700, 1920),
        test=_years_slice(years, 1921, 1987),
        unit="sunspot number (yearly mean)",
        freq="yearly",
        description="yearly mean sunspot numbers 1700-2008 (NGDC)",
    )


def load_airline() -> SeriesDataset:
    """Load the monthly international airline passengers 1949-1960 (Box-Jenkins series G).

    Returns
    -------
    SeriesDataset
        ``y`` float64 (144,): passengers per month in thousands (104..622);
        ``index`` ``datetime64[M]`` (144,): 1949-01 .. 1960-12. ``train`` is
        the first 96 months (1949-01 .. 1956-12) and ``test`` the last 48
        (1957-01 .. 1960-12), the issue's split (one-step-ahead RMSE).

    Raises
    ------
    ImportError
        If sktime is missing (``pip install 'rnnkit[data]'``).

    Notes
    -----
    Source: Box, G. E. P., Jenkins, G. M. and Reinsel, G. C. (1976), *Time
    Series Analysis, Forecasting and Control*, series G; as shipped with
    sktime (``sktime.datasets.load_airline``, BSD-3-Clause). A classic
    published table, freely redistributed.
    """
    _require("sktime", "load_airline")
    from sktime.datasets import load_airline as _sktime_airline

    series = _sktime_airline()
    values = series.to_numpy(dtype=np.float64)
    first = np.datetime64(str(series.index[0]), "M")
    months = first + np.arange(len(values))  # datetime64[M]
    if len(values) != 144 or first != np.datetime64("1949-01"):
        raise RuntimeError(
            f"sktime's airline data are not 144 months from 1949-01 (got {len(values)} from {first})"
        )
    return SeriesDataset(
        name="airline",
        y=np.ascontiguousarray(values),
        index=months,
        train=slice(0, 96),
        test=slice(96, 144),
        unit="thousands of passengers per month",
        freq="monthly",
        description="monthly international airline passengers 1949-1960 (Box-Jenkins G)",
    )


# --------------------------------------------------------------------------- JapaneseVowels


def load_japanese_vowels() -> SequenceDataset:
    """Load JapaneseVowels: 640 utterances of 9 speakers, variable length, 12 channels.

    Nine male speakers each uttered the vowels /ae/; each utterance is a
    sequence of 12 LPC cepstrum coefficients per frame. The task is to tell
    the speaker.

    Returns
    -------
    SequenceDataset
        ``X`` a list of 640 float64 arrays of shape ``(T_i, 12)`` with
        ``T_i`` in 7..29 (the coefficients, unitless, about -2..2); ``y``
        int64 (640,) the speaker 1..9. The official split comes first: the
        270 training utterances (30 per speaker), then the 370 test ones
        (``is_test``).

    Raises
    ------
    ImportError
        If sktime is missing (``pip install 'rnnkit[data]'``).

    Notes
    -----
    Source: M. Kudo, J. Toyama and M. Shimbo (1999), "Multidimensional curve
    classification using passing-through regions", Pattern Recognition
    Letters 20(11-13), 1103-1111; UCI Machine Learning Repository (CC BY 4.0),
    in the UEA multivariate archive format as shipped with sktime
    (``load_UCR_UEA_dataset("JapaneseVowels")``, read offline).
    """
    _require("sktime", "load_japanese_vowels")
    from sktime.datasets import load_UCR_UEA_dataset

    sequences: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    test_flags: list[np.ndarray] = []
    for split in ("train", "test"):
        frame, target = load_UCR_UEA_dataset("JapaneseVowels", split=split, return_X_y=True)
        # nested frame: one row per utterance, one column per channel, a pd.Series per cell
        for row in range(frame.shape[0]):
            channels = [frame.iloc[row, col].to_numpy(dtype=np.float64) for col in range(12)]
            sequences.append(np.ascontiguousarray(np.column_stack(channels)))  # (T_i, 12)
        labels.append(np.asarray(target).astype(np.int64))
        test_flags.append(np.full(frame.shape[0], split == "test"))
    return SequenceDataset(
        name="japanese_vowels",
        X=sequences,
        y=np.concatenate(labels),
        is_test=np.concatenate(test_flags),
        groups=None,
        target_names=tuple(str(s) for s in range(1, 10)),
        description="JapaneseVowels: 12 LPC cepstra per frame, 7-29 frames, speaker 1..9",
    )


# --------------------------------------------------------------------------- FSDD


def _repo_root() -> Path:
    # src/rnnkit/data/datasets.py -> the repository (for an editable or in-tree install)
    return Path(__file__).resolve().parents[3]


def _fsdd_candidates() -> list[Path]:
    """Places to look for the archive when no path is given, in order."""
    places = []
    for root in (_repo_root(), Path.cwd()):
        places.append(root.parent / "shared" / "data" / FSDD_FILENAME)
        places.append(root / "shared" / "data" / FSDD_FILENAME)
    unique: list[Path] = []
    for p in places:
        if p not in unique:
            unique.append(p)
    return unique


def _fsdd_missing_hint() -> str:
    return (
        f"get the Free Spoken Digit Dataset from {FSDD_URL} (CC BY-SA 4.0), e.g."
        f" 'git clone {FSDD_URL}.git && tar czf {FSDD_FILENAME} -C free-spoken-digit-dataset"
        " recordings', then pass load_fsdd(path=...) or set the environment variable"
        f" {FSDD_ENV} to the archive (or to a folder of its WAV files)"
    )


def find_fsdd(path: str | os.PathLike | None = None) -> Path:
    """Locate the Free Spoken Digit Dataset: an archive or a folder of its WAV files.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The archive (``.tar.gz`` or any tar file Python reads) or a folder
        holding the ``{digit}_{speaker}_{index}.wav`` files (directly or in
        ``recordings/``). If omitted, the environment variable
        ``RNNKIT_FSDD`` is used if set, else ``../shared/data/fsdd_recordings.tar.gz``
        (and ``shared/data/...``) beside the repository or the working directory.

    Returns
    -------
    pathlib.Path
        The archive or folder found.

    Raises
    ------
    FileNotFoundError
        If nothing is found; the message names every path tried and how to
        get the data.
    """
    if path is not None:
        tried = [Path(path)]
        source = "path"
    elif os.environ.get(FSDD_ENV):
        tried = [Path(os.environ[FSDD_ENV])]
        source = f"${FSDD_ENV}"
    else:
        tried = _fsdd_candidates()
        source = "default locations"
    for candidate in tried:
        if candidate.exists():
            return candidate
    shown = ", ".join(f"'{p}'" for p in tried)
    raise FileNotFoundError(
        f"Free Spoken Digit Dataset not found (tried {source}: {shown}); {_fsdd_missing_hint()}"
    )


def fsdd_cache_dir() -> Path:
    """Folder where computed features are cached.

    Returns
    -------
    pathlib.Path
        ``$RNNKIT_CACHE`` if set, else ``$XDG_CACHE_HOME/rnnkit``, else
        ``~/.cache/rnnkit``. It is not created here.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnkit"


def _iter_fsdd_wavs(source: Path):
    """Yield (file name, WAV bytes) for every .wav in an archive or folder, any order."""
    if source.is_dir():
        files = sorted(source.glob("*.wav")) or sorted(source.glob("recordings/*.wav"))
        for f in files:
            yield f.name, f.read_bytes()
        return
    try:
        with tarfile.open(source, "r:*") as archive:
            for member in archive:
                if member.isfile() and member.name.lower().endswith(".wav"):
                    handle = archive.extractfile(member)
                    if handle is not None:
                        yield os.path.basename(member.name), handle.read()
    except (tarfile.TarError, EOFError) as exc:  # not a tar, or cut short
        raise ValueError(f"'{source}' is not a readable tar archive: {exc}") from exc


def _source_fingerprint(source: Path) -> str:
    """A hash of the data's content (archive) or names, sizes and times (folder)."""
    digest = hashlib.sha256()
    if source.is_dir():
        for f in sorted(source.rglob("*.wav")):
            st = f.stat()
            digest.update(f"{f.relative_to(source)}:{st.st_size}:{st.st_mtime_ns};".encode())
    else:
        with open(source, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _mfcc_features(audio: np.ndarray, settings: Mapping[str, int], mel_basis: np.ndarray):
    """MFCC (and deltas) of one recording: float64 (T, F), T = 1 + len(audio) // hop."""
    import librosa

    spec = librosa.stft(
        audio,
        n_fft=settings["n_fft"],
        hop_length=settings["hop_length"],
        win_length=settings["win_length"],
        window="hann",
        center=True,
    )
    power = np.abs(spec) ** 2  # (n_fft // 2 + 1, T)
    log_mel = librosa.power_to_db(mel_basis @ power)  # (n_mels, T), dB re 1.0, 80 dB floor
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=settings["n_mfcc"])  # (n_mfcc, T)
    blocks = [mfcc]
    n_frames = mfcc.shape[1]
    for order in range(1, settings["deltas"] + 1):
        if n_frames >= 9:
            blocks.append(librosa.feature.delta(mfcc, order=order, width=9))
        else:  # too short for the 9-frame Savitzky-Golay window in its default mode
            blocks.append(librosa.feature.delta(mfcc, order=order, width=3, mode="nearest"))
    return np.ascontiguousarray(np.concatenate(blocks, axis=0).T, dtype=np.float64)  # (T, F)


def _compute_fsdd(source: Path, settings: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Read every recording and compute its features; arrays in (digit, speaker, index) order."""
    soundfile = _require("soundfile", "load_fsdd")
    librosa = _require("librosa", "load_fsdd")
    mel_basis = librosa.filters.mel(
        sr=FSDD_SAMPLE_RATE, n_fft=settings["n_fft"], n_mels=settings["n_mels"]
    )  # (n_mels, n_fft // 2 + 1)
    records = []
    for name, data in _iter_fsdd_wavs(source):
        match = _FSDD_NAME.match(name)
        if match is None:
            raise ValueError(
                f"unexpected file '{name}' in '{source}': FSDD files are named"
                " {digit}_{speaker}_{index}.wav"
            )
        audio, rate = soundfile.read(io.BytesIO(data), dtype="float64", always_2d=True)
        if rate != FSDD_SAMPLE_RATE:
            raise ValueError(f"'{name}' in '{source}' is {rate} Hz; FSDD is {FSDD_SAMPLE_RATE} Hz")
        if audio.shape[0] == 0:
            raise ValueError(f"'{name}' in '{source}' holds no samples")
        audio = audio.mean(axis=1)  # (n_samples,), mono
        digit, speaker, index = int(match[1]), match[2], int(match[3])
        records.append((digit, speaker, index, name, audio))
    if not records:
        raise ValueError(f"no FSDD recordings (*.wav) found in '{source}'; {_fsdd_missing_hint()}")
    records.sort(key=lambda r: r[:3])
    feats = [_mfcc_features(r[4], settings, mel_basis) for r in records]
    return {
        "features": np.concatenate(feats, axis=0),  # (sum T_i, F)
        "lengths": np.array([len(f) for f in feats], dtype=np.int64),
        "digit": np.array([r[0] for r in records], dtype=np.int64),
        "speaker": np.array([r[1] for r in records], dtype=np.str_),
        "recording": np.array([r[2] for r in records], dtype=np.int64),
        "filename": np.array([r[3] for r in records], dtype=np.str_),
    }


_FSDD_ARRAYS = ("features", "lengths", "digit", "speaker", "recording", "filename")


def _read_cache(file: Path, key: str) -> dict[str, np.ndarray] | None:
    """The cached arrays if ``file`` is a valid cache for ``key``, else None (with a warning
    when the file exists but is unusable)."""
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in (*_FSDD_ARRAYS, "key")}
        n = len(arrays["digit"])
        ok = (
            str(arrays["key"]) == key
            and arrays["features"].ndim == 2
            and all(len(arrays[k]) == n for k in _FSDD_ARRAYS[1:])
            and int(arrays["lengths"].sum()) == arrays["features"].shape[0]
        )
        if not ok:
            raise ValueError("inconsistent arrays")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        # an unreadable, truncated or stale cache is recomputed, never trusted
        warnings.warn(
            f"ignoring unusable feature cache '{file}' ({exc}); recomputing", stacklevel=3
        )
        return None
    del arrays["key"]
    return arrays


def _write_cache(file: Path, key: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write the arrays atomically; warn (do not fail) if the folder is not writable."""
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.savez(fh, key=np.array(key), **arrays)
        os.replace(tmp, file)  # readers see the old file or the whole new one
    except OSError as exc:
        warnings.warn(f"could not write the feature cache '{file}': {exc}", stacklevel=3)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _check_setting(value: object, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def load_fsdd(
    path: str | os.PathLike | None = None,
    *,
    n_mfcc: int = 13,
    deltas: int = 0,
    n_mels: int = 40,
    n_fft: int = 256,
    win_length: int = 200,
    hop_length: int = 80,
    cache: bool | str | os.PathLike = True,
) -> SequenceDataset:
    """Load the Free Spoken Digit Dataset as sequences of MFCC frames, with its official split.

    3,000 recordings (8 kHz mono WAV) of the digits 0-9 spoken in English by
    6 speakers, 50 times each. The WAV files are read straight from the
    archive (nothing is extracted) and turned into mel-frequency cepstral
    coefficients with librosa: a Hann window of ``win_length`` samples
    (default 200 = 25 ms) every ``hop_length`` samples (default 80 = 10 ms),
    centred (``center=True``, reflect-padded), an ``n_fft``-point power
    spectrum, ``n_mels`` mel bands from 0 to 4 kHz (Slaney), log power in dB
    (floor 80 dB below the recording's peak), and the first ``n_mfcc``
    coefficients of its orthonormal DCT-II. ``deltas`` appends the first (and
    second) time derivatives (librosa's 9-frame Savitzky-Golay estimate).

    Parameters
    ----------
    path : str or os.PathLike, optional
        The archive ``fsdd_recordings.tar.gz`` (holding ``recordings/*.wav``)
        or a folder of the WAV files; see :func:`find_fsdd` for where it is
        looked for when omitted (``$RNNKIT_FSDD``, then ``../shared/data/``).
    n_mfcc : int, default 13
        Cepstral coefficients per frame (including c0, the log energy term).
    deltas : {0, 1, 2}, default 0
        0: MFCC only; 1: and their deltas; 2: and delta-deltas.
    n_mels : int, default 40
        Mel bands.
    n_fft : int, default 256
        FFT size in samples (32 ms).
    win_length : int, default 200
        Window length in samples (25 ms), at most ``n_fft``.
    hop_length : int, default 80
        Hop between frames in samples (10 ms).
    cache : bool or path-like, default True
        Cache the features as an ``.npz`` file (no pickle) keyed by a hash of
        the data and the settings: True uses :func:`fsdd_cache_dir`
        (``$RNNKIT_CACHE`` or ``~/.cache/rnnkit``), a path uses that folder,
        False neither reads nor writes a cache. An unusable cache file is
        recomputed with a warning; a folder that cannot be written only warns.

    Returns
    -------
    SequenceDataset
        ``X`` a list of 3000 float64 arrays ``(T_i, F)``, frame-major, with
        ``F = n_mfcc * (1 + deltas)`` and ``T_i = 1 + n_samples_i // hop_length``
        (15..229 frames with the defaults, 0.14-2.3 s of audio); the
        coefficients are unscaled (c0 about -550..-80, the others within
        about +-150), so
        standardize them with statistics of the training part. ``y`` int64
        (3000,) the spoken digit 0..9. ``groups`` the speaker's name (6
        speakers). ``is_test`` the official split: recording index 0-4 is
        test (300), 5-49 train (2700). ``meta`` holds ``"recording"`` (index
        0..49, int64) and ``"filename"`` (the WAV's name). Samples are ordered by
        digit, speaker, index.

    Raises
    ------
    FileNotFoundError
        If the archive is not found (the message names the paths tried and
        how to get it).
    ValueError
        If a setting is out of range, or the archive holds no recordings, a
        file named otherwise than ``{digit}_{speaker}_{index}.wav``, or audio
        that is not 8 kHz.
    ImportError
        If librosa or soundfile is missing (``pip install 'rnnkit[data]'``).

    Notes
    -----
    Source: Z. Jackson et al., Free Spoken Digit Dataset,
    https://github.com/Jakobovski/free-spoken-digit-dataset (version with 6
    speakers and 3,000 recordings). Licence: CC BY-SA 4.0 -- cite it wherever
    results on it are shown.
    """
    settings = {
        "n_mfcc": _check_setting(n_mfcc, "n_mfcc", 1),
        "deltas": _check_setting(deltas, "deltas", 0),
        "n_mels": _check_setting(n_mels, "n_mels", 1),
        "n_fft": _check_setting(n_fft, "n_fft", 16),
        "win_length": _check_setting(win_length, "win_length", 2),
        "hop_length": _check_setting(hop_length, "hop_length", 1),
    }
    if settings["deltas"] > 2:
        raise ValueError(f"deltas must be 0, 1 or 2, got {deltas}")
    if settings["win_length"] > settings["n_fft"]:
        raise ValueError(f"win_length ({win_length}) must be at most n_fft ({n_fft})")
    if settings["n_mfcc"] > settings["n_mels"]:
        raise ValueError(f"n_mfcc ({n_mfcc}) must be at most n_mels ({n_mels})")
    source = find_fsdd(path)

    arrays = None
    cache_file = None
    if cache is not False:
        librosa = _require("librosa", "load_fsdd")
        key_text = json.dumps(
            {
                "version": _FSDD_CACHE_VERSION,
                "data": _source_fingerprint(source),
                "settings": settings,
                "librosa": librosa.__version__,
            },
            sort_keys=True,
        )
        key = hashlib.sha256(key_text.encode()).hexdigest()
        folder = fsdd_cache_dir() if cache is True else Path(cache)
        cache_file = folder / f"fsdd-{key[:20]}.npz"
        arrays = _read_cache(cache_file, key)
    if arrays is None:
        arrays = _compute_fsdd(source, settings)
        if cache_file is not None:
            _write_cache(cache_file, key, arrays)

    bounds = np.cumsum(arrays["lengths"])[:-1]
    sequences = [np.ascontiguousarray(f) for f in np.split(arrays["features"], bounds)]
    recording = arrays["recording"]
    return SequenceDataset(
        name="fsdd",
        X=sequences,
        y=arrays["digit"],
        is_test=recording < 5,
        groups=arrays["speaker"],
        target_names=tuple(str(d) for d in range(10)),
        description=(
            f"Free Spoken Digit Dataset: {settings['n_mfcc']} MFCC"
            + (f" + {settings['deltas']} delta order(s)" if settings["deltas"] else "")
            + f" per {settings['hop_length'] / FSDD_SAMPLE_RATE * 1000:g} ms frame, digit 0..9"
        ),
        meta={"recording": recording, "filename": arrays["filename"]},
    )


# --------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What :data:`DATASETS` records about a data set.

    Parameters
    ----------
    name : str
        Registry name, the argument of :func:`load`.
    loader : callable
        The function that loads it.
    task : str
        ``"classification"`` (a :class:`SequenceDataset`) or ``"forecasting"``
        (a :class:`SeriesDataset`).
    description : str
        What the data are and their layout.
    split : str
        The train/test split the loader provides.
    source : str
        Where the data come from (and the package that ships them).
    licence : str
        The data's licence.
    citation : str
        What to cite.
    requires : tuple of str
        The optional packages the loader imports (all in ``rnnkit[data]``).
    needs_file : bool
        True if the loader also needs a file outside the package (FSDD).
    """

    name: str
    loader: Callable[..., SequenceDataset | SeriesDataset]
    task: str
    description: str
    split: str
    source: str
    licence: str
    citation: str
    requires: tuple[str, ...]
    needs_file: bool = False


#: Every data set :func:`load` knows, by name.
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="digits",
            loader=load_digits_sequences,
            task="classification",
            description="1,797 8x8 handwritten digits read row by row: X (1797, 8, 8), 10 classes",
            split="none official; the benchmark uses a stratified 80/20 split",
            source="UCI Optical Recognition of Handwritten Digits, via sklearn.datasets.load_digits",
            licence="CC BY 4.0",
            citation="E. Alpaydin and C. Kaynak (1998), UCI Machine Learning Repository",
            requires=("scikit-learn",),
        ),
        DatasetInfo(
            name="sunspots",
            loader=load_sunspots,
            task="forecasting",
            description="yearly mean sunspot numbers 1700-2008 (309 values)",
            split="train 1700-1920 (221), test 1921-1987 (67)",
            source="NOAA National Geophysical Data Center, via statsmodels.datasets.sunspots",
            licence="public domain",
            citation="SIDC / NGDC yearly sunspot numbers; split of Weigend, Huberman and"
            " Rumelhart (1990)",
            requires=("statsmodels",),
        ),
        DatasetInfo(
            name="airline",
            loader=load_airline,
            task="forecasting",
            description="monthly airline passengers (thousands) 1949-01..1960-12 (144 values)",
            split="train: first 96 months, test: last 48 months",
            source="Box-Jenkins series G, via sktime.datasets.load_airline",
            licence="classic published data, redistributed freely (sktime: BSD-3-Clause)",
            citation="G. E. P. Box, G. M. Jenkins and G. C. Reinsel (1976), Time Series"
            " Analysis, Forecasting and Control, series G",
            requires=("sktime",),
        ),
        DatasetInfo(
            name="japanese_vowels",
            loader=load_japanese_vowels,
            task="classification",
            description="640 utterances of 9 speakers: list of (T_i, 12), T_i 7..29, 9 classes",
            split="official UEA split: 270 train, 370 test",
            source="UCI Japanese Vowels, UEA archive format as bundled with sktime",
            licence="CC BY 4.0",
            citation="M. Kudo, J. Toyama and M. Shimbo (1999), Pattern Recognition Letters"
            " 20(11-13), 1103-1111",
            requires=("sktime",),
        ),
        DatasetInfo(
            name="fsdd",
            loader=load_fsdd,
            task="classification",
            description="3,000 spoken digits (6 speakers, 8 kHz) as MFCC frames: list of"
            " (T_i, 13), 10 classes",
            split="official: recording index 0-4 test (300), 5-49 train (2700)",
            source=f"{FSDD_URL} (archive {FSDD_FILENAME}); features by librosa",
            licence="CC BY-SA 4.0",
            citation="Z. Jackson et al., Free Spoken Digit Dataset,"
            " Jakobovski/free-spoken-digit-dataset",
            requires=("librosa", "soundfile"),
            needs_file=True,
        ),
    )
}


def load(name: str, **kwargs) -> SequenceDataset | SeriesDataset:
    """Load a data set by its registry name.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS` (``"digits"``, ``"sunspots"``, ``"airline"``,
        ``"japanese_vowels"``, ``"fsdd"``); case and ``-`` versus ``_`` do not matter.
    **kwargs
        Passed to the loader (e.g. ``path=`` or ``deltas=`` for ``"fsdd"``).

    Returns
    -------
    SequenceDataset or SeriesDataset
        As the loader returns it.

    Raises
    ------
    ValueError
        If the name is unknown (the message lists the known names).
    TypeError
        If ``name`` is not a str, or a keyword is not one the loader takes.
    """
    if not isinstance(name, str):
        raise TypeError(f"data set name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[key].loader(**kwargs)
