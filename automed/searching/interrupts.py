"""Ctrl-C and SIGTERM that land inside a database call.

Python runs a signal's handler between two bytecodes, so Ctrl-C (or SIGTERM, see
:func:`~automed.searching.workers.sigterm_as_interrupt`) can stop a search in the middle of an
SQLite query. SQLAlchemy then closes the connection, but the interrupted cursor stays referenced
from the exception's traceback, and SQLite keeps a closed connection with an unfinished
statement alive, with its locks, until that statement is freed. Optuna's transactions take the
file's write lock when they begin (``BEGIN IMMEDIATE``, see ``storage/store.py``), so until then
every write waits out the 60 s busy timeout: this process's own mark "interrupted", and every
other worker's. A worker stopped that way was killed after the leader's wait and left its
candidate RUNNING.

Code that goes on writing after an interruption therefore leaves its ``except`` block first
(dropping the traceback), calls :func:`settle`, and raises a fresh exception of the same kind.
Optuna can also turn the interruption into another error raised while handling it (a failed
rollback, or an unbound name in its own ``finally``): :func:`interruption_behind` finds it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def interruption_behind(exc: BaseException) -> type[KeyboardInterrupt] | None:
    """The kind of Ctrl-C / SIGTERM (:class:`~automed.errors.Terminated`) that ``exc`` is, or
    was raised while handling, if any."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return type(cur)
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def settle() -> None:
    """Free what an interrupted database call left behind (call it outside the ``except``
    block, once the exception is no longer referenced): its cursor, and with it the SQLite
    lock its closed connection still held."""
    gc.collect()


def stopping(fn: Callable[..., T], *args: Any, on_stop: Callable[[], None] | None = None,
             **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``; a Ctrl-C / SIGTERM inside it (also one that surfaces as another
    error) leaves as a fresh exception of its kind, after :func:`settle` and ``on_stop`` (say,
    writing the marks "interrupted")."""
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt as exc:
        stop = type(exc)
    except Exception as exc:
        stop = interruption_behind(exc)
        if stop is None:
            raise
    settle()  # out of the except block: the interrupted query's lock is freed first
    if on_stop is not None:
        on_stop()
    raise stop()
