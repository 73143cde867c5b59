"""Character-level text data: corpus, vocabulary, split, stream batching, baselines.

The pipeline for a character-level language model is::

    text = read_text("input.txt")            # or builtin_corpus()
    vocab = Vocabulary.from_text(text)       # sorted unique characters -> ids
    ids = vocab.encode(text)                 # int64 (N,)
    train, val = train_val_split(ids, 0.1)   # contiguous, validation last
    for x, y in TextStream(train, batch_size=32, seq_len=64):
        ...                                  # x, y: int64 (T, B), state carried

Shape letters: ``N`` number of ids, ``B`` batch (parallel streams), ``T`` chunk
length, ``V`` vocabulary size. Losses and baselines are in nats per character
(natural logarithm); :func:`nats_to_bits` converts.

This module uses NumPy and the standard library only, and no randomness.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = [
    "BUILTIN_CORPUS_NAME",
    "DEFAULT_MIN_CHARS",
    "TextStream",
    "Vocabulary",
    "builtin_corpus",
    "nats_to_bits",
    "read_text",
    "train_val_split",
    "uniform_baseline",
    "unigram_baseline",
]

#: Display name of the text returned by :func:`builtin_corpus`.
BUILTIN_CORPUS_NAME = "Python Language Reference (pydoc_data.topics)"

#: Fewest characters :func:`read_text` accepts by default.
DEFAULT_MIN_CHARS = 1000

_BOM = b"\xef\xbb\xbf"
# Fraction of control characters or undecodable bytes above which a file is "binary".
_BINARY_FRACTION = 0.3
_BINARY_SAMPLE_BYTES = 1 << 16
# Control characters that ordinary text files contain.
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\b\x1b")


# --------------------------------------------------------------------------- helpers


def _check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def _asarray(ids: object, name: str) -> np.ndarray:
    """``np.asarray(ids)``, refusing ragged nested lists with a message naming ``name``."""
    try:
        return np.asarray(ids)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} must be a 1-D array of integer ids, got a"
                         f" {type(ids).__name__} that NumPy cannot convert ({exc})") from None


def _as_ids(ids: object, name: str = "ids") -> np.ndarray:
    """Validate a 1-D array of non-negative integer ids; return it as int64 (no copy if int64)."""
    arr = _asarray(ids, name)
    if arr.size == 0 and arr.ndim == 1:  # e.g. [], which NumPy makes float64
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must be an array of integer ids, got dtype {arr.dtype}"
            " (encode text with Vocabulary.encode)"
        )
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D of shape (N,), got shape {arr.shape}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} has id {int(arr.max())}, beyond the int64 range")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, got {int(arr.min())}")
    return arr


def _preview(chars: Sequence[str], limit: int = 10) -> str:
    """Comma-separated reprs of up to ``limit`` characters, with '...' if more."""
    shown = ", ".join(repr(c) for c in chars[:limit])
    return shown + (", ..." if len(chars) > limit else "")


# --------------------------------------------------------------------------- corpus


@functools.lru_cache(maxsize=1)
def builtin_corpus() -> str:
    """Return the Python Language Reference text that ships with CPython.

    The text is ``pydoc_data.topics.topics`` (a dict of help topic -> text),
    joined in sorted-key order with a blank line between topics, so that it is
    the same on every call and every machine with the same Python version. It
    has about 400,000 to 500,000 characters and about 100 distinct characters;
    the exact text changes between Python versions. Its display name is
    :data:`BUILTIN_CORPUS_NAME`.

    Returns
    -------
    text : str

    Raises
    ------
    ImportError
        If this Python installation lacks the standard-library package
        ``pydoc_data`` (some minimal distributions strip it).
    """
    try:
        from pydoc_data.topics import topics
    except ImportError as exc:  # pragma: no cover - depends on the Python build
        raise ImportError(
            "the built-in corpus needs the standard-library module pydoc_data.topics,"
            " which this Python installation lacks; train on a text file instead"
        ) from exc
    return "\n\n".join(topics[key] for key in sorted(topics))


def read_text(path: str | os.PathLike, *, min_chars: int = DEFAULT_MIN_CHARS) -> str:
    """Read a UTF-8 text file to train a character-level model on.

    A UTF-8 byte-order mark at the start is dropped. Line endings are
    normalized as Python's text mode does (``\\r\\n`` and ``\\r`` become
    ``\\n``), so a Windows file gives the same characters as a Unix one.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    min_chars : int, default DEFAULT_MIN_CHARS (1000)
        Fewest characters (after newline normalization) to accept.

    Returns
    -------
    text : str
        Of length at least ``min_chars``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (the message names the path).
    IsADirectoryError
        If ``path`` is a directory.
    ValueError
        If the file is empty, looks binary (contains a NUL byte, or mostly
        control characters or bytes that are not UTF-8), is not valid UTF-8
        (the message gives the byte offset), or has fewer than ``min_chars``
        characters (the message gives both counts). Every message names the file.
    TypeError
        If ``path`` is not a str or path-like, or ``min_chars`` is not an int.
    OSError
        For other failures to read, e.g. PermissionError.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    min_chars = _check_positive_int(min_chars, "min_chars")
    shown = os.fspath(path)
    # plain messages (no "[Errno 2]" prefix): the CLI prints str(exc) as its one error line
    if not os.path.exists(path):
        raise FileNotFoundError(f"text file not found: '{shown}'")
    if os.path.isdir(path):
        raise IsADirectoryError(f"'{shown}' is a directory, not a text file")
    with open(path, "rb") as f:
        data = f.read()

    # 1) empty (a lone BOM counts as empty)
    offset = len(_BOM) if data.startswith(_BOM) else 0
    body = data[offset:]
    if not body:
        raise ValueError(f"text file '{shown}' is empty")
    # 2) binary: a NUL byte, or mostly control characters / non-UTF-8 bytes
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ValueError(
            f"'{shown}' looks like a binary file, not text: it contains a NUL byte at byte"
            f" offset {nul} (if it is UTF-16 text, save it as UTF-8)"
        )
    sample = body[:_BINARY_SAMPLE_BYTES].decode("utf-8", errors="replace")
    bad = sum(1 for c in sample if c == "\ufffd" or (c < " " and c not in _TEXT_CONTROLS))
    bad += sample.count("\x7f")
    if bad > _BINARY_FRACTION * len(sample):
        raise ValueError(
            f"'{shown}' looks like a binary file, not text: {bad} of the first {len(sample)}"
            " characters are control characters or bytes that are not UTF-8"
            " (if it is text, save it as UTF-8)"
        )
    # 3) not valid UTF-8
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        pos = offset + err.start
        raise ValueError(
            f"text file '{shown}' is not valid UTF-8: byte 0x{data[pos]:02x} at byte offset"
            f" {pos} ({err.reason}); save the file as UTF-8"
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # 4) too short
    if len(text) < min_chars:
        raise ValueError(
            f"text file '{shown}' is too short to train on: it has {len(text)} characters,"
            f" at least {min_chars} are needed"
        )
    return text


# --------------------------------------------------------------------------- vocabulary


class Vocabulary:
    """A mapping between characters and integer ids ``0 .. V-1``.

    Build it from the training text with :meth:`from_text` (sorted unique
    characters, so the ids depend only on the set of characters), or from a
    saved list with :meth:`from_json`. Id ``i`` is the character ``chars[i]``.

    Parameters
    ----------
    chars : sequence of str
        Distinct single characters, in id order; at least one.

    Attributes
    ----------
    chars : tuple of str
        The characters in id order, length ``V``.

    Raises
    ------
    TypeError
        If ``chars`` is not a list or tuple of str.
    ValueError
        If it is empty, has an entry that is not exactly one character, or has
        a duplicate.

    Examples
    --------
    >>> vocab = Vocabulary.from_text("hello")
    >>> vocab.chars
    ('e', 'h', 'l', 'o')
    >>> vocab.encode("hole").tolist()
    [1, 3, 2, 0]
    >>> vocab.decode([1, 0, 2, 2, 3])
    'hello'
    """

    def __init__(self, chars: Sequence[str]) -> None:
        if isinstance(chars, str) or not isinstance(chars, (list, tuple)):
            raise TypeError(
                f"vocabulary must be a list of single-character strings, got {type(chars).__name__}"
            )
        if not chars:
            raise ValueError("vocabulary must have at least one character, got an empty list")
        for i, c in enumerate(chars):
            if not isinstance(c, str):
                raise TypeError(f"vocabulary entry {i} must be a str, got {type(c).__name__} {c!r}")
            if len(c) != 1:
                raise ValueError(
                    f"vocabulary entry {i} must be exactly one character, got {c!r}"
                    f" of length {len(c)}"
                )
        if len(set(chars)) != len(chars):
            seen: set[str] = set()
            dups = [c for c in chars if c in seen or seen.add(c)]
            raise ValueError(f"vocabulary has duplicate characters: {_preview(sorted(set(dups)))}")
        self.chars: tuple[str, ...] = tuple(chars)
        # code points in id order, and a sorted copy with the ids for a vectorized lookup
        self._codes = np.array([ord(c) for c in self.chars], dtype=np.uint32)  # (V,)
        order = np.argsort(self._codes)
        self._sorted_codes = self._codes[order]  # (V,)
        self._sorted_ids = order.astype(np.int64)  # (V,)

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        """Build the vocabulary of the sorted unique characters of ``text``.

        Parameters
        ----------
        text : str
            The training text; not empty.

        Returns
        -------
        Vocabulary

        Raises
        ------
        TypeError
            If ``text`` is not a str.
        ValueError
            If ``text`` is empty.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("cannot build a vocabulary from an empty text")
        return cls(sorted(set(text)))

    @classmethod
    def from_json(cls, data: object) -> Vocabulary:
        """Rebuild a vocabulary from the list written by :meth:`to_json`.

        Parameters
        ----------
        data : list of str
            Distinct single characters in id order.

        Returns
        -------
        Vocabulary

        Raises
        ------
        TypeError
            If ``data`` is not a list of str.
        ValueError
            If it is empty, has duplicates, or has an entry that is not one character.
        """
        return cls(data)  # type: ignore[arg-type]

    def to_json(self) -> list[str]:
        """Return the characters in id order as a JSON-serializable list of str."""
        return list(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.chars == other.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    def __repr__(self) -> str:
        joined = "".join(self.chars)
        if len(joined) > 40:
            joined = joined[:20] + "..." + joined[-10:]
        return f"Vocabulary(size={len(self)}, chars={joined!r})"

    def encode(self, text: str) -> np.ndarray:
        """Map each character of ``text`` to its id.

        Parameters
        ----------
        text : str
            Of length ``N`` (may be empty).

        Returns
        -------
        ids : ndarray of shape (N,), dtype int64

        Raises
        ------
        TypeError
            If ``text`` is not a str.
        ValueError
            If ``text`` has characters that are not in the vocabulary (the
            message lists them).
        """
        if not isinstance(text, str):
            raise TypeError(f"text to encode must be a str, got {type(text).__name__}")
        # one uint32 code point per character; surrogatepass keeps lone surrogates as-is
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")  # (N,)
        pos = np.searchsorted(self._sorted_codes, codes)  # (N,)
        pos_c = np.minimum(pos, len(self) - 1)
        known = self._sorted_codes[pos_c] == codes
        if not known.all():
            unknown = sorted({chr(c) for c in np.unique(codes[~known]).tolist()})
            raise ValueError(
                f"text has {len(unknown)} character(s) not in the vocabulary: {_preview(unknown)}"
                f" (the vocabulary of {len(self)} characters came from the training text)"
            )
        return self._sorted_ids[pos_c]

    def decode(self, ids: object) -> str:
        """Map ids back to a string.

        Parameters
        ----------
        ids : array-like of int, shape (N,)

        Returns
        -------
        text : str
            Of length ``N``.

        Raises
        ------
        TypeError
            If ``ids`` are not integers.
        ValueError
            If ``ids`` is not 1-D or has an id outside ``0 .. V-1``.
        """
        arr = _asarray(ids, "ids to decode")
        if arr.dtype.kind not in "iu":
            if arr.size == 0 and arr.ndim == 1:  # e.g. decode([])
                return ""
            raise TypeError(f"ids to decode must be integers, got dtype {arr.dtype}")
        if arr.ndim != 1:
            raise ValueError(f"ids to decode must be 1-D of shape (N,), got shape {arr.shape}")
        bad = (arr < 0) | (arr >= len(self))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"id {int(arr[i])} at position {i} is out of range for a vocabulary of"
                f" {len(self)} characters (valid ids are 0 to {len(self) - 1})"
            )
        return self._codes[arr].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


# --------------------------------------------------------------------------- split


def train_val_split(ids: object, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Split ids into a training part and a validation part, contiguously.

    The validation part is the last ``round(N * val_fraction)`` ids (Python's
    ``round``, halves to even) and the training part is everything before, so
    no text is shuffled and no character appears on both sides:
    ``concatenate([train, val]) == ids``.

    Parameters
    ----------
    ids : array-like of int, shape (N,)
    val_fraction : float, default 0.1
        Strictly between 0 and 1.

    Returns
    -------
    train : ndarray of shape (N - N_val,), dtype int64
    val : ndarray of shape (N_val,), dtype int64
        Views of ``ids`` when ``ids`` is an int64 array.

    Raises
    ------
    TypeError
        If ``ids`` are not integers or ``val_fraction`` is not a real number.
    ValueError
        If ``ids`` is not 1-D, ``val_fraction`` is not in (0, 1), or either
        part would be empty.
    """
    arr = _as_ids(ids)
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real):
        raise TypeError(f"val_fraction must be a float, got {type(val_fraction).__name__}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be strictly between 0 and 1, got {val_fraction}")
    n = arr.shape[0]
    n_val = round(n * float(val_fraction))
    if n_val == 0 or n_val == n:
        raise ValueError(
            f"val_fraction={val_fraction} of {n} ids leaves an empty"
            f" {'validation' if n_val == 0 else 'training'} part; use a longer text"
            " or another val_fraction"
        )
    return arr[: n - n_val], arr[n - n_val :]


# --------------------------------------------------------------------------- batching


class TextStream:
    """Batches of a long id sequence for truncated backpropagation through time.

    As in PyTorch's ``word_language_model`` (``batchify`` / ``get_batch``), the
    ids are cut into ``B = batch_size`` contiguous streams of ``S = N // B``
    ids each (the trailing ``N % B`` ids are dropped) and laid out time-major
    as ``streams`` of shape ``(S, B)``: column ``b`` is ``ids[b*S : (b+1)*S]``.
    Chunk ``i`` covers steps ``i*seq_len`` to ``i*seq_len + T`` of every
    stream, with the targets one step ahead of the inputs::

        x = streams[i*seq_len     : i*seq_len + T]      # (T, B)
        y = streams[i*seq_len + 1 : i*seq_len + T + 1]  # (T, B)

    so chunk ``i`` continues exactly where chunk ``i-1`` ended in every stream.
    Carry the model's final state from one chunk into the next (and cut the
    gradient there). ``T = seq_len`` except in the last chunk, which is
    shorter when ``seq_len`` does not divide ``S - 1``, and never empty.

    Parameters
    ----------
    ids : array-like of int, shape (N,)
        Non-negative ids, e.g. from :meth:`Vocabulary.encode`.
    batch_size : int
        Number of parallel streams ``B``, at least 1.
    seq_len : int
        Chunk length ``T`` (steps of truncated BPTT), at least 1.

    Attributes
    ----------
    batch_size : int
    seq_len : int
    streams : ndarray of shape (S, B), dtype int64
        The time-major streams (read-only).
    num_tokens : int
        Number of targets over all chunks, ``(S - 1) * B``.

    Raises
    ------
    TypeError
        If ``ids`` are not integers or a size is not an int.
    ValueError
        If ``ids`` is not 1-D or has a negative id, a size is below 1, or the
        text is too short for ``batch_size`` (each stream needs at least 2 ids).

    Examples
    --------
    >>> stream = TextStream(np.arange(10), batch_size=2, seq_len=3)
    >>> stream.streams.T.tolist()
    [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    >>> [x.shape for x, y in stream]
    [(3, 2), (1, 2)]
    >>> x, y = stream[1]
    >>> x.T.tolist(), y.T.tolist()
    ([[3], [8]], [[4], [9]])
    """

    def __init__(self, ids: object, batch_size: int, seq_len: int) -> None:
        arr = _as_ids(ids)
        self.batch_size = _check_positive_int(batch_size, "batch_size")
        self.seq_len = _check_positive_int(seq_len, "seq_len")
        n = arr.shape[0]
        stream_len = n // self.batch_size
        if stream_len < 2:
            raise ValueError(
                f"text of {n} ids is too short for batch_size={self.batch_size}: each of the"
                f" {self.batch_size} streams needs at least 2 ids (an input and its target),"
                f" so at least {2 * self.batch_size} ids are needed"
            )
        streams = arr[: stream_len * self.batch_size].reshape(self.batch_size, stream_len).T
        self.streams = np.ascontiguousarray(streams)  # (S, B)
        self.streams.flags.writeable = False
        self.num_tokens = (stream_len - 1) * self.batch_size
        self._num_chunks = -(-(stream_len - 1) // self.seq_len)  # ceil((S - 1) / seq_len)

    def __len__(self) -> int:
        """Number of chunks, ``ceil((S - 1) / seq_len)``."""
        return self._num_chunks

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Return chunk ``i`` as ``(x, y)``, both new int64 arrays of shape ``(T, B)``.

        Negative ``i`` counts from the end. Raises IndexError if ``i`` is out of
        range and TypeError if it is not an int.
        """
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"chunk index must be an int, got {type(i).__name__}")
        n = self._num_chunks
        if not -n <= i < n:
            raise IndexError(f"chunk index {i} is out of range for {n} chunks")
        start = (int(i) % n) * self.seq_len
        steps = min(self.seq_len, self.streams.shape[0] - 1 - start)
        x = self.streams[start : start + steps].copy()  # (T, B)
        y = self.streams[start + 1 : start + 1 + steps].copy()  # (T, B)
        return x, y

    def batch(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Same as ``self[i]``."""
        return self[i]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(x, y)`` for chunks ``0, 1, ..., len(self) - 1`` in order."""
        for i in range(self._num_chunks):
            yield self[i]

    def __repr__(self) -> str:
        return (
            f"TextStream(batch_size={self.batch_size}, seq_len={self.seq_len},"
            f" stream_len={self.streams.shape[0]}, chunks={len(self)},"
            f" num_tokens={self.num_tokens})"
        )


# --------------------------------------------------------------------------- baselines


def uniform_baseline(vocab_size: int) -> float:
    """Cross-entropy of guessing every character uniformly: ``ln V`` nats per character.

    Parameters
    ----------
    vocab_size : int
        ``V``, at least 1.

    Returns
    -------
    float
        In nats per character.

    Raises
    ------
    TypeError, ValueError
        If ``vocab_size`` is not an int >= 1.
    """
    return math.log(_check_positive_int(vocab_size, "vocab_size"))


def unigram_baseline(train_ids: object, val_ids: object, vocab_size: int) -> float:
    """Cross-entropy of the validation ids under the training character frequencies.

    The model ignores context and predicts each character with its frequency
    in the training ids, with add-one (Laplace) smoothing,
    ``p(c) = (count_train(c) + 1) / (N_train + V)``, so a character that never
    occurs in training still gets a finite cost. The result is
    ``-mean(ln p(val_ids))``: a model that has learnt anything beyond
    character frequencies must do better than this.

    Parameters
    ----------
    train_ids : array-like of int, shape (N_train,)
        Not empty.
    val_ids : array-like of int, shape (N_val,)
        Not empty.
    vocab_size : int
        ``V``; every id must be below it.

    Returns
    -------
    float
        In nats per character.

    Raises
    ------
    TypeError
        If ids are not integers or ``vocab_size`` is not an int.
    ValueError
        If ids are not 1-D, either array is empty, or an id is negative or
        not below ``vocab_size``.
    """
    vocab_size = _check_positive_int(vocab_size, "vocab_size")
    train = _as_ids(train_ids, "train_ids")
    val = _as_ids(val_ids, "val_ids")
    for name, arr in (("train_ids", train), ("val_ids", val)):
        if arr.size == 0:
            raise ValueError(f"{name} must not be empty")
        if arr.max() >= vocab_size:
            raise ValueError(f"{name} has id {int(arr.max())}, not below vocab_size={vocab_size}")
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64) + 1.0  # (V,)
    log_p = np.log(counts) - math.log(train.size + vocab_size)  # (V,)
    return float(-log_p[val].mean())


def nats_to_bits(x: float | np.ndarray) -> float | np.ndarray:
    """Convert nats to bits: ``x / ln 2`` (works on floats and arrays)."""
    return x / math.log(2.0)
