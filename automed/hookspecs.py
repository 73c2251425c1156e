"""The hooks a plugin can implement. Every built-in registers through these same hooks.

Hooks are called with keyword arguments only. Collector hooks receive a ``register`` callback
rather than returning lists, so one plugin can register several things and the plugin manager
can tell who registered what.
"""

from __future__ import annotations

import pluggy

PROJECT = "automed"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_architectures(register):
    """Register architecture families with the search.

    :param register: call ``register(architecture)`` once per
        :class:`automed.architecture.Architecture` instance. Names must be unique across all
        plugins; a duplicate is reported as a plugin error instead of silently replacing one.

    Fires once, the first time the plugin manager is asked for architectures.
    """


@hookspec
def register_loaders(register):
    """Register data loaders.

    :param register: call ``register(loader)`` once per :class:`automed.data.loaders.base.Loader`
        instance. A loader claims files by suffix (and ``sniff``); the first plugin to claim a
        path wins, and ``--format NAME`` picks one explicitly.

    Fires once, the first time the plugin manager is asked for loaders.
    """
