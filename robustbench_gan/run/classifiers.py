"""The classifiers of a run: built, trained (or loaded from the weight cache) once each, checked, and asked for
their defense's report sections."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from torch import Tensor, nn

from ..checks.probes import classifier_flags
from ..classifier import Classifier
from ..core.device import numerics, tune_for_device
from ..core.io import config_hash, read_checked_json, write_checked_json
from ..data import Data
from ..defenses import FitContext, ReportContext, make_defense
from ..defenses.base import Prerequisite
from ..errors import RobustBenchError
from ..models import build_model, build_user_model, load_weights
from ..suite import DefenseConfig, ModelConfig
from ..training import TrainConfig, WeightCache
from .plan import NO_DEFENSE, ClassifierId

log = logging.getLogger(__name__)

REFERENCE = ModelConfig("gan-reference", arch="cnn", train=TrainConfig(epochs=10))
"""A CNN trained on the real training data: the yardstick of GAN quality metrics (no downloads)."""


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


@dataclass(frozen=True)
class TrainJob:
    """Training one classifier, in any process: picklable, and the same code whichever process runs it."""

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

    def prerequisites(self, data: Data, context: FitContext) -> list[Prerequisite]:
        """What the defense's fit obtains from its context (a shared GAN, a teacher), in order."""
        seen = model_data(self.model, data)
        train = replace(self.model.train, **self.defense.train)
        return self.defense_object().prerequisites(model_factory(self.model, seen), seen, train=train, seed=self.seed,
                                                   context=context.for_recipe(self.key))

    def fit(self, data: Data, *, device: str, progress: bool, context: FitContext) -> Classifier:
        """Train the classifier; prerequisites come from ``context`` (memo, cache) or are built there."""
        seen = model_data(self.model, data)
        train = replace(self.model.train, **self.defense.train)
        return self.defense_object().fit(model_factory(self.model, seen), seen, train=train, seed=self.seed,
                                         device=device, progress=progress, context=context.for_recipe(self.key))


class Classifiers:
    """Obtains each classifier of a run once: prebuilt, loaded from the weight cache, or trained by its defense.

    Keeps the sanity flags of every classifier (``flags``) and the report sections its defense hands back
    (``sections``, cached on disk next to the weights), in the order the classifiers were first asked for.
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
        self.flags: list[dict[str, Any]] = []
        self.sections: list[dict[str, Any]] = []
        self.trained = 0  # classifiers trained (not loaded from the cache) by this run
        self.remote: dict[ClassifierId, Callable[[], tuple[Classifier, dict[int, Any]]]] = {}
        """Classifiers an executor trains elsewhere: ``ident -> wait()`` returning the trained classifier and the
        prerequisites it was fitted with (index -> artefact), which are memoised and cached here."""

    @property
    def weights(self) -> WeightCache:
        return self.fit_context.weights

    def add(self, ident: ClassifierId, clf: Classifier, key: str) -> None:
        """Use a classifier built elsewhere (``benchmark()``'s model); its sanity checks run as for any other."""
        clf = tune_for_device(clf, self.device).eval()
        clf.check(self.x_check[:4])
        self._items[ident] = (clf, key)
        self._check(clf, *ident)

    def __getitem__(self, ident: ClassifierId) -> Classifier:
        return self._items[ident][0]

    def key(self, ident: ClassifierId) -> str:
        return self._items[ident][1]

    def mapping(self, idents: list[ClassifierId]) -> dict[ClassifierId, Classifier]:
        return {i: self._items[i][0] for i in idents}

    def obtain(self, model: ModelConfig, defense: DefenseConfig, *, check: bool = True) -> tuple[Classifier, str]:
        """The trained classifier of (model, defense) and its cache key. A user-fixable error names both."""
        ident = (model.name, defense.name)
        if ident in self._items:
            return self._items[ident]
        try:
            clf, key = self._obtain(model, defense)
        except RobustBenchError as exc:
            if str(exc).startswith("model '"):
                raise
            raise type(exc)(f"model {model.name!r} (defense {defense.name!r}): {exc}") from exc
        self._items[ident] = (clf, key)
        if check:
            self._check(clf, model.name, defense.name)
        return clf, key

    def _check(self, clf: Classifier, model: str, defense: str) -> None:
        if self.checks:
            self.flags += classifier_flags(clf, self.x_check, self.y_check, model=model, defense=defense)

    def job(self, model: ModelConfig, defense: DefenseConfig) -> TrainJob:
        """How (model, defense) is trained, as a picklable job another process can run."""
        return TrainJob(model, defense, classifier_key(model, defense, self.data, self.seed, self.numerics),
                        self.seed, self.numerics)

    def to_train(self, pairs: list[tuple[ModelConfig, DefenseConfig]]) -> list[TrainJob]:
        """The jobs among ``pairs`` this run must train: neither obtained yet, nor a weights file, nor cached."""
        jobs: dict[ClassifierId, TrainJob] = {}
        for model, defense in pairs:
            ident = (model.name, defense.name)
            if ident in jobs or ident in self._items or (model.weights is not None and defense.kind == "none"):
                continue
            job = self.job(model, defense)
            path = self.weights.path(job.key)
            if path is None or not path.is_file():
                jobs[ident] = job
        return list(jobs.values())

    def _obtain(self, model: ModelConfig, defense: DefenseConfig) -> tuple[Classifier, str]:
        data = model_data(model, self.data)
        job = self.job(model, defense)
        defense_obj = job.defense_object()
        skeleton = job.skeleton(self.data).to(self.device)
        skeleton.check(self.x_check[:4])  # fail fast, before any training, on a model of the wrong shape
        key = job.key
        if model.weights is not None and defense.kind == "none":
            load_weights(skeleton.model, model.weights, trust_checkpoint=model.trust_checkpoint)
            skeleton.check(self.x_check[:4])
            return skeleton.eval(), key
        if not self.weights.load(key, skeleton):
            remote = self.remote.pop((model.name, defense.name), None)
            if remote is not None:  # trained by an executor elsewhere; its prerequisites come along
                skeleton, prerequisites = remote()
                for index, artefact in prerequisites.items():
                    need = job.prerequisites(self.data, self.fit_context)[index]
                    if need.key not in self.fit_context.shared:
                        self.fit_context.put(need, artefact)
            else:
                log.info("training %s / %s", model.name, defense.name)
                skeleton = job.fit(self.data, device=self.device, progress=self.progress, context=self.fit_context)
            self.weights.save(key, skeleton, {"model": model.name, "defense": defense.name,
                                              "spec": data.spec.as_dict()})
            self.trained += 1
        clf = tune_for_device(skeleton, self.device).eval()
        self._items[(model.name, defense.name)] = (clf, key)  # the report may ask for this classifier
        section = self._report_section(defense_obj, model, defense, key)
        if section:
            self.sections.append(section)
        return clf, key

    def _report_section(self, defense_obj: Any, model: ModelConfig, defense: DefenseConfig, key: str) -> Any:
        path = self.cache_dir / "reports" / f"{key}.json" if self.cache_dir is not None else None
        cached = read_checked_json(path)
        if cached is not None:
            return cached
        section = defense_obj.report(ReportContext(
            self.data, self.seed, self.device, model.name, defense.name,
            classifier=lambda m, d: self.obtain(self.models[m], self.defenses[d])[0],
            reference=lambda: self.obtain(REFERENCE, NO_DEFENSE, check=False)[0], fit=self.fit_context))
        if section is not None and path is not None:
            write_checked_json(path, section)
        return section
