"""A small named registry used for data sets, models, attacks, defenses and executors.

``build(name, **params)`` checks the parameters against the registered callable's signature (one "did you
mean" check for every registry) before calling it. A prefix factory (``register_prefix("art:")``) builds
names of an open family, such as any ART attack class. A registry with a ``base`` takes only its subclasses; with
a ``key_attr`` it writes the registered name onto the class (the key is written once, in the decorator). A lazy
entry (``register_lazy("ray", "package.module:Object")``) imports its module on first use.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

from .core.validation import check_params
from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (usually classes or factories).

    >>> MODELS = Registry("model")
    >>> @MODELS.register("mlp")
    ... def make_mlp(): ...
    """

    def __init__(self, kind: str, *, base: type | None = None, key_attr: str | None = None) -> None:
        self.kind = kind
        self.base, self.key_attr = base, key_attr
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._prefixes: dict[str, Callable[..., Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a name can be registered once. A class must subclass the
        registry's ``base``; its ``key_attr`` (``Attack.kind``, ``Defense.kind``) is set to ``name``. ``meta``: what
        the rest of the toolkit needs to know about the entry without calling it (a data set's pixel bounds and
        path options), read back with :meth:`meta`."""

        def decorator(obj: T) -> T:
            self._add(name, obj)
            self._meta[name] = dict(meta)
            return obj

        return decorator

    def register_lazy(self, name: str, target: str, **meta: Any) -> None:
        """Register ``name`` as ``"package.module:object"``, imported (and checked) the first time it is used, so
        an optional dependency's module loads only when asked for."""
        if name in self or ":" not in target:
            raise ValueError(f"{self.kind} {name!r}: already registered, or {target!r} is not 'module:object'")
        self._lazy[name] = target
        self._meta[name] = dict(meta)

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata registered with ``name`` (``{}`` when none was given)."""
        return dict(self._meta.get(self.resolve(name), {}))

    def _add(self, name: str, obj: Any) -> None:
        if name in self._items or name in self._lazy:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if self.base is not None and not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise TypeError(f"{self.kind} {name!r}: {obj!r} is not a subclass of {self.base.__name__}")
        if self.key_attr is not None and isinstance(obj, type):
            setattr(obj, self.key_attr, name)
        self._items[name] = obj

    def _load(self, name: str) -> None:
        module, _, attr = self._lazy.pop(name).partition(":")
        self._add(name, getattr(importlib.import_module(module), attr))

    def registered(self, obj: object) -> bool:
        """Whether ``obj`` itself is registered (under any name; lazy entries not yet imported are not looked at)."""
        return any(v is obj for v in self._items.values())

    def register_prefix(self, prefix: str, factory: Callable[..., Any]) -> None:
        """Names starting with ``prefix`` are built by ``factory(rest_of_name, **params)`` (which checks them)."""
        self._prefixes[prefix] = factory

    def resolve(self, name: str) -> str:
        """The registered spelling of ``name``: exact, else the one registered name equal to it ignoring case
        (``"PGD"`` -> ``"pgd"``); unknown names raise ConfigError listing close matches."""
        if isinstance(name, str):
            if name in self._items or name in self._lazy:
                return name
            folded = [k for k in self.names() if k.lower() == name.lower()]
            if len(folded) == 1:
                return folded[0]
        raise ConfigError(self.unknown_message(name))

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` (see :meth:`resolve`), importing a lazy entry's module."""
        key = self.resolve(name)
        if key in self._lazy:
            self._load(key)
        return self._items[key]

    def accepted(self, name: str, *, skip: Iterable[str] = ()) -> list[str]:
        """The keyword parameters the object registered as ``name`` takes (``skip`` left out)."""
        skip = set(skip)
        params = inspect.signature(self.get(name)).parameters.values()
        return [p.name for p in params if p.name not in skip
                and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def check(self, name: str, params: Iterable[str], *, skip: Iterable[str] = (), noun: str = "parameter",
              error: type[Exception] = ConfigError) -> None:
        """Raise ``error`` when a parameter is not accepted by ``name`` (with "did you mean")."""
        check_params(f"{self.kind} {name!r}", params, self.accepted(name, skip=skip), noun=noun, error=error)

    def build(self, key: str, /, *args: Any, skip: Iterable[str] = (), **params: Any) -> Any:
        """Check ``params`` against the signature registered as ``key``, then call it with ``args`` and ``params``.

        ``skip`` names parameters the caller supplies itself (not a user's choice): they are neither listed in
        an error nor checked."""
        for prefix, factory in self._prefixes.items():
            if isinstance(key, str) and key.startswith(prefix):
                return factory(key[len(prefix):], *args, **params)
        skip = tuple(skip)
        key = self.resolve(key)
        self.check(key, [k for k in params if k not in skip], skip=skip)
        return self.get(key)(*args, **params)

    def unknown_message(self, name: object) -> str:
        close = difflib.get_close_matches(str(name), self.names(), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        prefixes = "".join(f", {p}<name>" for p in self._prefixes)
        return f"unknown {self.kind} {name!r}: {hint}known: {', '.join(self.names())}{prefixes}"

    def names(self) -> list[str]:
        return sorted([*self._items, *self._lazy])

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items) + len(self._lazy)
