"""One error family for everything a user can get wrong.

Every message is a single line that names the problem (file, column, plugin, architecture) and
the fix. The CLI prints ``error: <message>`` and exits non-zero; nothing else is caught.
"""

from __future__ import annotations


class AutomedError(Exception):
    """Base class of every error automed raises on purpose."""

    exit_code = 2


class DataError(AutomedError):
    """The dataset cannot be read or is not fit for a search (format, labels, shapes)."""


class ConfigError(AutomedError):
    """An option has a value automed does not know (metric, architecture, device, ...)."""


class PluginError(AutomedError):
    """A plugin could not be loaded or broke its contract."""


class StorageError(AutomedError):
    """The study database cannot be reached, or holds something unexpected."""


class CandidateError(AutomedError):
    """One candidate failed (its architecture raised, gave a wrong shape or NaN loss).

    It fails only its own trial; the search goes on.
    """


class Surplus(CandidateError):
    """A trial started after the study's budget was taken by other workers; it never runs."""


class DataWarning(UserWarning):
    """Something about the data the search goes on with but the user should see (leakage, a
    family left out, texts without shared words); also a progress line and stored with the
    study."""


class PluginWarning(UserWarning):
    """A plugin's fault the search goes on without (a family's default_params raised); also
    a progress line."""


def user_stacklevel() -> int:
    """The ``stacklevel`` for ``warnings.warn`` called here that names the first frame outside
    automed: the user's line, not a wrapper of ours (``warn(..., stacklevel=user_stacklevel())``
    in the function that warns)."""
    import os
    import sys

    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(2), 2  # the function that warns is level 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's stop): a search stops the way Ctrl-C stops it."""
