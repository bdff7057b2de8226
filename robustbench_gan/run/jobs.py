"""The kinds of job a run's graph holds: :class:`BuildJob` (a prerequisite: a GAN shared by several defenses, a
distillation teacher, the natural attack's generator and inverter), :class:`FitJob` (one classifier, trained by its
defense) and :class:`CellJob` (one cell). Each is picklable and a pure function of its inputs and the run's
:class:`~robustbench_gan.run.plan.JobEnv`, so every executor runs it the same way, here or on another machine.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from torch import nn

from ..classifier import Classifier
from ..core.device import tune_for_device
from ..data import Data
from ..defenses import FitContext, make_defense
from ..errors import RobustBenchError
from ..zoo import build_model, build_user_model
from ..prerequisites import Prerequisite
from ..suite import AttackConfig, DefenseConfig, ModelConfig
from .cells import EvalData, merge_shards, run_cell, run_shard
from .plan import Cell, ClassifierId, JobEnv

log = logging.getLogger(__name__)


def model_factory(cfg: ModelConfig, data: Data) -> Callable[[], nn.Module]:
    if cfg.factory is not None:
        return lambda: build_user_model(cfg.factory, data.spec, search=cfg.search_path,  # type: ignore[arg-type]
                                        **cfg.params)
    return lambda: build_model(cfg.arch, data.spec, **cfg.params)  # type: ignore[arg-type]


def model_data(cfg: ModelConfig, data: Data) -> Data:
    """``data`` as this model sees it: its own ``mean``/``std`` and input range, where the suite gives them."""
    if cfg.mean is None and cfg.bounds is None:
        return data
    spec = replace(data.spec, mean=cfg.mean if cfg.mean is not None else data.spec.mean,
                   std=cfg.std if cfg.std is not None else data.spec.std, input_bounds=cfg.bounds)
    return replace(data, spec=spec)  # same tensors and fingerprint: the model's settings are in its cache key


@dataclass(frozen=True)
class ClassifierRecipe:
    """How one classifier is made, in any process: its model, defense, cache key, seed and numerics."""

    model: ModelConfig
    defense: DefenseConfig
    key: str
    seed: int
    numerics: str

    @property
    def ident(self) -> ClassifierId:
        return (self.model.name, self.defense.name)

    def defense_object(self) -> Any:
        return make_defense(self.defense.kind, name=self.defense.name, **self.defense.params)

    def skeleton(self, data: Data) -> Classifier:
        """The untrained classifier (built with the seed, as training starts from it)."""
        seen = model_data(self.model, data)
        return self.defense_object().classifier(model_factory(self.model, seen), seen, seed=self.seed)

    def needs(self, data: Data) -> list[Prerequisite]:
        """What the defense's fit obtains from its context (a shared GAN, a teacher), in order."""
        seen = model_data(self.model, data)
        train = replace(self.model.train, **self.defense.train)
        context = FitContext(numerics=self.numerics).for_recipe(self.key)
        return self.defense_object().prerequisites(model_factory(self.model, seen), seen, train=train, seed=self.seed,
                                                   context=context)

    def fit(self, data: Data, *, device: str, progress: bool, context: FitContext) -> Classifier:
        """Train the classifier; prerequisites come from ``context`` (memo, cache) or are built there. A user-fixable
        error names the model and defense."""
        seen = model_data(self.model, data)
        train = replace(self.model.train, **self.defense.train)
        try:
            return self.defense_object().fit(model_factory(self.model, seen), seen, train=train, seed=self.seed,
                                             device=device, progress=progress, context=context.for_recipe(self.key))
        except RobustBenchError as exc:
            raise named(exc, self.model.name, self.defense.name) from exc


def named(exc: RobustBenchError, model: str, defense: str) -> RobustBenchError:
    """``exc`` with the classifier it concerns named first (unless it already names a model)."""
    if str(exc).startswith("model '"):
        return exc
    return type(exc)(f"model {model!r} (defense {defense!r}): {exc}")


@dataclass(frozen=True)
class AttackNeeds:
    """The prerequisites an attack declares (:meth:`~robustbench_gan.attacks.Attack.prerequisites`), rebuilt from
    its config in any process."""

    attack: AttackConfig
    seed: int
    numerics: str

    def needs(self, data: Data) -> list[Prerequisite]:
        return self.attack.build().prerequisites(data, seed=self.seed, numerics=self.numerics)


def need_id(need: Prerequisite, owner: str, index: int) -> str:
    """A prerequisite's job id: by its key when it is shared (one job however many fits or cells need it)."""
    return f"need:{need.key}" if need.key else f"need:{owner}#{index}"


@dataclass(frozen=True)
class BuildJob:
    """Build prerequisite ``index`` of ``owner`` (a :class:`ClassifierRecipe` or :class:`AttackNeeds`); the output
    is the artefact, handed to the fits and cells that depend on it."""

    id: str
    owner: ClassifierRecipe | AttackNeeds
    index: int
    what: str
    key: str
    deps: tuple[str, ...] = ()

    @property
    def search_path(self) -> tuple[str, ...]:
        return tuple(self.owner.model.search_path) if isinstance(self.owner, ClassifierRecipe) else ()

    def need(self, data: Data) -> Prerequisite:
        return self.owner.needs(data)[self.index]

    def run(self, inputs: Mapping[str, Any], env: JobEnv) -> Any:
        log.info("building %s %s", self.what, self.key)
        return self.need(env.data).build(device=env.device, progress=env.progress)


@dataclass(frozen=True)
class FitJob:
    """Train one classifier; ``needs`` maps the index of each of its recipe's prerequisites built by another job to
    that job's id. The output is the trained classifier (in eval mode)."""

    recipe: ClassifierRecipe
    needs: tuple[tuple[int, str], ...] = ()
    what: str = "classifier"

    @property
    def id(self) -> str:
        return fit_id(self.recipe.ident)

    @property
    def key(self) -> str:
        return self.recipe.key

    @property
    def deps(self) -> tuple[str, ...]:
        return tuple(dep for _, dep in self.needs)

    @property
    def search_path(self) -> tuple[str, ...]:
        return tuple(self.recipe.model.search_path)

    def run(self, inputs: Mapping[str, Any], env: JobEnv) -> Classifier:
        context = FitContext(numerics=self.recipe.numerics).for_recipe(self.recipe.key)
        declared = self.recipe.needs(env.data)
        for index, dep in self.needs:
            context.put(declared[index], inputs[dep], save=False)
        log.info("training %s / %s", *self.recipe.ident)
        return self.recipe.fit(env.data, device=env.device, progress=env.progress, context=context).eval()


def fit_id(ident: ClassifierId) -> str:
    """The job id of a classifier's fit (also the id its output has when it comes from the cache)."""
    return f"classifier:{ident[0]}/{ident[1]}"


@dataclass(frozen=True)
class OfCell:
    """A job that makes cell ``index`` of the plan (its id is the cell's, as when the cell comes from the cache)."""

    index: int
    cell: Cell

    @property
    def id(self) -> str:
        return f"cell:{self.index}"

    @property
    def key(self) -> str:
        return str(self.index)


@dataclass(frozen=True)
class CellJob(OfCell):
    """Run cell ``index`` of the plan on the classifiers it names (``classifiers``: ident -> job id) with its
    attack's prerequisites (``prepared``: job ids, in the attack's order). The output is a
    :class:`~robustbench_gan.run.records.CellOutput`."""

    classifiers: tuple[tuple[ClassifierId, str], ...]
    prepared: tuple[str, ...] = ()
    what: str = "cell"

    @property
    def deps(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*(dep for _, dep in self.classifiers), *self.prepared)))

    @property
    def search_path(self) -> tuple[str, ...]:
        pairs = (*(self.cell.source or ()), *self.cell.targets)
        return tuple(dict.fromkeys(p for m, _ in pairs for p in m.search_path))

    def inputs(self, inputs: Mapping[str, Any], env: JobEnv) -> tuple[dict[ClassifierId, Classifier], EvalData]:
        """The cell's classifiers (tuned for the device) and the evaluated data with its attack's prerequisites."""
        classifiers = {ident: tune_for_device(inputs[dep], env.device).eval() for ident, dep in self.classifiers}
        prepared = {self.cell.attack.name: [inputs[dep] for dep in self.prepared]}
        return classifiers, EvalData(env.eval.x, env.eval.y, env.eval.class_names, prepared).to(env.device)

    def run(self, inputs: Mapping[str, Any], env: JobEnv) -> Any:
        classifiers, data = self.inputs(inputs, env)
        return run_cell(self.cell, classifiers, data, progress=env.progress)


@dataclass(frozen=True)
class ShardJob(CellJob):
    """The samples ``[start, stop)`` of cell ``index``: its output is the shard's outcomes with their per-sample
    parts, as JSON (:func:`~robustbench_gan.run.cells.run_shard`), cached on its own and merged by the cell's
    :class:`MergeJob`."""

    start: int = 0
    stop: int = 0
    what: str = "shard"

    @property
    def id(self) -> str:
        return shard_id(self.index, self.start, self.stop)

    @property
    def key(self) -> str:
        return f"{self.index}/{self.start}-{self.stop}"

    @property
    def samples(self) -> int:
        """How many samples the shard attacks."""
        return self.stop - self.start

    def run(self, inputs: Mapping[str, Any], env: JobEnv) -> Any:
        classifiers, data = self.inputs(inputs, env)
        return run_shard(self.cell, classifiers, data, self.start, self.stop, progress=env.progress)


def shard_id(index: int, start: int, stop: int) -> str:
    """The job id of the shard ``[start, stop)`` of cell ``index`` (also its id when it comes from the cache)."""
    return f"shard:{index}/{start}-{stop}"


@dataclass(frozen=True)
class MergeJob(OfCell):
    """Cell ``index`` from its shards' outputs (``shards``: their job ids, in order): records, gallery and
    per-sample blocks of the whole cell, a :class:`~robustbench_gan.run.records.CellOutput` as a
    :class:`CellJob`'s."""

    shards: tuple[str, ...] = ()
    what: str = "cell"
    search_path: tuple[str, ...] = ()

    @property
    def deps(self) -> tuple[str, ...]:
        return self.shards

    def run(self, inputs: Mapping[str, Any], env: JobEnv) -> Any:
        return merge_shards(self.cell, [inputs[dep] for dep in self.shards], env.eval.class_names)
