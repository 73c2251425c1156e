"""Find, load and query plugins; every plugin, built-in or not, goes through the same hooks.

Loading is lazy and happens once per process. Each entry point is imported in its own
try/except: a broken plugin is recorded (name, version, error) and skipped, so one bad install
never breaks every command. ``AUTOMED_STRICT_PLUGINS=1`` makes such failures fatal. A plugin
named explicitly (``--plugin``, see :meth:`PluginManager.add_source`) is always refused when
broken: the command asked for it.
``AUTOMED_LOAD_PLUGINS=a,b`` loads only the named third-party plugins ("" loads none).
``AUTOMED_PLUGINS_PATH=file.py:package.module`` adds plugins that are not installed.

Why one module of ~370 lines: discovery has many ways to fail (broken imports, misspelt hooks,
duplicates, partial registration, allow-lists) and each needs its own message; they share the
registry state, and splitting them would spread one invariant (all-or-nothing registration)
over several files.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

import pluggy

from automed import hookspecs
from automed.errors import AutomedError, ConfigError, PluginError, visible

ENTRY_POINT_GROUP = "automed"

# Built-ins are ordinary plugin modules, registered exactly like third-party entry points.
DEFAULT_PLUGINS = (
    "automed.plugins.cnn",
    "automed.plugins.rocket",
    "automed.plugins.tfidf",
    "automed.plugins.rnn",
    "automed.plugins.lstm",
    "automed.plugins.attention",
    "automed.plugins.biosequence",
    "automed.plugins.mlp",
    "automed.plugins.fasttext",
    "automed.plugins.textcnn",
    "automed.data.loaders.npz",
    "automed.data.loaders.images",
    # Loaders that sniff file contents come before the signal table, which takes any table.
    "automed.data.loaders.text",
    "automed.data.loaders.sequences",
    "automed.data.loaders.tabular",
    "automed.data.loaders.signals",
)

# Optional built-ins, by architecture name: shipped with automed but never part of a default
# search, because they need an extra (``pip install "automed[hf]"``) and downloaded weights.
# Each loads, like a --plugin module, the first time its architecture is named
# (--architectures, a saved model, `automed plugins check`), and is searched only when named.
OPTIONAL_PLUGINS = {"hf": "automed.plugins.hf"}


@dataclass
class PluginInfo:
    """One plugin as listed: where it came from, what it registered, or why it is broken."""

    name: str
    version: str | None
    module: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    architectures: list[str] = field(default_factory=list)
    loaders: list[str] = field(default_factory=list)
    error: str | None = None
    distribution: str | None = None  # the installed distribution of an entry-point plugin

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
        self._required: set[str] = set()  # plugins named explicitly: broken is fatal
        self._warned: set = set()  # misspelt-method warnings given
        self.by_source: dict[str, str] = {}  # add_source's source -> plugin name
        self.left_out: set[str] = set()  # installed entry points AUTOMED_LOAD_PLUGINS skips
        self._architectures: dict | None = None
        self._loaders: dict | None = None
        for module_name in DEFAULT_PLUGINS:
            self._register_module(module_name.rsplit(".", 1)[-1], module_name, builtin=True)
        if load_entry_points:
            self._load_entry_points()
        paths = os.environ.get("AUTOMED_PLUGINS_PATH", "")
        self._env_names: set[str] = set()  # plugins every search has (the environment's)
        for source in [p for p in paths.split(os.pathsep) if p] + list(extra or []):
            self._env_names.add(self.add_source(source))

    # -- loading -------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        allowed = os.environ.get("AUTOMED_LOAD_PLUGINS")
        allow = None if allowed is None else {a.strip() for a in allowed.split(",") if a.strip()}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            version = ep.dist.version if ep.dist is not None else None
            dist_name = ep.dist.name if ep.dist is not None else ep.name
            if allow is not None and not allow & {ep.name, dist_name}:
                self.left_out.add(ep.name)  # installed, not loaded: said so where needed
                continue
            if ep.value.startswith("automed.") and dist_name == "automed":
                continue  # our own distribution: already registered as a built-in
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import error is the plugin's
                self._broken(ep.name, version, ep.value, exc)
                continue
            info = self._register(ep.name, module, version=version, builtin=False,
                                  source=ep.value)
            if ep.dist is not None and not info.broken:
                info.distribution = dist_name

    def add_source(self, source: str | Path, *, required: bool = False) -> str:
        """Register a plugin that is not installed: a ``.py`` file or an importable module.

        Returns the plugin's name (the file's stem, or the module name). A source that fails
        to load (its import raises, or a register hook raises or registers something wrong)
        is listed as broken and skipped, like an installed plugin, unless ``required``: one
        named on the command line (``--plugin``, a study's plugins in a worker, `automed
        plugins check`), which raises :class:`PluginError` in one line instead, before any
        work, since a search without it is not the one asked for. Its hooks run here for that.
        """
        source = str(source)
        name = Path(source).stem if _is_path(source) else source
        self.by_source[source] = name
        try:
            module, label = _import_source(source)
        except Exception as exc:  # noqa: BLE001 - any import error is the plugin's
            if not required:
                return self._broken(name, None, source, exc).name
            if isinstance(exc, AutomedError):
                raise
            raise PluginError(f"plugin {source} failed to import: {_one_line(exc)}; fix it "
                              "or drop it from --plugin") from exc
        if required:
            self._required.add(name)
        info = self._register(name, module, version=getattr(module, "__version__", None),
                              builtin=False, source=label, required=required)
        self._architectures = self._loaders = None
        if required:  # its register hooks now, not half-way through a search
            self.loaders()
            self.architectures()
            if not info.broken and not info.architectures and not info.loaders:
                # QA: a file without @hookimpl on its hook was searched without a word
                hooks = ", ".join(info.hooks) or "none"
                raise PluginError(f"plugin {source} registers no architectures or loaders "
                                  f"(hooks: {hooks}); mark its register_architectures or "
                                  "register_loaders function with @hookimpl")
        return info.name

    def _register_module(self, name: str, module_name: str, builtin: bool) -> None:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001
            self._broken(name, None, module_name, exc)
            return
        self._register(name, module, version=None, builtin=builtin, source=module_name)

    def _register(self, name: str, module: ModuleType, version: str | None,
                  builtin: bool, source: str, required: bool = False) -> PluginInfo:
        """Register ``module`` as plugin ``name``; the record says whether it worked."""
        if self.pm.is_registered(module):
            # The same plugin named twice, say by --plugin and AUTOMED_PLUGINS_PATH.
            return self.plugins[self.pm.get_name(module)]
        taken = self.plugins.get(name)
        if taken is not None and not taken.broken:
            # Two different plugins under one name: keep the first, report the second.
            return self._broken(f"{name} ({source})", version, source, PluginError(
                f"plugin name {name!r} is already taken by {taken.module}; rename the entry "
                "point or the file"), required=required)
        info = PluginInfo(name, version, source, builtin)
        try:
            self.pm.register(module, name=name)
            # A hook implementation with a misspelt name would silently never run.
            unknown = [
                h for h in self.pm.get_hookcallers(module) or [] if not h.has_spec()
            ]
            if unknown:
                self.pm.unregister(module)
                raise PluginError(_unknown_hooks([h.name for h in unknown], self.hook_names()))
        except Exception as exc:  # noqa: BLE001
            return self._broken(name, version, info.module, exc, required=required)
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(module) or [])
        self.plugins[name] = info
        return info

    def _broken(self, name: str, version: str | None, module: str,
                exc: Exception, *, required: bool = False) -> PluginInfo:
        info = PluginInfo(name, version, module, builtin=False, error=_one_line(exc))
        self.plugins[name] = info
        if required or name in self._required:
            raise PluginError(f"plugin {module} failed to load: {info.error}; fix it or drop "
                              "it from --plugin") from exc
        if _strict():
            raise PluginError(
                f"plugin {name!r} ({module}) failed to load: {info.error}; fix or uninstall it, "
                "or unset AUTOMED_STRICT_PLUGINS to skip broken plugins"
            ) from exc
        print(f"warning: plugin {name!r} skipped: {info.error}", file=sys.stderr)
        return info

    @staticmethod
    def hook_names() -> list[str]:
        """Every hook a plugin may implement (the functions marked in :mod:`hookspecs`)."""
        marker = f"{hookspecs.PROJECT}_spec"
        return sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), marker))

    # -- collecting ----------------------------------------------------------------------
    def _collect(self, hook_name: str, kind: str, attr: str, expected: type | None) -> dict:
        found: dict = {}
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            plugin_name = impl.plugin_name
            info = self.plugins.get(plugin_name)
            mine: dict = {}

            def register(obj, _plugin=plugin_name, _mine=mine):
                name = getattr(obj, "name", "")
                if expected is not None and isinstance(obj, type) and issubclass(obj, expected):
                    # QA: "not an Architecture; subclass it" to a class that was one
                    raise PluginError(f"registered the class {obj.__name__}, not an instance; "
                                      f"call register({obj.__name__}())")
                if expected is not None and not isinstance(obj, expected):
                    raise PluginError(
                        f"registered {obj!r}, which is not an {expected.__module__}."
                        f"{expected.__name__}; subclass it"
                    )
                if not name:
                    raise PluginError(f"registered a {kind} without a name; set its .name")
                if kind == "architecture":  # what `plugins check` refuses, refused on load
                    from automed.spec import MODALITIES

                    misspelt = _misspelt_methods(obj, expected)
                    if misspelt and (name, misspelt) not in self._warned:
                        # a warning, once: a helper may be named so on purpose (review)
                        self._warned.add((name, misspelt))
                        print(f"warning: architecture {name!r} defines {misspelt}; automed "
                              "never calls a method of that name: rename it if it was meant "
                              "as one", file=sys.stderr)

                    if not str(name).replace("_", "").replace("-", "").isalnum():
                        raise PluginError(f"architecture name {name!r} is no word (letters, "
                                          "digits, - or _); --arch could not name it")
                    unknown = sorted(set(getattr(obj, "modalities", ())) - set(MODALITIES))
                    if unknown:
                        raise PluginError(f"architecture {name!r} declares unknown "
                                          f"modalit{'y' if len(unknown) == 1 else 'ies'} "
                                          f"{', '.join(map(repr, unknown))}; use "
                                          f"{', '.join(MODALITIES)}")
                if name in found or name in _mine:
                    owner = found[name][1] if name in found else _plugin
                    taken = self.plugins.get(owner)
                    if owner != _plugin and taken is not None and taken.builtin:
                        raise PluginError(f"{kind} {name!r} is a built-in {kind}'s name; "
                                          f"rename the one plugin {_plugin!r} registers")
                    raise PluginError(
                        f"{kind} {name!r} is registered twice (by {owner!r} and {_plugin!r}); "
                        "rename one of them"
                    )
                _mine[name] = obj

            try:
                returned = impl.function(register=register)
                if returned is not None and not mine:
                    # QA: a hook that returned its architectures registered nothing, unsaid
                    raise PluginError(f"{hook_name} returned {type(returned).__name__}; call "
                                      f"register({kind}) for each {kind} instead of returning")
            except Exception as exc:  # noqa: BLE001
                # All or nothing: a plugin that fails half-way contributes nothing.
                self.pm.unregister(name=plugin_name)
                self._architectures = self._loaders = None  # the other hook lost it too
                self._broken(plugin_name, info.version if info else None,
                             info.module if info else plugin_name, exc)
                continue
            found.update({name: (obj, plugin_name) for name, obj in mine.items()})
            if info is not None:
                setattr(info, attr, sorted(mine))
        return {name: obj for name, (obj, _) in found.items()}

    def architectures(self) -> dict:
        if self._architectures is None:
            from automed.architecture import Architecture  # torch: only when asked

            archs = self._collect("register_architectures", "architecture", "architectures",
                                  Architecture)
            self._architectures = archs
        return self._architectures

    def loaders(self) -> dict:
        if self._loaders is None:
            loaders = self._collect("register_loaders", "loader", "loaders", None)
            self._loaders = loaders
        return self._loaders

    def describe(self, *, include_builtin: bool = False) -> list[dict]:
        """What ``automed plugins list`` shows: one dict per plugin, broken ones included."""
        archs, loaders = self.architectures(), self.loaders()
        out = []
        for info in sorted(self.plugins.values(), key=lambda p: (not p.builtin, p.name)):
            if info.builtin and not include_builtin:
                continue
            d = asdict(info)
            d["architectures"] = [
                {"name": a, "modalities": sorted(archs[a].modalities),
                 "description": archs[a].description} for a in info.architectures if a in archs]
            d["loaders"] = [{"name": lo, "description": loaders[lo].description}
                            for lo in info.loaders if lo in loaders]
            out.append(d)
        return out

    def provider(self, name: str, *, loader: bool = False) -> dict | None:
        """Where a third-party architecture (or with ``loader``, a loader) came from, as a
        saved model records it (so that loading it elsewhere can say what to install): the
        plugin's name, its module or file, and for an installed plugin its distribution and
        version. None for a built-in."""
        found = self.loaders() if loader else self.architectures()
        for info in self.plugins.values():
            if name in (info.loaders if loader else info.architectures) and not info.broken:
                if info.builtin:
                    return None
                return {"plugin": info.name, "source": info.module,
                        "distribution": info.distribution, "version": info.version,
                        "sha256": code_sha256(found.get(name))}
        return None

    def architectures_of(self, target: str) -> dict:
        """The architectures ``target`` names: a plugin, an architecture, a file or a module."""
        archs, _ = self.components_of(target, loaders_ok=False)
        return archs

    def components_of(self, target: str, *, loaders_ok: bool = True) -> tuple[dict, dict]:
        """The architectures and loaders ``target`` names (a plugin, an architecture, a file
        or a module); a plugin that registers neither (or, unless ``loaders_ok``, no
        architecture) is refused in one line."""
        self.load_optional([target])
        archs = self.architectures()
        if not _is_path(target) and target not in self.plugins and target in archs:
            return {target: archs[target]}, {}
        name = target if target in self.plugins and not _is_path(target) else None
        if name is None:
            try:
                name = self.add_source(target, required=True)
            except PluginError as exc:
                if _is_path(target) or not isinstance(exc.__cause__, ModuleNotFoundError):
                    raise
                raise PluginError(
                    f"no plugin, architecture, file or module named {target!r}; plugins: "
                    f"{', '.join(sorted(self.plugins)) or 'none'}; architectures: "
                    f"{', '.join(sorted(archs)) or 'none'}"
                ) from None
            archs = self.architectures()
        info = self.plugins[name]
        if info.broken:
            raise PluginError(f"plugin {name!r} is broken: {info.error}")
        loaders = self.loaders()
        if not info.architectures and not (loaders_ok and info.loaders):
            raise PluginError(f"plugin {name!r} registers no architectures"
                              f"{' or loaders' if loaders_ok else ''} (hooks: "
                              f"{', '.join(info.hooks) or 'none'})")
        return ({a: archs[a] for a in info.architectures},
                {lo: loaders[lo] for lo in info.loaders if lo in loaders})

    def load_optional(self, names: list[str]) -> None:
        """Load the optional built-in plugin of each name in ``names`` not yet registered."""
        for name in names:
            module = OPTIONAL_PLUGINS.get(name)
            if module is not None and name not in self.architectures():
                self.add_source(module, required=True)

    def architectures_for(self, modality: str, names: list[str] | None = None,
                          given: set[str] | None = None) -> dict:
        """The architectures accepting ``modality``; ``names`` restricts and validates.

        ``given``: the plugins named for this search (``--plugin``); the architectures of
        other plugins named in this process (an earlier search's, in a notebook) are not
        searched (QA: they joined every later search, whose study then could not resume in
        a fresh process)."""
        self.load_optional(names or [])
        archs = self.architectures()
        if given is not None:
            # optional built-ins (named by --arch) and $AUTOMED_PLUGINS_PATH's are every
            # search's (review: --arch hf was refused as "not given")
            always = set(OPTIONAL_PLUGINS.values()) | self._env_names
            other = {a: n for n in self._required - set(given) - always if n in self.plugins
                     for a in self.plugins[n].architectures}
            named = [a for a in names or [] if a in other]
            if named:
                source = self.plugins[other[named[0]]].module
                raise ConfigError(f"architecture {named[0]} comes from plugin {source}, which "
                                  "this search was not given; give it with --plugin "
                                  "(plugins=[...]) to search it")
            archs = {a: arch for a, arch in archs.items() if a not in other}
        if names:
            unknown = [n for n in names if n not in archs]
            if unknown:
                optional = sorted(set(OPTIONAL_PLUGINS) - set(archs))
                raise ConfigError(
                    f"unknown architecture {', '.join(unknown)}; available: "
                    f"{', '.join(sorted(archs)) or 'none'}"
                    f"{' (and ' + ', '.join(optional) + ', loaded when named)' if optional else ''}"
                    " (see `automed plugins --all`)"
                )
            wrong = [n for n in names if not archs[n].accepts(modality)]
            if wrong:
                fit = sorted(self.architectures_for(modality, None, given))
                raise ConfigError(
                    f"architecture {', '.join(wrong)} does not accept {modality} data; "
                    f"choose from {', '.join(fit)}"
                )
            return {n: archs[n] for n in names}
        # An optional built-in's families join a search only when named, even once loaded.
        chosen = {n: a for n, a in archs.items() if a.accepts(modality)
                  and n not in OPTIONAL_PLUGINS}
        if not chosen:
            raise ConfigError(
                f"no installed architecture accepts {modality} data; install a plugin that "
                "does (see `automed plugins`)"
            )
        return chosen


# The methods a family overrides: a near-miss of one of them is most likely a typo.
OVERRIDABLE = ("search_space", "training_space", "default_params", "build", "rebuild",
               "preprocessor", "priority", "accepts")


def _misspelt_methods(obj: object, base: type) -> str:
    """``"trainig_space (did you mean training_space?)"`` for methods of ``obj``'s classes
    that are near-misses of a method ``base`` lets a family override, where the class does not
    override that method itself (QA: a misspelt ``training_space`` silently trained the
    default 35 epochs, and `plugins check` said ok; a helper ``preprocess`` beside nothing is
    said too, but only as a warning)."""
    own = {a for cls in type(obj).__mro__ if cls is not base and not issubclass(base, cls)
           for a in vars(cls)}
    found = []
    for attr in sorted(own):
        value = getattr(type(obj), attr, None)
        if attr.startswith("_") or attr in OVERRIDABLE or not callable(value):
            continue
        close = difflib.get_close_matches(attr, OVERRIDABLE, n=1, cutoff=0.92)
        if close and close[0] not in own:
            found.append(f"{attr} (did you mean {close[0]}?)")
    return ", ".join(found)


def code_sha256(obj: object) -> str | None:
    """The sha256 of the source file that defines ``obj``'s class (an architecture or a
    loader): a saved model records it, so that loading it with other code is said."""
    import inspect

    try:
        path = inspect.getsourcefile(type(obj))
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
    except (TypeError, OSError):
        return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, pluggy.PluginValidationError):
        # its first line names the hook, the later ones what is wrong with it (QA: a hook
        # taking ``reg`` instead of ``register`` was said without its reason)
        text = "; ".join(line.strip() for line in text.splitlines() if line.strip())
    return visible(f"{type(exc).__name__}: {text.splitlines()[0]}" if text
                   else type(exc).__name__)


def _unknown_hooks(names: list[str], known: list[str]) -> str:
    parts = []
    for name in names:
        close = difflib.get_close_matches(name, known, n=1)
        parts.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return f"implements unknown hook {', '.join(parts)}; known hooks: {', '.join(known)}"


def _is_path(source: str) -> bool:
    return source.endswith(".py") or os.sep in source or "/" in source


def _import_source(source: str) -> tuple[ModuleType, str]:
    """Import a plugin file or module; return it with the label plugin listings show."""
    if not _is_path(source):
        # The console script's sys.path lacks the working directory, where a researcher's
        # module usually sits; appended, so it never shadows an installed package.
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.append(os.getcwd())
        return importlib.import_module(source), source
    path = Path(source).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"plugin file {source} does not exist; give a .py file or a module "
                          "name")
    # Keyed by the full path: two plugin files may share a stem.
    key = f"automed_local_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if key in sys.modules:
        return sys.modules[key], str(path)
    spec = importlib.util.spec_from_file_location(key, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module  # dataclasses and pickling look the module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[key]
        raise
    return module, str(path)


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
