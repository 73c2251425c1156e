"""One error family for everything a user can get wrong.

Every message is a single line that names the problem (file, column, plugin, architecture) and
the fix. The CLI prints ``error: <message>`` and exits non-zero; nothing else is caught.
"""

from __future__ import annotations

import re

# Characters shown as visible escapes wherever automed repeats text it did not write (an
# exception's message, a name from the data): C0 and C1 controls, DEL, and the bidi and
# line-separator controls that reorder or split what a reader sees (U+202E shows "exe.txt"
# as "txt.exe"; ESC [2J clears the terminal of whoever runs `automed show`).
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                        "\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(text: str, *, keep: str = "") -> str:
    """``text`` with every control character shown as ``\\x1b`` / ``\\u202e`` / ``\\n``,
    except those in ``keep`` (e.g. ``"\\n\\t"`` for a multi-line traceback)."""
    return _INVISIBLE.sub(lambda m: m.group() if m.group() in keep else _NAMED.get(m.group())
                          or (f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                              else f"\\u{ord(m.group()):04x}"), text)


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
