"""Registries own their metadata: the key is written once (the decorator sets the class's name), a registry takes
only subclasses of its base, lazy ``"module:object"`` entries load on first use, and nothing under attacks/ or
defenses/ defines a class that looks registered but is not."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys

import pytest

import robustbench_gan.attacks as attacks_pkg
import robustbench_gan.defenses as defenses_pkg
from robustbench_gan.attacks import ATTACKS, Attack
from robustbench_gan.defenses import DEFENSES, Defense
from robustbench_gan.errors import ConfigError
from robustbench_gan.registry import Registry

# Built by a prefix factory (``art:<ClassName>``), not under one registry key.
BUILT_BY_PREFIX = {"ArtAttack"}


def test_register_sets_the_key_on_the_class_and_checks_the_base() -> None:
    things = Registry("thing", base=Attack, key_attr="kind")

    @things.register("made-up")
    class MadeUp(Attack):
        pass

    assert MadeUp.kind == "made-up" and things.get("MADE-UP") is MadeUp and things.registered(MadeUp)
    with pytest.raises(TypeError, match="not a subclass of Attack"):
        things.register("wrong")(Defense)
    with pytest.raises(ValueError, match="already registered"):
        things.register("made-up")(MadeUp)


def test_every_registered_attack_and_defense_carries_its_key() -> None:
    assert all(ATTACKS.get(k).kind == k for k in ATTACKS)
    assert all(DEFENSES.get(k).kind == k for k in DEFENSES)


def test_a_lazy_entry_imports_its_module_on_first_use(tmp_path, monkeypatch) -> None:
    (tmp_path / "lazy_thing_module.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    things = Registry("thing")
    things.register_lazy("thing", "lazy_thing_module:Thing")
    assert "thing" in things and things.names() == ["thing"] and "lazy_thing_module" not in sys.modules
    assert things.get("thing").__name__ == "Thing" and "lazy_thing_module" in sys.modules
    with pytest.raises(ConfigError, match="unknown thing 'thnig': did you mean 'thing'"):
        things.get("thnig")
    with pytest.raises(ValueError, match="module:object"):
        things.register_lazy("other", "no_colon_here")


def _classes_defined_under(package, base: type) -> list[type]:
    found = []
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        found += [c for _, c in inspect.getmembers(module, inspect.isclass)
                  if c.__module__ == module.__name__ and issubclass(c, base) and c is not base]
    return found


@pytest.mark.parametrize("package, base, registry", [(attacks_pkg, Attack, ATTACKS),
                                                     (defenses_pkg, Defense, DEFENSES)], ids=["attacks", "defenses"])
def test_nothing_under_attacks_or_defenses_looks_registered_without_being_so(package, base, registry) -> None:
    """A class deriving from Attack (Defense) in those packages is registered, or a run could never name it."""
    classes = _classes_defined_under(package, base)
    assert len(classes) >= 6, classes
    missing = [c.__name__ for c in classes if not registry.registered(c) and c.__name__ not in BUILT_BY_PREFIX]
    assert not missing, f"defined under {package.__name__} but not registered: {missing}"


def test_an_executor_of_your_own_is_named_in_a_suite_like_the_built_in_ones(monkeypatch, suite_file) -> None:
    """One registry (robustbench_gan.execution) serves the suite's check and make_executor: a registered
    executor is accepted in ``[execution]``, built with the resources set, and runs the suite; an unknown name
    is one ConfigError listing every registered executor."""
    from robustbench_gan.execution import EXECUTORS
    from robustbench_gan.run import LocalExecutor, run_suite
    from robustbench_gan.run.executors import EXECUTORS as RUN_EXECUTORS, make_executor
    from robustbench_gan.suite import load_suite
    from suite_files import NO_TRANSFER

    built = []

    class Counting(LocalExecutor):
        def __init__(self, *, progress: bool = True, num_cpus: float | None = None) -> None:
            super().__init__(progress=progress)
            built.append(num_cpus)

    monkeypatch.setattr(EXECUTORS, "_items", dict(EXECUTORS._items))
    EXECUTORS.register("counting")(Counting)
    assert RUN_EXECUTORS is EXECUTORS and EXECUTORS.names() == ["counting", "local", "ray"]
    path = suite_file(transfer=NO_TRANSFER, evaluation={"n": 20}, execution={"executor": "counting", "num_cpus": 2})
    assert load_suite(path).execution.executor == "counting"
    results = run_suite(path, progress=False, cache=False)
    assert built == [2] and len(results.table) == 1
    with pytest.raises(ConfigError, match="executor must be one of counting, local, ray, got 'dask'"):
        make_executor("dask")
