"""Tests for rnnkit.data.text (corpus, files, vocabulary, split, streams, baselines)
and rnnkit.functional.sampling (drawing ids from logits)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnkit.data import (
    BUILTIN_CORPUS_NAME,
    DEFAULT_MIN_CHARS,
    TextStream,
    Vocabulary,
    builtin_corpus,
    nats_to_bits,
    read_text,
    train_val_split,
    uniform_baseline,
    unigram_baseline,
)
from rnnkit.functional.sampling import sample_logits

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture(scope="module")
def corpus():
    return builtin_corpus()


# --------------------------------------------------------------------------- corpus


def test_builtin_corpus_is_large_and_varied(corpus):
    assert isinstance(corpus, str)
    assert len(corpus) > 300_000
    assert len(set(corpus)) > 50
    assert BUILTIN_CORPUS_NAME == "Python Language Reference (pydoc_data.topics)"


def test_builtin_corpus_is_the_sorted_join_of_pydoc_topics(corpus):
    from pydoc_data.topics import topics

    keys = sorted(topics)
    assert corpus == "\n\n".join(topics[k] for k in keys)
    # every topic appears, in sorted-key order
    positions = [corpus.index(topics[k]) for k in keys[:20]]
    assert positions == sorted(positions)


def test_builtin_corpus_is_deterministic_across_processes(corpus):
    digest = hashlib.sha256(corpus.encode("utf-8")).hexdigest()
    code = (
        "import hashlib; from rnnkit.data import builtin_corpus;"
        "print(hashlib.sha256(builtin_corpus().encode('utf-8')).hexdigest())"
    )
    src = os.path.join(os.path.dirname(__file__), os.pardir, "src")
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=src)
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == digest, f"corpus differs with PYTHONHASHSEED={seed}"
    assert builtin_corpus() == corpus


# --------------------------------------------------------------------------- read_text


LONG = "The quick brown fox jumps over the lazy dog.\n" * 40  # 1800 characters


def _write(tmp_path, content):
    path = tmp_path / "input.txt"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        pytest.param(b"", ["is empty"], id="empty"),
        pytest.param(b"\xef\xbb\xbf", ["is empty"], id="bom-only"),
        pytest.param(b"abc\x00def" * 300, ["binary", "NUL byte at byte offset 3"], id="nul"),
        pytest.param(LONG.encode("utf-16"), ["binary", "NUL", "UTF-16"], id="utf16"),
        pytest.param(bytes(range(1, 256)) * 10, ["binary", "not UTF-8"], id="random-bytes"),
        pytest.param(
            b"\x01\x02\x03\x04 hi" * 300, ["binary", "control characters"], id="control-chars"
        ),
        pytest.param(
            b"a" * 1500 + b"\xe9t\xe9" + b"b" * 100,
            ["not valid UTF-8", "0xe9", "byte offset 1500"],
            id="latin1",
        ),
        pytest.param(
            b"\xef\xbb\xbf" + b"a" * 1500 + b"\xff",
            ["not valid UTF-8", "0xff", "byte offset 1503"],
            id="bom-then-invalid",
        ),
        pytest.param(
            b"hello",
            ["too short", "has 5 characters", f"{DEFAULT_MIN_CHARS} are needed"],
            id="too-short",
        ),
    ],
)
def test_read_text_content_errors(tmp_path, content, fragments):
    path = _write(tmp_path, content)
    with pytest.raises(ValueError) as info:
        read_text(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_read_text_missing_file(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="not found") as info:
        read_text(path)
    assert str(info.value) == f"text file not found: '{path}'"
    assert isinstance(info.value, OSError)


def test_read_text_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory") as info:
        read_text(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_read_text_min_chars_boundary(tmp_path):
    path = _write(tmp_path, ("é" * 10 + "x" * 5).encode("utf-8"))  # 15 characters, 25 bytes
    assert read_text(path, min_chars=15) == "é" * 10 + "x" * 5
    with pytest.raises(ValueError, match="has 15 characters, at least 16 are needed"):
        read_text(path, min_chars=16)


def test_read_text_accepts_bom_and_normalizes_newlines(tmp_path):
    raw = "line one\r\nline two\rline three\n\u00e9\U0001f600" * 50
    path = _write(tmp_path, b"\xef\xbb\xbf" + raw.encode("utf-8"))
    text = read_text(path, min_chars=10)
    assert text == raw.replace("\r\n", "\n").replace("\r", "\n")
    assert "\ufeff" not in text and "\r" not in text


def test_read_text_reads_plain_utf8(tmp_path):
    path = _write(tmp_path, LONG.encode("utf-8"))
    assert read_text(str(path)) == LONG


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"min_chars": 0}, ValueError),
        ({"min_chars": "10"}, TypeError),
        ({"min_chars": 2.5}, TypeError),
    ],
)
def test_read_text_bad_min_chars(tmp_path, kwargs, exc):
    path = _write(tmp_path, LONG.encode())
    with pytest.raises(exc, match="min_chars"):
        read_text(path, **kwargs)


def test_read_text_bad_path_type():
    with pytest.raises(TypeError, match="path must be a str"):
        read_text(123)


# --------------------------------------------------------------------------- vocabulary


def test_vocabulary_from_text_is_sorted_unique():
    vocab = Vocabulary.from_text("hello world")
    assert vocab.chars == (" ", "d", "e", "h", "l", "o", "r", "w")
    assert len(vocab) == 8
    ids = vocab.encode("hello")
    assert ids.dtype == np.int64 and ids.shape == (5,)
    assert ids.tolist() == [3, 2, 4, 4, 5]
    assert vocab.decode([7, 5, 6, 4, 1]) == "world"


def test_vocabulary_round_trip_on_corpus(corpus):
    vocab = Vocabulary.from_text(corpus)
    ids = vocab.encode(corpus)
    assert ids.shape == (len(corpus),) and ids.dtype == np.int64
    assert ids.min() == 0 and ids.max() == len(vocab) - 1
    assert vocab.decode(ids) == corpus
    # ids follow the sorted order of the characters
    lookup = {c: i for i, c in enumerate(sorted(set(corpus)))}
    head = corpus[:2000]
    np.testing.assert_array_equal(vocab.encode(head), [lookup[c] for c in head])


def test_vocabulary_json_round_trip():
    vocab = Vocabulary.from_text("ab\n\t\u00e9\U0001f600 z")
    restored = Vocabulary.from_json(json.loads(json.dumps(vocab.to_json())))
    assert restored == vocab
    assert restored.chars == vocab.chars
    assert hash(restored) == hash(vocab)
    assert vocab.to_json() == list(vocab.chars)
    assert Vocabulary.from_text("abc") != Vocabulary.from_text("abd")
    assert Vocabulary.from_text("abc") != ["a", "b", "c"]


def test_vocabulary_from_json_keeps_given_order():
    vocab = Vocabulary.from_json(["z", "a", "m"])
    assert vocab.encode("amz").tolist() == [1, 2, 0]
    assert vocab.decode([0, 1, 2]) == "zam"


def test_vocabulary_repr_is_informative():
    text = repr(Vocabulary.from_text("hello"))
    assert "Vocabulary" in text and "size=4" in text and "ehlo" in text


def test_vocabulary_unknown_characters():
    vocab = Vocabulary.from_text("abc")
    with pytest.raises(ValueError) as info:
        vocab.encode("abxcyx")
    message = str(info.value)
    assert "'x'" in message and "'y'" in message and "2 character" in message
    assert "training text" in message
    assert "'a'" not in message


@pytest.mark.parametrize(
    ("data", "exc", "fragment"),
    [
        (["a", "b", "a"], ValueError, "duplicate"),
        (["a", "bc"], ValueError, "exactly one character"),
        (["a", ""], ValueError, "exactly one character"),
        ([], ValueError, "at least one"),
        (["a", 1], TypeError, "must be a str"),
        ("abc", TypeError, "list"),
        ({"a": 0}, TypeError, "list"),
    ],
)
def test_vocabulary_from_json_validation(data, exc, fragment):
    with pytest.raises(exc, match=fragment):
        Vocabulary.from_json(data)


@pytest.mark.parametrize(
    ("ids", "exc"),
    [([0, 3], ValueError), ([-1], ValueError), ([0.0, 1.0], TypeError), ([[0, 1]], ValueError)],
)
def test_vocabulary_decode_errors(ids, exc):
    with pytest.raises(exc):
        Vocabulary.from_text("abc").decode(ids)


def test_vocabulary_decode_out_of_range_message():
    with pytest.raises(ValueError, match=r"id 3 at position 1 is out of range.*0 to 2"):
        Vocabulary.from_text("abc").decode([0, 3])


def test_vocabulary_empty_inputs():
    vocab = Vocabulary.from_text("abc")
    assert vocab.encode("").shape == (0,)
    assert vocab.decode([]) == ""
    with pytest.raises(ValueError, match="empty"):
        Vocabulary.from_text("")
    with pytest.raises(TypeError):
        vocab.encode(b"abc")


@SETTINGS
@given(alphabet=st.text(min_size=1, max_size=30), data=st.data())
def test_vocabulary_round_trip_property(alphabet, data):
    vocab = Vocabulary.from_text(alphabet)
    assert vocab.chars == tuple(sorted(set(alphabet)))
    text = data.draw(st.text(alphabet=vocab.chars, max_size=200))
    ids = vocab.encode(text)
    assert [vocab.chars[i] for i in ids] == list(text)
    assert vocab.decode(ids) == text


# --------------------------------------------------------------------------- split


@pytest.mark.parametrize(
    ("n", "fraction"), [(100, 0.1), (1000, 0.29), (7, 0.5), (10, 0.8), (12345, 0.05)]
)
def test_train_val_split_is_contiguous_and_exact(n, fraction):
    ids = np.arange(n, dtype=np.int64) * 3 % 17
    train, val = train_val_split(ids, fraction)
    n_val = round(n * fraction)
    assert len(val) == n_val and len(train) == n - n_val
    np.testing.assert_array_equal(train, ids[: n - n_val])
    np.testing.assert_array_equal(val, ids[n - n_val :])
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)
    assert train.dtype == val.dtype == np.int64


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_train_val_split_bad_fraction(fraction):
    with pytest.raises(ValueError, match="between 0 and 1"):
        train_val_split(np.arange(100), fraction)


@pytest.mark.parametrize(
    ("n", "fraction", "part"), [(5, 0.05, "validation"), (5, 0.95, "training"), (1, 0.5, "")]
)
def test_train_val_split_empty_part(n, fraction, part):
    with pytest.raises(ValueError, match=f"empty {part}"):
        train_val_split(np.arange(n), fraction)


def test_train_val_split_bad_ids():
    with pytest.raises(TypeError, match="integer ids"):
        train_val_split(np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="1-D"):
        train_val_split(np.zeros((5, 2), dtype=np.int64))


# --------------------------------------------------------------------------- TextStream


def _reference_batches(ids, batch_size, seq_len):
    """PyTorch word_language_model's batchify + get_batch, written out in NumPy."""
    nbatch = len(ids) // batch_size
    data = ids[: nbatch * batch_size].reshape(batch_size, -1).T  # (S, B)
    out = []
    for i in range(0, data.shape[0] - 1, seq_len):
        steps = min(seq_len, data.shape[0] - 1 - i)
        out.append((data[i : i + steps], data[i + 1 : i + 1 + steps]))
    return out


def test_text_stream_small_example():
    stream = TextStream(np.arange(11), batch_size=2, seq_len=3)  # id 10 is dropped
    assert stream.streams.T.tolist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert len(stream) == 2
    assert stream.num_tokens == 8
    (x0, y0), (x1, y1) = list(stream)
    assert x0.T.tolist() == [[0, 1, 2], [5, 6, 7]] and y0.T.tolist() == [[1, 2, 3], [6, 7, 8]]
    assert x1.T.tolist() == [[3], [8]] and y1.T.tolist() == [[4], [9]]


def _check_stream(ids, batch_size, seq_len):
    stream = TextStream(ids, batch_size, seq_len)
    chunks = list(stream)
    stream_len = len(ids) // batch_size
    assert len(chunks) == len(stream) == math.ceil((stream_len - 1) / seq_len)
    assert stream.num_tokens == (stream_len - 1) * batch_size == sum(y.size for _, y in chunks)
    for i, (x, y) in enumerate(chunks):
        assert x.dtype == y.dtype == np.int64
        expected_t = seq_len if i < len(chunks) - 1 else stream_len - 1 - i * seq_len
        assert 1 <= expected_t <= seq_len
        assert x.shape == y.shape == (expected_t, batch_size)
        np.testing.assert_array_equal(y[:-1], x[1:], err_msg=f"chunk {i}: targets not next ids")
        if i > 0:  # chunk i starts where chunk i-1 ended, in every stream
            np.testing.assert_array_equal(x[0], chunks[i - 1][1][-1], err_msg=f"chunk {i}")
    for b in range(batch_size):
        inputs = np.concatenate([x[:, b] for x, _ in chunks])
        targets = np.concatenate([y[:, b] for _, y in chunks])
        original = ids[b * stream_len : (b + 1) * stream_len]
        np.testing.assert_array_equal(inputs, original[:-1], err_msg=f"stream {b} inputs")
        np.testing.assert_array_equal(targets, original[1:], err_msg=f"stream {b} targets")
    for (x, y), (rx, ry) in zip(chunks, _reference_batches(ids, batch_size, seq_len), strict=True):
        np.testing.assert_array_equal(x, rx)
        np.testing.assert_array_equal(y, ry)
    return stream


@pytest.mark.parametrize(
    ("n", "batch_size", "seq_len"),
    [(1000, 8, 16), (1001, 7, 10), (20, 4, 100), (50, 1, 7), (4, 2, 1)],
)
def test_text_stream_reconstructs_streams(rng, n, batch_size, seq_len):
    ids = rng.integers(0, 50, size=n)
    _check_stream(ids, batch_size, seq_len)


@SETTINGS
@given(
    n=st.integers(0, 400),
    batch_size=st.integers(1, 25),
    seq_len=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_text_stream_property(n, batch_size, seq_len, seed):
    ids = np.random.default_rng(seed).integers(0, 1000, size=n)
    if n // batch_size < 2:
        with pytest.raises(ValueError, match="too short"):
            TextStream(ids, batch_size, seq_len)
    else:
        _check_stream(ids, batch_size, seq_len)


def test_text_stream_indexing():
    stream = TextStream(np.arange(100), batch_size=3, seq_len=10)
    assert len(stream) == 4  # S = 33, 32 targets per stream
    x_last, y_last = stream[-1]
    np.testing.assert_array_equal(x_last, stream[3][0])
    np.testing.assert_array_equal(y_last, stream.batch(3)[1])
    assert x_last.shape == (2, 3)
    with pytest.raises(IndexError):
        stream[4]
    with pytest.raises(IndexError):
        stream[-5]
    with pytest.raises(TypeError):
        stream[1.0]
    # chunks are copies: changing one leaves the stream intact
    x, _ = stream[0]
    x[:] = -1
    assert stream[0][0].min() >= 0
    assert "TextStream(batch_size=3" in repr(stream)


@pytest.mark.parametrize(
    ("ids", "batch_size", "seq_len", "exc", "fragment"),
    [
        (np.arange(3), 2, 5, ValueError, "too short for batch_size=2"),
        (np.arange(10), 0, 5, ValueError, "batch_size must be a positive"),
        (np.arange(10), 2, -1, ValueError, "seq_len must be a positive"),
        (np.arange(10), 2.0, 5, TypeError, "batch_size must be an int"),
        (np.arange(10), 2, True, TypeError, "seq_len must be an int"),
        (np.linspace(0, 9, 10), 2, 5, TypeError, "integer ids"),
        (np.zeros((5, 2), dtype=np.int64), 2, 5, ValueError, "1-D"),
        (np.array([0, 1, -2, 3]), 1, 2, ValueError, "non-negative"),
    ],
)
def test_text_stream_errors(ids, batch_size, seq_len, exc, fragment):
    with pytest.raises(exc, match=fragment):
        TextStream(ids, batch_size, seq_len)


# --------------------------------------------------------------------------- baselines


@pytest.mark.parametrize("vocab_size", [1, 2, 65, 103])
def test_uniform_baseline(vocab_size):
    assert uniform_baseline(vocab_size) == pytest.approx(math.log(vocab_size), rel=1e-15)


def test_unigram_baseline_by_hand():
    vocab = Vocabulary.from_text("abc")
    train, val = vocab.encode("aab"), vocab.encode("abc")
    # Laplace: p(a) = 3/6, p(b) = 2/6, p(c) = 1/6 (unseen in training, yet finite)
    expected = -(math.log(3 / 6) + math.log(2 / 6) + math.log(1 / 6)) / 3
    assert unigram_baseline(train, val, len(vocab)) == pytest.approx(expected, rel=1e-12)
    # an extra unused id in the vocabulary changes the smoothing: p(a) = 3/7, ...
    expected4 = -(math.log(3 / 7) + math.log(2 / 7) + math.log(1 / 7)) / 3
    assert unigram_baseline(train, val, 4) == pytest.approx(expected4, rel=1e-12)


def test_unigram_beats_uniform_on_corpus(corpus):
    vocab = Vocabulary.from_text(corpus)
    train, val = train_val_split(vocab.encode(corpus), 0.1)
    unigram = unigram_baseline(train, val, len(vocab))
    uniform = uniform_baseline(len(vocab))
    assert math.isfinite(unigram)
    assert 1.0 < unigram < uniform - 0.5


@pytest.mark.parametrize(
    ("train", "val", "vocab_size", "exc", "fragment"),
    [
        ([0, 1], [], 3, ValueError, "val_ids must not be empty"),
        ([], [0], 3, ValueError, "train_ids must not be empty"),  # [] counts as empty ids
        ([0, 3], [0], 3, ValueError, "train_ids has id 3"),
        ([0, 1], [5], 3, ValueError, "val_ids has id 5"),
        ([0, 1], [0], 0, ValueError, "vocab_size"),
        ([0.5], [0], 3, TypeError, "integer ids"),
    ],
)
def test_unigram_baseline_errors(train, val, vocab_size, exc, fragment):
    with pytest.raises(exc, match=fragment):
        unigram_baseline(train, val, vocab_size)


def test_nats_to_bits():
    assert nats_to_bits(math.log(2)) == pytest.approx(1.0, rel=1e-15)
    np.testing.assert_allclose(nats_to_bits(np.log([2.0, 8.0, 1.0])), [1.0, 3.0, 0.0])
    assert nats_to_bits(uniform_baseline(64)) == pytest.approx(6.0, rel=1e-15)


# --------------------------------------------------------------------------- sampling


def _softmax(logits, temperature):
    z = np.asarray(logits, dtype=np.float64) / temperature
    e = np.exp(z - z.max())
    return e / e.sum()


def test_sample_seeded_reproducibility():
    logits = np.linspace(-1.0, 1.0, 10)
    draws_a = [sample_logits(logits, 1.0, np.random.default_rng(7)) for _ in range(3)]
    assert len(set(draws_a)) == 1  # the same seed gives the same draw
    rng_a, rng_b, rng_c = (np.random.default_rng(s) for s in (7, 7, 8))
    seq_a = [sample_logits(logits, 1.0, rng_a) for _ in range(100)]
    seq_b = [sample_logits(logits, 1.0, rng_b) for _ in range(100)]
    seq_c = [sample_logits(logits, 1.0, rng_c) for _ in range(100)]
    assert seq_a == seq_b
    assert seq_a != seq_c
    assert all(type(i) is int and 0 <= i < 10 for i in seq_a)


def test_sample_1d_and_2d_agree_and_types():
    logits = np.array([0.3, -0.2, 1.5, 0.0])
    rng_one, rng_two = np.random.default_rng(3), np.random.default_rng(3)
    one = [sample_logits(logits, 0.8, rng_one) for _ in range(5)]
    two = [sample_logits(logits[None, :], 0.8, rng_two) for _ in range(5)]
    assert all(isinstance(t, np.ndarray) and t.shape == (1,) and t.dtype == np.int64 for t in two)
    assert one == [int(t[0]) for t in two]


def test_sample_does_not_touch_global_random_state():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    draw = sample_logits([0.0, 1.0, 2.0])
    assert draw in (0, 1, 2)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize("temperature", [0.0, 1e-8])
def test_sample_low_temperature_is_argmax(rng, temperature):
    logits = rng.normal(size=(500, 30)) * 3.0
    draws = sample_logits(logits, temperature, rng)
    np.testing.assert_array_equal(draws, np.argmax(logits, axis=1))


def test_sample_greedy_ties_go_to_lowest_index():
    assert sample_logits([1.0, 3.0, 3.0, 0.0], 0.0) == 1
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert sample_logits([[5.0, 5.0], [2.0, 7.0]], 0, rng).tolist() == [0, 1]
    assert rng.bit_generator.state == state  # greedy draws no random numbers


def test_sample_tiny_temperature_draws_only_among_tied_maxima(rng):
    draws = sample_logits(np.tile([0.0, 5.0, 5.0, 4.9999], (400, 1)), 1e-8, rng)
    assert set(draws.tolist()) == {1, 2}


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_sample_frequencies_match_softmax(temperature):
    rng = np.random.default_rng(11)
    logits = np.array([1.0, 2.0, 0.5, -1.0, 3.0, 0.0])
    n = 20_000
    draws = sample_logits(np.tile(logits, (n, 1)), temperature, rng)
    counts = np.bincount(draws, minlength=len(logits))
    p = _softmax(logits, temperature)
    z = (counts - n * p) / np.sqrt(n * p * (1 - p))
    assert np.all(np.abs(z) < 4.5), f"z-scores {z}"


def test_sample_rows_are_independent_distributions():
    rng = np.random.default_rng(5)
    logits = np.array([[0.0, 1e4, 0.0], [1e4, 0.0, 0.0], [0.0, 0.0, 1e4]] * 2000)
    draws = sample_logits(logits, 1.0, rng)
    np.testing.assert_array_equal(draws, np.tile([1, 0, 2], 2000))
    mixed = np.tile([[0.0, np.log(3.0)], [np.log(3.0), 0.0]], (10_000, 1))
    draws = sample_logits(mixed, 1.0, rng)
    # row type 0 draws id 1 with p = 3/4, row type 1 draws id 1 with p = 1/4
    for row, p in ((0, 0.75), (1, 0.25)):
        freq = draws[row::2].mean()
        assert abs(freq - p) < 4.5 * math.sqrt(p * (1 - p) / 10_000)


class _FixedUniform(np.random.Generator):
    """A Generator whose uniforms are all one value, to probe the inverse CDF's edges."""

    def __init__(self, u):
        super().__init__(np.random.PCG64(0))
        self.u = u

    def random(self, size=None, dtype=np.float64, out=None):
        return np.full(size, self.u)


@pytest.mark.parametrize(
    ("logits", "u", "expected"),
    [
        ([-1000.0, 0.0, 0.0], 0.0, 1),  # u = 0 must skip a leading zero-probability id
        ([0.0, 0.0, -1000.0], np.nextafter(1.0, 0.0), 1),  # u -> 1 must skip a trailing one
        ([0.0, -1000.0, 0.0, -1000.0], 0.5, 2),  # and one in the middle
        ([0.0, -1000.0, 0.0, -1000.0], np.nextafter(0.5, 0.0), 0),
    ],
)
def test_sample_never_draws_probabilities_that_round_to_zero(logits, u, expected):
    assert sample_logits(logits, 1.0, _FixedUniform(u)) == expected


@pytest.mark.parametrize("temperature", [1e-8, 1e-3, 1.0, 1e3, 1e8])
@pytest.mark.parametrize(
    "logits",
    [
        [1e4, -1e4, 0.0, 1e4 - 1.0],
        [-1e4, -1e4 + 1e-3, -1e4],
        [1e308, -1e308, 0.0],
        np.array([3e38, -3e38, 1.0], dtype=np.float32),
        [0.0, -800.0, -1e4, 0.0],
    ],
)
def test_sample_raises_no_floating_point_warnings(rng, logits, temperature):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            draws = sample_logits(np.tile(logits, (200, 1)), temperature, rng)
    assert draws.min() >= 0 and draws.max() < len(logits)
    logits = np.asarray(logits, dtype=np.float64)
    if temperature <= 1.0:  # nothing far below the maximum can come out
        assert np.all(logits[draws] >= logits.max() - 30 * max(temperature, 1.0))


def test_sample_raises_no_warning_with_everything_raising(rng):
    with np.errstate(all="raise"):
        assert sample_logits([1e4, -1e4], 1e-8, rng) == 0
        assert sample_logits([0.0, 0.0], 1.0, rng) in (0, 1)


@pytest.mark.parametrize(
    ("kwargs", "exc", "fragment"),
    [
        ({"temperature": -1.0}, ValueError, "temperature"),
        ({"temperature": float("nan")}, ValueError, "temperature"),
        ({"temperature": float("inf")}, ValueError, "temperature"),
        ({"temperature": "1"}, TypeError, "temperature"),
        ({"temperature": True}, TypeError, "temperature"),
        ({"rng": 42}, TypeError, "Generator"),
        ({"rng": np.random.RandomState(0)}, TypeError, "Generator"),
        ({"logits": [0.0, np.nan]}, ValueError, "finite"),
        ({"logits": [[0.0, 1.0], [np.inf, 0.0]]}, ValueError, r"finite.*\(1, 0\)"),
        ({"logits": np.zeros((2, 2, 2))}, ValueError, "shape"),
        ({"logits": []}, ValueError, "at least one"),
        ({"logits": np.zeros((0, 3))}, ValueError, "at least one"),
        ({"logits": [1j, 0j]}, TypeError, "real"),
        ({"logits": ["a", "b"]}, TypeError, "real"),
    ],
)
def test_sample_errors(kwargs, exc, fragment):
    args = {"logits": [0.0, 1.0], "temperature": 1.0, "rng": np.random.default_rng(0)}
    args.update(kwargs)
    with pytest.raises(exc, match=fragment):
        sample_logits(args["logits"], args["temperature"], args["rng"])
