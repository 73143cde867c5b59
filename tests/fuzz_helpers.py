"""Checks shared by the fuzz tests: bad input gets the documented error, raised on purpose.

``assert_refused(call, ...)`` runs ``call()`` under a time limit and passes only
if it raises one of the documented exception types *from a ``raise`` statement
of rnnkit* (or of scikit-learn's input validation, for the estimators), with a
one-line message that names what was wrong. An IndexError, KeyError,
AttributeError, a NumPy error that leaks through (its last frame is a NumPy
call, not a ``raise``), a warning turned error, a hang or an accepted bad
input all fail the test.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import signal
from pathlib import Path

import rnnkit

RNNKIT_DIR = Path(rnnkit.__file__).resolve().parent


class Hang(BaseException):
    """Raised by the alarm of :func:`time_limit` (a BaseException, so nothing swallows it)."""


@contextlib.contextmanager
def time_limit(seconds):
    """Raise :class:`Hang` in the main thread if the block runs longer than ``seconds``."""

    def on_alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@functools.cache
def _raise_lines(filename):
    """The line numbers that ``raise`` statements of a source file cover."""
    tree = ast.parse(Path(filename).read_text(encoding="utf-8"))
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise):
            lines.update(range(node.lineno, node.end_lineno + 1))
    return frozenset(lines)


def raise_site(exc):
    """(file, line) of the innermost frame of ``exc``'s traceback."""
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve(), tb.tb_lineno


def check_clean(exc, names=(), also_from=()):
    """``exc`` was raised by a ``raise`` of rnnkit (or under ``also_from``) and names the problem."""
    path, line = raise_site(exc)
    msg = str(exc)
    if RNNKIT_DIR in path.parents:
        assert line in _raise_lines(str(path)), (
            f"{type(exc).__name__} from {path.name}:{line}, which is not a raise statement: "
            f"an error of NumPy or Python leaked through: {msg}")
        assert "\n" not in msg.strip(), f"not a one-line message: {msg!r}"
        if names:
            assert any(n.lower() in msg.lower() for n in names), (
                f"the message names none of {names}: {msg!r}")
    else:
        assert any(Path(d) in path.parents for d in also_from), (
            f"{type(exc).__name__} raised inside {path}, not by rnnkit: {msg}")
    assert msg.strip(), f"{type(exc).__name__} with an empty message"


def assert_refused(call, types=(ValueError, TypeError), names=(), also_from=(), seconds=20):
    """``call()`` must raise one of ``types`` cleanly (see the module docstring); returns the message."""
    try:
        with time_limit(seconds):
            result = call()
    except types as exc:
        check_clean(exc, names, also_from)
        return str(exc)
    except Hang as exc:
        raise AssertionError(f"hang: {exc}") from None
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__} instead of "
                             f"{' or '.join(t.__name__ for t in types)}: {exc}") from exc
    raise AssertionError(f"bad input accepted: the call returned a {type(result).__name__}")
