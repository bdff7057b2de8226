"""The classifiers of a run: each one resolved once (prebuilt, a weights file, the weight cache) or planned as a
fit job of the run's graph (with jobs for the prerequisites it shares); what the jobs make is cached here;
finally every classifier is checked and asked for its defense's report sections."""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import Tensor

from ..checks.probes import classifier_flags
from ..classifier import Classifier
from ..core.device import numerics, tune_for_device
from ..core.io import config_hash, read_checked_json, write_checked_json
from ..data import Data
from ..defenses import FitContext, ReportContext
from ..errors import RobustBenchError
from ..checkpoints import load_weights
from ..suite import DefenseConfig, ModelConfig
from ..classifier_training import TrainConfig
from ..core.weight_cache import WeightCache
from .jobs import AttackNeeds, BuildJob, ClassifierRecipe, FitJob, fit_id, model_data, named, need_id
from .plan import NO_DEFENSE, ClassifierId, JobEnv, JobGraph, Pair

log = logging.getLogger(__name__)

REFERENCE = ModelConfig("gan-reference", arch="cnn", train=TrainConfig(epochs=10))
"""A CNN trained on the real training data: the yardstick of GAN quality metrics (no downloads)."""


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes ("" when it cannot be read: loading it will say why)."""
    import hashlib

    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return ""
    return h.hexdigest()


def classifier_key(model: ModelConfig, defense: DefenseConfig, data: Data, seed: int, numerics: str = "") -> str:
    """The cache key of a classifier: its weights file, or everything its training depends on (the numerics too:
    device and CPU threads)."""
    if model.weights is not None and defense.kind == "none":
        return config_hash({"weights": str(model.weights), "weights_sha256": file_digest(model.weights),
                            "model": model.describe(), "data": data.fingerprint()})
    train = replace(model.train, **defense.train)
    return config_hash({
        "data": data.fingerprint(), "model": {**model.describe(), "train": train.as_dict()},
        "defense": defense.kind, "defense_params": defense.params, "seed": seed, "numerics": numerics,
    })


class ClassifierStore:
    """The classifiers of one run, each obtained once: prebuilt (:meth:`add`), loaded (a weights file, the weight
    cache) or fitted by a job of the run's graph (:meth:`plan`, then :meth:`accept` with what the job made).

    :meth:`finish` checks every classifier (``flags``) and collects the report sections its defense hands back
    (``sections``, cached on disk next to the weights), in the order the classifiers were planned.
    """

    def __init__(
        self, data: Data, *, seed: int, device: str, x_check: Tensor, y_check: Tensor,
        cache_dir: str | Path | None = None, progress: bool = True, checks: bool = True,
        models: tuple[ModelConfig, ...] = (), defenses: tuple[DefenseConfig, ...] = (),
    ) -> None:
        self.data, self.seed, self.device, self.progress, self.checks = data, seed, device, progress, checks
        self.numerics = numerics(device)
        self.x_check, self.y_check = x_check, y_check
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.fit_context = FitContext(WeightCache(self.cache_dir), numerics=numerics(device))
        self.models = {m.name: m for m in models}
        self.defenses = {d.name: d for d in (NO_DEFENSE, *defenses)}
        self._items: dict[ClassifierId, tuple[Classifier, str]] = {}
        self._planned: dict[ClassifierId, str] = {}  # the cache key of every classifier planned
        self._prebuilt: set[ClassifierId] = set()
        self.flags: list[dict[str, Any]] = []
        self.sections: list[dict[str, Any]] = []
        self.trained = 0  # classifiers trained (not loaded from the cache) by this run

    @property
    def weights(self) -> WeightCache:
        return self.fit_context.weights

    def env(self, eval_data: Any = None) -> JobEnv:
        """The job environment of this store's data and device (``eval_data``: the samples cells evaluate)."""
        return JobEnv(self.data, eval_data, self.device, self.progress)

    def add(self, ident: ClassifierId, clf: Classifier, key: str) -> None:
        """Use a classifier built elsewhere (``benchmark()``'s model); its sanity checks run as for any other."""
        clf = tune_for_device(clf, self.device).eval()
        clf.check(self.x_check[:4])
        self._items[ident] = (clf, key)
        self._prebuilt.add(ident)

    def __getitem__(self, ident: ClassifierId) -> Classifier:
        return self._items[ident][0]

    def key(self, ident: ClassifierId) -> str:
        if ident in self._items:
            return self._items[ident][1]
        return self._planned[ident]

    def mapping(self, idents: list[ClassifierId]) -> dict[ClassifierId, Classifier]:
        return {i: self._items[i][0] for i in idents}

    def recipe(self, model: ModelConfig, defense: DefenseConfig) -> ClassifierRecipe:
        """How (model, defense) is made, as a picklable recipe another process can follow."""
        return ClassifierRecipe(model, defense, classifier_key(model, defense, self.data, self.seed, self.numerics),
                                self.seed, self.numerics)

    def plan(self, model: ModelConfig, defense: DefenseConfig, graph: JobGraph) -> str:
        """Put (model, defense) into ``graph``: resolved when it is prebuilt, a weights file or in the weight
        cache, else a :class:`FitJob` after a :class:`BuildJob` for each shared prerequisite not cached. Fails
        fast, before anything trains, on a model of the wrong shape. Returns the classifier's job id."""
        ident = (model.name, defense.name)
        job_id = fit_id(ident)
        if job_id in graph:
            return job_id
        if ident in self._items:
            graph.resolve(job_id, self._items[ident][0])
            return job_id
        recipe = self.recipe(model, defense)
        self._planned[ident] = recipe.key
        try:
            skeleton = recipe.skeleton(self.data).to(self.device)
            skeleton.check(self.x_check[:4])
            if model.weights is not None and defense.kind == "none":
                load_weights(skeleton.model, model.weights, trust_checkpoint=model.trust_checkpoint)
                skeleton.check(self.x_check[:4])
                loaded = True
            else:
                loaded = self.weights.load(recipe.key, skeleton)
        except RobustBenchError as exc:
            raise named(exc, model.name, defense.name) from exc
        if loaded:
            self._items[ident] = (tune_for_device(skeleton, self.device).eval(), recipe.key)
            graph.resolve(job_id, self._items[ident][0])
            return job_id
        needs = []
        for index, need in enumerate(recipe.needs(self.data)):
            if need.key:  # shared: built by its own job (or from the cache); unshared ones the fit builds itself
                needs.append((index, self._plan_need(need, BuildJob(need_id(need, job_id, index), recipe, index,
                                                                    need.label, need.key), graph)))
        graph.add(FitJob(recipe, tuple(needs)))
        return job_id

    def plan_attack(self, needs: AttackNeeds, graph: JobGraph) -> tuple[str, ...]:
        """Put the prerequisites of an attack into ``graph``; their job ids, in the attack's order."""
        owner = f"attack:{needs.attack.name}"
        return tuple(self._plan_need(need, BuildJob(need_id(need, owner, i), needs, i, need.label, need.key), graph)
                     for i, need in enumerate(needs.needs(self.data)))

    def _plan_need(self, need: Any, job: BuildJob, graph: JobGraph) -> str:
        if job.id not in graph:
            artefact = self.fit_context.cached(need)  # the memo, or an earlier run's cache
            if artefact is not None:
                graph.resolve(job.id, artefact)
            else:
                graph.add(job)
        return job.id

    def accept(self, job: Any, output: Any) -> None:
        """Keep what a job of the graph made: a prerequisite (memoised and cached) or a classifier (cached, on the
        run's device)."""
        if isinstance(job, BuildJob):
            need = job.need(self.data)
            if need.key:
                self.fit_context.put(need, output)
            return
        if isinstance(job, FitJob):
            model, defense = job.recipe.model, job.recipe.defense
            self.weights.save(job.key, output, {"model": model.name, "defense": defense.name,
                                                "spec": model_data(model, self.data).spec.as_dict()})
            self.trained += 1
            self._items[job.recipe.ident] = (tune_for_device(output, self.device).eval(), job.key)

    def obtain(self, model: ModelConfig, defense: DefenseConfig) -> tuple[Classifier, str]:
        """The classifier of (model, defense) and its cache key, made here and now if the run has not made it (a
        graph of its own, run by the local executor)."""
        ident = (model.name, defense.name)
        if ident not in self._items:
            from .executors import LocalExecutor

            graph = JobGraph()
            self.plan(model, defense, graph)
            for job_id, output in LocalExecutor(progress=self.progress).run(graph, self.env(), desc="train"):
                self.accept(graph.jobs[job_id], output)
        return self._items[ident]

    def finish(self, pairs: list[Pair]) -> None:
        """Check every classifier of ``pairs`` (prebuilt ones first; each once, in the order first given) and collect
        its defense's report sections."""
        idents = list(dict.fromkeys([*self._prebuilt, *((m.name, d.name) for m, d in pairs if m is not REFERENCE)]))
        for ident in idents:
            if self.checks:
                self.flags += classifier_flags(self[ident], self.x_check, self.y_check, model=ident[0],
                                               defense=ident[1])
        for model, defense in {(m.name, d.name): (m, d) for m, d in pairs}.values():
            if (model.name, defense.name) in self._prebuilt or model is REFERENCE:
                continue
            section = self._report_section(model, defense)
            if section:
                self.sections.append(section)

    def _report_section(self, model: ModelConfig, defense: DefenseConfig) -> Any:
        key = self.key((model.name, defense.name))
        path = self.cache_dir / "reports" / f"{key}.json" if self.cache_dir is not None else None
        cached = read_checked_json(path)
        if cached is not None:
            return cached
        defense_obj = self.recipe(model, defense).defense_object()
        section = defense_obj.report(ReportContext(
            self.data, self.seed, self.device, model.name, defense.name,
            classifier=lambda m, d: self.obtain(self.models[m], self.defenses[d])[0],
            reference=lambda: self.obtain(REFERENCE, NO_DEFENSE)[0], fit=self.fit_context))
        if section is not None and path is not None:
            write_checked_json(path, section)
        return section
