"""Find, load and query plugins; every plugin, built-in or not, goes through the same hooks.

Loading is lazy and happens once per process. Each entry point is imported in its own
try/except: a broken plugin is recorded (name, version, error) and skipped, so one bad install
never breaks every command. ``AUTOMED_STRICT_PLUGINS=1`` makes such failures fatal.
``AUTOMED_LOAD_PLUGINS=a,b`` loads only the named third-party plugins ("" loads none).
``AUTOMED_PLUGINS_PATH=file.py:package.module`` adds plugins that are not installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pluggy

from automed import hookspecs
from automed.errors import ConfigError, PluginError

ENTRY_POINT_GROUP = "automed"

# Built-ins are ordinary plugin modules, registered exactly like third-party entry points.
DEFAULT_PLUGINS = (
    "automed.plugins.cnn",
    "automed.plugins.rnn",
    "automed.plugins.lstm",
    "automed.plugins.attention",
    "automed.plugins.biosequence",
    "automed.plugins.mlp",
    "automed.loaders.npz",
    "automed.loaders.images",
    # Loaders that sniff file contents come before the signal table, which takes any table.
    "automed.loaders.text",
    "automed.loaders.sequences",
    "automed.loaders.tabular",
    "automed.loaders.signals",
)


@dataclass
class PluginInfo:
    name: str
    version: str | None
    module: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    architectures: list[str] = field(default_factory=list)
    loaders: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def broken(self) -> bool:
        return self.error is not None


def _strict() -> bool:
    return os.environ.get("AUTOMED_STRICT_PLUGINS", "").lower() in ("1", "true", "yes")


class PluginManager:
    """A pluggy manager plus automed's bookkeeping of who registered what."""

    def __init__(self, *, load_entry_points: bool = True, extra: list[str] | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._architectures: dict | None = None
        self._loaders: dict | None = None
        for module_name in DEFAULT_PLUGINS:
            self._register_module(module_name.rsplit(".", 1)[-1], module_name, builtin=True)
        if load_entry_points:
            self._load_entry_points()
        paths = os.environ.get("AUTOMED_PLUGINS_PATH", "")
        for source in [p for p in paths.split(os.pathsep) if p] + list(extra or []):
            self.add_source(source)

    # -- loading -------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        allowed = os.environ.get("AUTOMED_LOAD_PLUGINS")
        allow = None if allowed is None else {a.strip() for a in allowed.split(",") if a.strip()}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allow is not None and ep.name not in allow:
                continue
            version = ep.dist.version if ep.dist is not None else None
            dist_name = ep.dist.name if ep.dist is not None else ep.name
            if ep.value.startswith("automed.") and dist_name == "automed":
                continue  # our own distribution: already registered as a built-in
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import error is the plugin's
                self._broken(ep.name, version, ep.value, exc)
                continue
            self._register(ep.name, module, version=version, builtin=False)

    def add_source(self, source: str) -> str:
        """Register a plugin from a ``.py`` file path or an importable module name."""
        try:
            if source.endswith(".py") or os.sep in source or "/" in source:
                path = Path(source).expanduser().resolve()
                if not path.is_file():
                    raise ConfigError(
                        f"plugin file {source} does not exist; give a .py file or a module name"
                    )
                name = path.stem
                spec = importlib.util.spec_from_file_location(f"automed_local_{name}", path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
            else:
                name = source
                module = importlib.import_module(source)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001
            self._broken(Path(source).stem, None, source, exc)
            return Path(source).stem
        self._register(name, module, version=None, builtin=False)
        self._architectures = self._loaders = None
        return name

    def _register_module(self, name: str, module_name: str, builtin: bool) -> None:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001
            self._broken(name, None, module_name, exc)
            return
        self._register(name, module, version=None, builtin=builtin)

    def _register(self, name: str, module: ModuleType, version: str | None,
                  builtin: bool) -> None:
        if self.pm.is_registered(module) or name in self.plugins and not self.plugins[name].broken:
            return
        info = PluginInfo(name, version, getattr(module, "__name__", str(module)), builtin)
        try:
            self.pm.register(module, name=name)
            # A hook implementation with a misspelt name would silently never run.
            unknown = [
                h for h in self.pm.get_hookcallers(module) or [] if not h.has_spec()
            ]
            if unknown:
                self.pm.unregister(module)
                raise PluginError(
                    f"implements unknown hook(s) {[h.name for h in unknown]}; known hooks: "
                    f"{sorted(self.hook_names())}"
                )
        except Exception as exc:  # noqa: BLE001
            self._broken(name, version, info.module, exc)
            return
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(module) or [])
        self.plugins[name] = info

    def _broken(self, name: str, version: str | None, module: str, exc: Exception) -> None:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        info = PluginInfo(name, version, module, builtin=False,
                          error=f"{type(exc).__name__}: {message}")
        self.plugins[name] = info
        if _strict():
            raise PluginError(
                f"plugin {name!r} ({module}) failed to load: {info.error}; fix or uninstall it, "
                "or unset AUTOMED_STRICT_PLUGINS to skip broken plugins"
            ) from exc
        print(f"warning: plugin {name!r} skipped: {info.error}", file=sys.stderr)

    def hook_names(self) -> list[str]:
        return [n for n in dir(hookspecs) if n.startswith("register_")]

    # -- collecting ----------------------------------------------------------------------
    def _collect(self, hook_name: str, kind: str, attr: str) -> dict:
        found: dict = {}
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            plugin_name = impl.plugin_name
            info = self.plugins.get(plugin_name)

            def register(obj, _plugin=plugin_name):
                name = getattr(obj, "name", "")
                if not name:
                    raise PluginError(f"plugin {_plugin!r} registered a {kind} without a name")
                if name in found:
                    raise PluginError(
                        f"{kind} {name!r} is registered twice (by {found[name][1]!r} and "
                        f"{_plugin!r}); rename one of them"
                    )
                found[name] = (obj, _plugin)

            try:
                impl.function(register=register)
            except Exception as exc:  # noqa: BLE001
                self._broken(plugin_name, info.version if info else None,
                             info.module if info else plugin_name, exc)
                continue
            if info is not None:
                setattr(info, attr, sorted(n for n, (_, p) in found.items() if p == plugin_name))
        return {name: obj for name, (obj, _) in found.items()}

    def architectures(self) -> dict:
        if self._architectures is None:
            self._architectures = self._collect("register_architectures", "architecture",
                                                "architectures")
        return self._architectures

    def loaders(self) -> dict:
        if self._loaders is None:
            self._loaders = self._collect("register_loaders", "loader", "loaders")
        return self._loaders

    def architectures_for(self, modality: str, names: list[str] | None = None) -> dict:
        """The architectures accepting ``modality``; ``names`` restricts and validates."""
        archs = self.architectures()
        if names:
            unknown = [n for n in names if n not in archs]
            if unknown:
                raise ConfigError(
                    f"unknown architecture {', '.join(unknown)}; available: "
                    f"{', '.join(sorted(archs)) or 'none'} (see `automed plugins`)"
                )
            wrong = [n for n in names if not archs[n].accepts(modality)]
            if wrong:
                raise ConfigError(
                    f"architecture {', '.join(wrong)} does not accept {modality} data; "
                    f"choose from {', '.join(sorted(self.architectures_for(modality)))}"
                )
            return {n: archs[n] for n in names}
        chosen = {n: a for n, a in archs.items() if a.accepts(modality)}
        if not chosen:
            raise ConfigError(
                f"no installed architecture accepts {modality} data; install a plugin that "
                "does (see `automed plugins`)"
            )
        return chosen


_MANAGER: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, created on first use."""
    global _MANAGER
    if _MANAGER is None:
        _MANAGER = PluginManager()
    return _MANAGER


def reset_plugin_manager() -> None:
    """Forget loaded plugins (tests, and after changing AUTOMED_* variables)."""
    global _MANAGER
    _MANAGER = None
