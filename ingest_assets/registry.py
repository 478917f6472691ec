"""Registries of kinds: the one place a source kind or a destination kind plugs in.

A kind is an object with a ``name`` (the ``kind:`` a dataset writes in YAML) and a ``model`` (the
pydantic model of its declaration). The built-in kinds register when a registry is first used;
a project registers its own with :meth:`Registry.register`, from anywhere, before its
definitions load. Registering a kind widens the models that declare datasets (their ``kind:``
union), so ``dg check defs`` and the YAML schema know the new kind at once.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar, Union

from pydantic import BaseModel, Discriminator, Tag


class Kind(Protocol):
    """What a registry needs of a kind: its YAML name and its declaration's model."""

    name: ClassVar[str]
    model: ClassVar[type[BaseModel]]


K = TypeVar("K", bound=Kind)


class Registry(Generic[K]):
    """The kinds of one family (sources, or destinations), by name.

    Args:
        family: What the kinds are, for messages ('source', 'destination').
        default: The kind of a declaration that names none.
        builtin: Modules that register the built-in kinds when imported.
    """

    def __init__(self, family: str, *, default: str, builtin: tuple[str, ...]) -> None:
        self.family = family
        self.default = default
        self._builtin = builtin
        self._kinds: dict[str, K] = {}
        self._by_model: dict[type[BaseModel], K] = {}
        self._listeners: list[Callable[[], None]] = []
        self._loaded = False

    def register(self, kind: K) -> K:
        """Add (or replace) a kind; the models that declare datasets learn it at once.

        Returns:
            The kind, so that ``register`` can be used as a class decorator's last step.
        """
        self._load_builtin()
        self._kinds[kind.name] = kind
        self._by_model[kind.model] = kind
        for listener in self._listeners:
            listener()
        return kind

    def unregister(self, name: str) -> None:
        """Remove a kind (a test's toy kind once the test is done)."""
        kind = self._kinds.pop(name)
        self._by_model.pop(kind.model, None)
        for listener in self._listeners:
            listener()

    def kinds(self) -> dict[str, K]:
        """Every registered kind, by name, the built-in ones first."""
        self._load_builtin()
        return dict(self._kinds)

    def get(self, name: str) -> K:
        """The kind called ``name`` (KeyError naming the known kinds if there is none)."""
        kinds = self.kinds()
        if name not in kinds:
            raise KeyError(
                f"no {self.family} kind {name!r}; registered: {', '.join(sorted(kinds))}"
            )
        return kinds[name]

    def of(self, declaration: BaseModel) -> K:
        """The kind a validated declaration belongs to."""
        self._load_builtin()
        return self._by_model[type(declaration)]

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever a kind is registered or removed."""
        self._listeners.append(listener)

    def union(self) -> Any:
        """The declarations of every kind as one pydantic union, told apart by ``kind``."""
        kinds = self.kinds()
        if len(kinds) == 1:  # a union of one is the model itself (its ``kind`` has a default)
            return next(iter(kinds.values())).model
        members = tuple(Annotated[kind.model, Tag(name)] for name, kind in kinds.items())
        known = ", ".join(kinds)
        discriminator = Discriminator(
            self._tag,
            custom_error_type=f"unknown_{self.family}_kind",
            custom_error_message=f"'kind' names no registered {self.family} kind; the kinds "
            f"are: {known} (default {self.default})",
        )
        return Annotated[Union[members], discriminator]  # noqa: UP007

    def _tag(self, value: Any) -> str:
        if isinstance(value, dict):
            return str(value.get("kind", self.default))
        return self.of(value).name

    def _load_builtin(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin:
            importlib.import_module(module)
