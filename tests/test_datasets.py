"""Tests for rnnkit.data.datasets: every loader's layout, dtypes, ranges and splits,
the registry and dispatcher, missing optional packages, and the spoken-digit loader
(synthetic WAV files always; the real archive in ../shared/data when it is there)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import wave

import numpy as np
import pytest

from rnnkit.data import datasets as ds
from rnnkit.data.datasets import (
    DATASETS,
    SequenceDataset,
    SeriesDataset,
    find_fsdd,
    load,
    load_fsdd,
)

OPTIONAL = ("sklearn", "statsmodels", "sktime", "librosa", "soundfile")


def _needs(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} is not installed (pip install 'rnnkit[data]')")


@pytest.fixture(autouse=True)
def _no_user_env(monkeypatch, tmp_path):
    """Keep the user's environment and cache out of every test."""
    monkeypatch.delenv(ds.FSDD_ENV, raising=False)
    monkeypatch.setenv(ds.CACHE_ENV, str(tmp_path / "cache"))


# --------------------------------------------------------------------------- module, registry


def test_module_imports_no_optional_package():
    code = (
        "import sys, rnnkit\n"
        f"opt = {OPTIONAL!r}\n"
        "before = {m for m in opt if m in sys.modules}\n"
        "import rnnkit.data.datasets\n"
        "after = {m for m in opt if m in sys.modules}\n"
        "print(sorted(after - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registry_describes_every_loader():
    assert set(DATASETS) == {"digits", "sunspots", "airline", "japanese_vowels", "fsdd"}
    for name, info in DATASETS.items():
        assert info.name == name
        assert info.task in ("classification", "forecasting")
        for field in ("description", "split", "source", "licence", "citation"):
            assert getattr(info, field).strip(), (name, field)
        assert info.requires and callable(info.loader)
        assert info.loader.__doc__ and "Returns" in info.loader.__doc__
    assert DATASETS["fsdd"].needs_file and DATASETS["fsdd"].licence == "CC BY-SA 4.0"
    assert "Jakobovski/free-spoken-digit-dataset" in DATASETS["fsdd"].citation


def test_load_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown data set 'mnist'.*digits.*fsdd"):
        load("mnist")
    with pytest.raises(TypeError, match="must be a str"):
        load(3)


def test_load_normalizes_names_and_passes_kwargs(tmp_path):
    _needs("sktime")
    assert load("Japanese-Vowels").name == "japanese_vowels"
    with pytest.raises(TypeError):
        load("sunspots", bogus=1)
    with pytest.raises(FileNotFoundError, match="nowhere.tar.gz"):
        load("fsdd", path=tmp_path / "nowhere.tar.gz")


@pytest.mark.parametrize(
    ("loader", "module", "pip_name"),
    [
        ("load_digits_sequences", "sklearn", "scikit-learn"),
        ("load_sunspots", "statsmodels", "statsmodels"),
        ("load_airline", "sktime", "sktime"),
        ("load_japanese_vowels", "sktime", "sktime"),
    ],
)
def test_missing_optional_package_names_the_extra(monkeypatch, loader, module, pip_name):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ImportError, match=rf"rnnkit\[data\].*pip install {pip_name}") as err:
        getattr(ds, loader)()
    assert f"{loader}()" in str(err.value)


@pytest.mark.parametrize("module", ["librosa", "soundfile"])
def test_fsdd_missing_audio_package_names_the_extra(monkeypatch, tmp_path, module):
    _write_wav_dir(tmp_path / "wavs", speakers=("ann",), digits=(0,), indices=(0,))
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=rf"load_fsdd\(\) needs .*{module}.*rnnkit\[data\]"):
        load_fsdd(tmp_path / "wavs", cache=False)


# --------------------------------------------------------------------------- digits


def test_digits_rows_as_steps():
    _needs("sklearn")
    from sklearn.datasets import load_digits

    d = load("digits")
    assert isinstance(d, SequenceDataset) and d.name == "digits"
    assert d.X.shape == (1797, 8, 8) and d.X.dtype == np.float64
    assert d.y.shape == (1797,) and d.y.dtype == np.int64
    assert d.X.min() == 0 and d.X.max() == 16 and np.array_equal(d.X, np.round(d.X))
    assert np.array_equal(np.unique(d.y), np.arange(10)) and np.bincount(d.y).min() >= 174
    # step t is row t of the image, read left to right
    flat = load_digits().data
    assert np.array_equal(d.X.reshape(1797, 64), flat)
    assert np.array_equal(d.X[5, 2], flat[5, 16:24])
    assert not d.variable_length and d.n_features == 8 and np.all(d.lengths == 8)
    assert d.is_test is None and d.groups is None
    with pytest.raises(ValueError, match="no official train/test split.*train_test_split"):
        _ = d.X_train


# --------------------------------------------------------------------------- series


def test_sunspots_years_values_and_split():
    _needs("statsmodels")
    s = load("sunspots")
    assert isinstance(s, SeriesDataset) and s.freq == "yearly"
    assert s.y.shape == (309,) and s.y.dtype == np.float64 and np.all(np.isfinite(s.y))
    assert s.index.dtype == np.int64 and np.array_equal(s.index, np.arange(1700, 2009))
    assert s.y.min() >= 0 and s.y[0] == 5.0 and s.index[np.argmax(s.y)] == 1957
    assert s.index_train[0] == 1700 and s.index_train[-1] == 1920 and len(s.y_train) == 221
    assert s.index_test[0] == 1921 and s.index_test[-1] == 1987 and len(s.y_test) == 67
    assert s.train.stop == s.test.start  # contiguous, no overlap
    assert np.array_equal(s.y_test, s.y[221:288])


def test_airline_months_values_and_split():
    _needs("sktime")
    a = load("airline")
    assert isinstance(a, SeriesDataset) and a.freq == "monthly"
    assert a.y.shape == (144,) and a.y.dtype == np.float64
    assert a.index.dtype == np.dtype("datetime64[M]")
    assert a.index[0] == np.datetime64("1949-01") and a.index[-1] == np.datetime64("1960-12")
    assert np.all(np.diff(a.index) == np.timedelta64(1, "M"))
    assert a.y.min() == 104 and a.y.max() == 622 and a.y[0] == 112
    assert len(a.y_train) == 96 and a.index_train[-1] == np.datetime64("1956-12")
    assert len(a.y_test) == 48 and a.index_test[0] == np.datetime64("1957-01")
    assert a.train.stop == a.test.start and a.test.stop == 144


# --------------------------------------------------------------------------- JapaneseVowels


def test_japanese_vowels_variable_length_and_official_split():
    _needs("sktime")
    j = load("japanese_vowels")
    assert isinstance(j.X, list) and len(j.X) == 640 and j.variable_length
    assert all(x.ndim == 2 and x.shape[1] == 12 and x.dtype == np.float64 for x in j.X)
    assert all(np.all(np.isfinite(x)) for x in j.X)
    lengths = j.lengths
    assert lengths.dtype == np.int64 and lengths.min() == 7 and lengths.max() == 29
    assert j.n_features == 12 and j.y.dtype == np.int64
    assert np.array_equal(np.unique(j.y), np.arange(1, 10))
    assert j.is_test.sum() == 370 and not j.is_test[:270].any() and j.is_test[270:].all()
    assert len(j.X_train) == 270 and np.array_equal(np.bincount(j.y_train), [0] + [30] * 9)
    assert len(j.X_test) == 370 and len(j.y_test) == 370
    assert j.X_test[0] is j.X[270]


# --------------------------------------------------------------------------- FSDD (synthetic)


def _wav_bytes(samples: np.ndarray, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def _write_wav_dir(folder, speakers=("ann", "bob"), digits=(0, 1, 2), indices=range(7)):
    """Tiny FSDD look-alike: tones plus noise, lengths varying; returns {name: n_samples}."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for d in digits:
        for s in speakers:
            for i in indices:
                n = 400 if (d, s, i) == (0, speakers[0], 6) else int(rng.integers(1148, 4000))
                t = np.arange(n) / 8000
                sig = 0.3 * np.sin(2 * np.pi * (300 + 150 * d) * t) + 0.05 * rng.standard_normal(n)
                name = f"{d}_{s}_{i}.wav"
                (folder / name).write_bytes(_wav_bytes(sig))
                sizes[name] = n
    return sizes


def _tar_of(folder, archive):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="recordings")
        readme = b"readme"
        info = tarfile.TarInfo("README.md")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    return archive


@pytest.fixture
def fake_fsdd(tmp_path):
    _needs("librosa")
    _needs("soundfile")
    sizes = _write_wav_dir(tmp_path / "recordings")
    return tmp_path, sizes


def _same(a: SequenceDataset, b: SequenceDataset) -> bool:
    return (
        len(a.X) == len(b.X)
        and all(np.array_equal(x, z) for x, z in zip(a.X, b.X))
        and np.array_equal(a.y, b.y)
        and np.array_equal(a.groups, b.groups)
        and np.array_equal(a.is_test, b.is_test)
        and np.array_equal(a.meta["filename"], b.meta["filename"])
    )


def test_fsdd_layout_split_and_frames(fake_fsdd):
    root, sizes = fake_fsdd
    f = load_fsdd(_tar_of(root / "recordings", root / "fake.tar.gz"), cache=False)
    assert f.name == "fsdd" and len(f.X) == 2 * 3 * 7 == f.n_samples
    assert all(x.dtype == np.float64 and x.shape[1] == 13 and np.isfinite(x).all() for x in f.X)
    assert f.y.dtype == np.int64 and np.array_equal(np.unique(f.y), [0, 1, 2])
    assert set(f.groups) == {"ann", "bob"}
    rec = f.meta["recording"]
    assert np.array_equal(f.is_test, rec < 5) and f.is_test.sum() == 30
    assert len(f.X_train) == 12 and set(rec[~f.is_test]) == {5, 6}
    # ordered by digit, speaker, index; T_i = 1 + n_samples // hop
    assert list(f.meta["filename"][:3]) == ["0_ann_0.wav", "0_ann_1.wav", "0_ann_2.wav"]
    for x, name in zip(f.X, f.meta["filename"]):
        assert x.shape[0] == 1 + sizes[name] // 80
        assert x.flags.c_contiguous
    assert f.lengths.min() == 1 + 400 // 80  # the short file (6 frames) is kept


def test_fsdd_folder_equals_archive_and_features_match_librosa(fake_fsdd):
    import librosa
    import soundfile

    root, _ = fake_fsdd
    from_tar = load_fsdd(_tar_of(root / "recordings", root / "fake.tar"), cache=False)
    from_dir = load_fsdd(root, cache=False)  # finds recordings/*.wav
    assert _same(from_tar, from_dir)
    audio, rate = soundfile.read(root / "recordings" / "1_bob_3.wav", dtype="float64")
    ref = librosa.feature.mfcc(
        y=audio, sr=rate, n_mfcc=13, n_fft=256, win_length=200, hop_length=80, n_mels=40
    ).T
    got = from_dir.X[list(from_dir.meta["filename"]).index("1_bob_3.wav")]
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize(("deltas", "width"), [(1, 26), (2, 39)])
def test_fsdd_deltas_widen_features(fake_fsdd, deltas, width):
    root, _ = fake_fsdd
    f = load_fsdd(root, deltas=deltas, cache=False)
    assert {x.shape[1] for x in f.X} == {width}
    assert all(np.isfinite(x).all() for x in f.X)  # including the 6-frame recording
    base = load_fsdd(root, cache=False)
    assert all(np.array_equal(x[:, :13], b) for x, b in zip(f.X, base.X))


def test_fsdd_cache_round_trip(fake_fsdd, monkeypatch, tmp_path):
    root, _ = fake_fsdd
    cache_dir = tmp_path / "cache"  # $RNNKIT_CACHE, set by the autouse fixture
    first = load_fsdd(root)
    files = sorted(cache_dir.glob("fsdd-*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as npz:  # no object arrays inside
        assert all(npz[k].dtype != object for k in npz.files)

    def boom(*args, **kwargs):
        raise AssertionError("features recomputed despite a valid cache")

    with monkeypatch.context() as m:
        m.setattr(ds, "_compute_fsdd", boom)
        again = load_fsdd(root)
    assert _same(first, again)
    # other settings, another key; cache=False neither reads nor writes
    load_fsdd(root, n_mfcc=8)
    assert len(list(cache_dir.glob("fsdd-*.npz"))) == 2
    load_fsdd(root, n_mfcc=5, cache=False)
    assert len(list(cache_dir.glob("fsdd-*.npz"))) == 2
    # an explicit folder
    other = tmp_path / "elsewhere"
    assert _same(load_fsdd(root, cache=other), first)
    assert len(list(other.glob("fsdd-*.npz"))) == 1
    # changed data change the key
    (root / "recordings" / "2_bob_6.wav").unlink()
    assert load_fsdd(root).n_samples == first.n_samples - 1


def test_fsdd_cache_corrupt_or_unwritable_only_warns(fake_fsdd, tmp_path):
    root, _ = fake_fsdd
    first = load_fsdd(root)
    (cached,) = (tmp_path / "cache").glob("fsdd-*.npz")
    cached.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="unusable feature cache"):
        again = load_fsdd(root)
    assert _same(first, again)
    assert _same(load_fsdd(root), first)  # rewritten, valid again
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.warns(UserWarning, match="could not write the feature cache"):
        assert _same(load_fsdd(root, cache=blocker), first)


def test_fsdd_bad_inputs(fake_fsdd, tmp_path):
    root, _ = fake_fsdd
    for kwargs, err, msg in [
        ({"deltas": 3}, ValueError, "deltas must be 0, 1 or 2"),
        ({"n_mfcc": 0}, ValueError, "n_mfcc must be >= 1"),
        ({"n_mfcc": 2.0}, TypeError, "n_mfcc must be an int"),
        ({"win_length": 300}, ValueError, "at most n_fft"),
        ({"n_mfcc": 50}, ValueError, "at most n_mels"),
    ]:
        with pytest.raises(err, match=msg):
            load_fsdd(root, cache=False, **kwargs)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no FSDD recordings"):
        load_fsdd(empty, cache=False)
    not_tar = tmp_path / "x.tar.gz"
    not_tar.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable tar archive"):
        load_fsdd(not_tar, cache=False)
    whole = _tar_of(root / "recordings", tmp_path / "whole.tar.gz").read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="not a readable tar archive"):
        load_fsdd(cut, cache=False)
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "hello.wav").write_bytes(_wav_bytes(np.zeros(2000)))
    with pytest.raises(ValueError, match="unexpected file 'hello.wav'"):
        load_fsdd(odd, cache=False)
    fast = tmp_path / "fast"
    fast.mkdir()
    (fast / "3_ann_0.wav").write_bytes(_wav_bytes(np.zeros(2000), rate=16000))
    with pytest.raises(ValueError, match="16000 Hz"):
        load_fsdd(fast, cache=False)


def test_fsdd_missing_file_message(tmp_path, monkeypatch):
    missing = tmp_path / "no" / "fsdd_recordings.tar.gz"
    with pytest.raises(FileNotFoundError) as err:
        load_fsdd(missing)
    text = str(err.value)
    assert str(missing) in text and ds.FSDD_ENV in text
    assert "github.com/Jakobovski/free-spoken-digit-dataset" in text
    monkeypatch.setenv(ds.FSDD_ENV, str(tmp_path / "env.tar.gz"))
    with pytest.raises(FileNotFoundError, match=r"\$RNNKIT_FSDD.*env\.tar\.gz"):
        find_fsdd()


def test_fsdd_env_variable_is_used(fake_fsdd, monkeypatch):
    root, _ = fake_fsdd
    monkeypatch.setenv(ds.FSDD_ENV, str(root))
    assert find_fsdd() == root
    assert load_fsdd(cache=False).n_samples == 42


def test_fsdd_default_location_search(monkeypatch, tmp_path):
    monkeypatch.setattr(ds, "_repo_root", lambda: tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="default locations"):
        find_fsdd()
    target = tmp_path / "shared" / "data" / ds.FSDD_FILENAME
    target.parent.mkdir(parents=True)
    target.write_bytes(b"")
    assert find_fsdd() == target  # ../shared/data beside the repository


# --------------------------------------------------------------------------- FSDD (real archive)


@pytest.fixture(scope="module")
def real_fsdd(tmp_path_factory):
    _needs("librosa")
    _needs("soundfile")
    try:
        path = find_fsdd()  # $RNNKIT_FSDD if set, else ../shared/data beside the repository
    except FileNotFoundError:
        pytest.skip(
            "the FSDD archive ../shared/data/fsdd_recordings.tar.gz is not here (it lives"
            " outside the project); set RNNKIT_FSDD to it to run these tests"
        )
    cache = tmp_path_factory.mktemp("fsdd_cache")
    return path, cache, load_fsdd(path, cache=cache)


def test_real_fsdd_counts_and_official_split(real_fsdd):
    _, _, f = real_fsdd
    assert f.n_samples == 3000 and len(f.X) == 3000
    speakers, per_speaker = np.unique(f.groups, return_counts=True)
    assert len(speakers) == 6 and np.all(per_speaker == 500)
    assert np.all(np.bincount(f.y) == 300) and f.y.dtype == np.int64
    rec = f.meta["recording"]
    assert rec.min() == 0 and rec.max() == 49
    assert f.is_test.sum() == 300 and len(f.X_test) == 300 and len(f.y_train) == 2700
    assert np.array_equal(f.is_test, rec <= 4)
    assert np.all(np.bincount(f.y_test) == 30)
    assert all(x.shape[1] == 13 and x.dtype == np.float64 for x in f.X)
    assert all(np.isfinite(x).all() for x in f.X)
    assert 15 <= f.lengths.min() and f.lengths.max() <= 230


def test_real_fsdd_frames_follow_the_audio(real_fsdd):
    import soundfile

    path, _, f = real_fsdd
    names = list(f.meta["filename"])
    with tarfile.open(path) as tar:
        for member in ("recordings/0_george_0.wav", "recordings/9_yweweler_49.wav"):
            data = tar.extractfile(member).read()
            audio, rate = soundfile.read(io.BytesIO(data))
            assert rate == 8000
            assert f.X[names.index(os.path.basename(member))].shape[0] == 1 + len(audio) // 80


def test_real_fsdd_cache_hit(real_fsdd, monkeypatch):
    path, cache, f = real_fsdd
    assert len(list(cache.glob("fsdd-*.npz"))) == 1
    monkeypatch.setattr(ds, "_compute_fsdd", lambda *a, **k: pytest.fail("recomputed"))
    assert _same(load("fsdd", path=path, cache=cache), f)
