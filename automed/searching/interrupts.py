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

Between two candidates a worker is inside Optuna: ``study.ask`` has written a RUNNING trial
before the objective is entered, and ``tell`` writes its end after the objective returned; a
stop landing there left that trial RUNNING (Optuna catches interrupts inside the objective
only). A worker's handler (:func:`stop_handler`) therefore stops it at once inside a
candidate, and between candidates at the next safe point: the objective's entry (the trial
then fails as interrupted) or the end of the trial (its tell written). A process that runs
candidates itself (a single-process search, one ``automed worker``) does the same for its
first Ctrl-C / SIGTERM while its candidates run (:class:`safe_points`); a second stops it at
once, as Python's own Ctrl-C would.
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


# A worker's stop: asked for (``pending``, the exception to raise), whether it was raised, and
# where the worker is: in Optuna's loop (``armed``) and inside a candidate (``inside``).
_worker = {"pending": None, "raised": False, "armed": False, "inside": False}


def stop_handler(signum: int, frame: Any) -> None:
    """A worker's SIGINT / SIGTERM handler: the first signal stops it (later ones are ignored,
    so that none cuts short its marking the candidate interrupted); inside a candidate or
    outside Optuna's loop at once, between candidates at the next safe point."""
    import signal as signals

    from automed.errors import Terminated

    if _worker["pending"] is not None:
        return
    _worker["pending"] = Terminated if signum == signals.SIGTERM else KeyboardInterrupt
    if signals.getsignal(signum) is stop_handler:  # a leader's worker (not via _first_deferred)
        # Later ones are ignored by the OS itself too: the leader repeats its stop every
        # second, and one landing while Python shut down (its handlers gone) killed a worker
        # already exiting on the first (CI: exit -SIGINT instead of 130, now and then).
        signals.signal(signum, signals.SIG_IGN)
    if _worker["armed"] and not _worker["inside"]:
        return  # in Optuna's ask or tell: raised at the objective's entry or the trial's end
    raise_pending()


def raise_terminated(signum: int, frame: Any) -> None:
    """SIGTERM's handler while the CLI runs (see workers.sigterm_as_interrupt)."""
    from automed.errors import Terminated

    raise Terminated()


def _first_deferred(signum: int, frame: Any) -> None:
    """The first stop as a worker's (:func:`stop_handler`); a second at once (the user's
    insistence: it may leave the candidate RUNNING, for a resume to retry)."""
    import signal as signals

    from automed.errors import Terminated

    if _worker["pending"] is None:
        stop_handler(signum, frame)
        return
    raise (Terminated if signum == signals.SIGTERM else KeyboardInterrupt)()


class safe_points:
    """While a process runs candidates itself: a Ctrl-C (SIGINT at Python's own handler) or
    SIGTERM (where the CLI made it an interruption) between candidates waits for the next
    safe point instead of leaving Optuna's trial RUNNING. Signals the process ignores, kills
    on, or already defers (a leader's worker) are left as they are; so is a thread that is
    not the main one."""

    def __enter__(self) -> None:
        import signal as signals
        import threading

        self.saved: dict = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, ours in ((signals.SIGINT, signals.default_int_handler),
                             (signals.SIGTERM, raise_terminated)):
            if signals.getsignal(signum) is ours:
                self.saved[signum] = ours
        if self.saved:
            reset_stop()
            for signum in self.saved:
                signals.signal(signum, _first_deferred)

    def __exit__(self, *exc: Any) -> None:
        import signal as signals

        for signum, handler in self.saved.items():
            signals.signal(signum, handler)
        if self.saved:
            reset_stop()


def reset_stop() -> None:
    """Forget a worker's stop (for a process that runs workers one after another: tests)."""
    _worker.update(pending=None, raised=False, armed=False, inside=False)


def raise_pending() -> None:
    """Raise the worker's stop if one was asked for and not raised yet."""
    if _worker["pending"] is not None and not _worker["raised"]:
        _worker["raised"] = True
        raise _worker["pending"]()


def check_stop() -> None:
    """Raise a worker's stop that was asked for inside a candidate, even if raised before: a
    signal handler's exception raised inside a weakref callback or a finaliser is discarded
    by Python ("Exception ignored in ..."), and the worker then trained on to its budget and
    was killed 30 s later (QA, 1 run in 8). Called between training steps, where a stop that
    propagated would not be."""
    if _worker["pending"] is not None and _worker["inside"]:
        _worker["raised"] = True
        raise _worker["pending"]()


class candidate_section:
    """The objective's body: where a worker's stop is raised at once."""

    def __enter__(self) -> None:
        _worker["inside"] = True
        raise_pending()  # asked for during ask(): this trial fails as interrupted

    def __exit__(self, *exc: Any) -> None:
        _worker["inside"] = False


class optuna_loop:
    """Around ``study.optimize``: a worker's stop between candidates waits for a safe point
    (``after_trial`` as Optuna callback, or the loop's end)."""

    def __enter__(self) -> None:
        _worker["armed"] = True

    def __exit__(self, kind: Any, *exc: Any) -> None:
        _worker["armed"] = False
        if kind is None:
            raise_pending()  # asked for during the last tell


def after_trial(study: Any, trial: Any) -> None:
    """Optuna callback: the trial is told; a stop asked for meanwhile is raised now."""
    raise_pending()
