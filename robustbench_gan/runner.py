"""Plan and run the cells of a suite (model x defense x attack over a list of eps) and collect Results.

Cells are independent once their classifiers exist: :func:`plan_cells` lists them as tasks and :func:`run_cell`
runs one, so a later executor can farm them out. Finished cells and trained weights are cached on disk.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import json
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from .attacks import Attack, make_attack
from .attacks.transfer import Crafted, craft, evaluate_transfer
from .checks import classifier_flags, table_flags
from .classifier import Classifier
from .data import DATASETS, Data, load_dataset, subset
from .defenses import Defense, make_defense
from .defenses.gan_augmentation import GanAugmentation
from .errors import ConfigError, RobustBenchError
from .evaluation import Outcome, evaluate_attack
from .gan.cache import GeneratorCache
from .models import build_model, build_user_model, load_weights
from .results import Results, atomic_write_text, new_manifest
from .samples import sample_block, samples_table, worst_case
from .suite import AttackConfig, DefenseConfig, ModelConfig, SuiteConfig, load_suite
from .training import TrainConfig, WeightCache, config_hash

log = logging.getLogger(__name__)

NO_DEFENSE = DefenseConfig("none", "none", {})


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; a CUDA request without CUDA is a ConfigError."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available here; use --device cpu or auto")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}")
    return device


def load_suite_data(suite: SuiteConfig) -> Data:
    """Load the suite's data set; its split seed defaults to the suite seed."""
    opts = {k: v for k, v in suite.data.items() if k != "dataset"}
    loader = DATASETS.get(suite.data["dataset"])
    if "seed" in inspect.signature(loader).parameters:
        opts.setdefault("seed", suite.seed)
    return load_dataset(suite.data["dataset"], **opts)


@dataclass(frozen=True)
class Cell:
    """One unit of work: evaluate ``attack`` on the classifier (``model``, ``defense``) at all its eps.

    With ``source`` set, the examples are crafted on the source classifier(s) and evaluated on this one
    (transfer); several sources form an ensemble that averages their logits (Tramer et al. 2018).
    """

    model: ModelConfig
    defense: DefenseConfig
    attack: AttackConfig
    source: tuple[tuple[ModelConfig, DefenseConfig], ...] | None = None

    @property
    def source_name(self) -> str:
        if self.source is None:
            return ""
        if len(self.source) == 1:
            return source_label(self.source[0][0].name, self.source[0][1].name)
        return "ensemble(" + "+".join(source_label(m.name, d.name) for m, d in self.source) + ")"


@dataclass
class CellOutput:
    """What a cell produces: result records, gallery entries, substitute-training histories, per-sample blocks."""

    records: list[dict[str, Any]]
    gallery: list[dict[str, Any]] = field(default_factory=list)
    substitute: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"records": self.records, "gallery": self.gallery, "substitute": self.substitute,
                "samples": self.samples}


class MeanLogits(nn.Module):
    """Average of the logits of several classifiers (each applies its own normalization)."""

    def __init__(self, members: list[Classifier]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)


def ensemble(members: list[Classifier]) -> Classifier:
    """A classifier averaging the logits of ``members`` (an ensemble transfer source, Tramer et al. 2018)."""
    first = members[0]
    return Classifier(MeanLogits(members), num_classes=first.num_classes, bounds=first.bounds).eval()


def source_label(model: str, defense: str) -> str:
    """How a source classifier is named in the ``source`` column."""
    return model if defense == "none" else f"{model}/{defense}"


def transferable(cfg: AttackConfig) -> bool:
    """Untargeted white-box perturbation attacks transfer by default; ``transfer = true/false`` overrides."""
    attack = make_attack(cfg.kind, **cfg.params)
    if attack.threat != "white-box" or not attack.starts_from_input:
        return False
    return cfg.transfer if cfg.transfer is not None else not attack.targeted


def plan_cells(suite: SuiteConfig) -> list[Cell]:
    """White-box cells for every (model, defense, attack), then transfer cells: the examples of each
    transferable attack crafted on each source (every classifier, or the undefended ones, per
    ``[transfer] sources``) evaluated on every other classifier, plus an ensemble source when asked."""
    defenses = (NO_DEFENSE, *suite.defenses)
    classifiers = [(m, d) for m in suite.models for d in defenses]
    cells = [Cell(m, d, a) for m, d in classifiers for a in suite.attacks]
    transfer_attacks = [a for a in suite.attacks if transferable(a)]
    if suite.transfer.sources == "none" or not transfer_attacks:
        return cells
    sources = [(c,) for c in classifiers if suite.transfer.sources == "all" or c[1].kind == "none"]
    undefended = tuple(c for c in classifiers if c[1].name == "none")
    if suite.transfer.ensemble and len(undefended) > 1:
        sources.append(undefended)
    for src in sources:
        for m, d in classifiers:
            if len(src) == 1 and src[0] == (m, d):
                continue  # the diagonal is the white-box cell
            cells += [Cell(m, d, a, source=src) for a in transfer_attacks]
    return cells


def model_factory(cfg: ModelConfig, data: Data) -> Callable[[], nn.Module]:
    if cfg.factory is not None:
        return lambda: build_user_model(cfg.factory, data.spec, **cfg.params)  # type: ignore[arg-type]
    return lambda: build_model(cfg.arch, data.spec, **cfg.params)  # type: ignore[arg-type]


class Runner:
    """Runs a suite: trains (or loads) each classifier once, then evaluates its cells."""

    def __init__(
        self, suite: SuiteConfig, *, device: str, cache_dir: str | Path | None, progress: bool = True
    ) -> None:
        self.suite = suite
        self.device = resolve_device(device)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.weights = WeightCache(self.cache_dir)
        self.generators = GeneratorCache(self.weights)
        self.progress = progress
        self.data = load_suite_data(suite)
        n = suite.evaluation.n
        self.x_eval, self.y_eval = subset(self.data.x_test, self.data.y_test, n, suite.seed)
        self.x_eval, self.y_eval = self.x_eval.to(self.device), self.y_eval.to(self.device)
        self._classifiers: dict[tuple[str, str], tuple[Classifier, str]] = {}
        self._crafted: dict[tuple[str, str], Crafted] = {}
        self.flags: list[dict[str, Any]] = []
        self.gan: list[dict[str, Any]] = []
        self._gan_reports: dict[str, dict[str, Any]] = {}  # per generator key
        self._gan_corner_cases: dict[tuple[str, str], dict[str, Any]] = {}  # per (generator key, model)

    # ------------------------------------------------------------------ classifiers
    def classifier(self, model: ModelConfig, defense: DefenseConfig, *, check: bool = True) -> tuple[Classifier, str]:
        """The trained classifier of (model, defense) and its cache key; trained once, cached on disk.

        A user-fixable error (bad params, wrong output shape, unreadable weights) names the model and defense."""
        try:
            return self._classifier(model, defense, check=check)
        except RobustBenchError as exc:
            if str(exc).startswith("model '"):
                raise
            raise type(exc)(f"model {model.name!r} (defense {defense.name!r}): {exc}") from exc

    def _classifier(self, model: ModelConfig, defense: DefenseConfig, *, check: bool) -> tuple[Classifier, str]:
        ident = (model.name, defense.name)
        if ident in self._classifiers:
            return self._classifiers[ident]
        seed, spec = self.suite.seed, self.data.spec
        make = model_factory(model, self.data)
        defense_obj: Defense = make_defense(defense.kind, name=defense.name, **defense.params)
        skeleton = defense_obj.classifier(make, self.data, seed=seed).to(self.device)
        if model.weights is not None and defense.kind == "none":
            load_weights(skeleton.model, model.weights, trust_checkpoint=model.trust_checkpoint)
            key = config_hash({"weights": str(model.weights), "model": model.describe()})
            skeleton.check(self.x_eval[:4])
            self._classifiers[ident] = (skeleton.eval(), key)
            if check:
                self.flags += classifier_flags(skeleton, self.x_eval, self.y_eval, model=model.name, defense=defense.name)
            return self._classifiers[ident]
        skeleton.check(self.x_eval[:4])  # fail fast, before any training, on a model of the wrong shape
        train = replace(model.train, **defense.train)
        key = config_hash({
            "data": self.data.fingerprint(), "model": {**model.describe(), "train": train.as_dict()},
            "defense": defense.kind, "defense_params": defense.params, "seed": seed,
        })
        gan_path = self._cell_path(f"gan-{key}")
        gan = self._load_json(gan_path) if isinstance(defense_obj, GanAugmentation) else None
        needs_gan = isinstance(defense_obj, GanAugmentation) and gan is None
        if needs_gan or not self.weights.load(key, skeleton):
            log.info("training %s / %s", model.name, defense.name)
            if isinstance(defense_obj, GanAugmentation):
                defense_obj.generators = self.generators
            skeleton = defense_obj.fit(make, self.data, train=train, seed=seed, device=self.device,
                                       progress=self.progress)
            if isinstance(defense_obj, GanAugmentation):
                gan = self.gan_report(model, defense, defense_obj)
                self._save_json(gan_path, gan)
            self.weights.save(key, skeleton, {"model": model.name, "defense": defense.name, "spec": spec.as_dict()})
        if gan is not None:
            self.gan.append(gan)
        clf = skeleton.to(self.device).eval()
        self._classifiers[ident] = (clf, key)
        if check:
            self.flags += classifier_flags(clf, self.x_eval, self.y_eval, model=model.name, defense=defense.name)
        return clf, key

    def reference(self) -> Classifier:
        """A CNN trained on the real training data: the yardstick of GAN quality metrics (no downloads)."""
        cfg = ModelConfig("gan-reference", arch="cnn", train=TrainConfig(epochs=10))
        return self.classifier(cfg, NO_DEFENSE, check=False)[0]

    def gan_report(self, model: ModelConfig, defense: DefenseConfig, gan_defense: GanAugmentation) -> dict[str, Any]:
        """Quality metrics, sample grid and losses of the generator a defense trained (computed once per distinct
        generator), and its corner cases for this model's undefended classifier."""
        assert gan_defense.generator is not None and gan_defense.generator_key is not None
        gkey = gan_defense.generator_key
        if gkey not in self._gan_reports:
            self._gan_reports[gkey] = self._generator_report(gan_defense)
        if (gkey, model.name) not in self._gan_corner_cases:  # the same for every defense of this model using gkey
            self._gan_corner_cases[(gkey, model.name)] = self._corner_cases(model, gan_defense)
        details = copy.deepcopy(self._gan_reports[gkey])
        details.update(model=model.name, defense=defense.name,
                       corner_cases=copy.deepcopy(self._gan_corner_cases[(gkey, model.name)]))
        details["metrics"].update(model=model.name, defense=defense.name)
        return details

    def _generator_sample(self, gan_defense: GanAugmentation) -> tuple[torch.Tensor, torch.Tensor]:
        from .gan.training import sample_balanced

        assert gan_defense.generator is not None
        x_gen, y_gen = sample_balanced(gan_defense.generator, 100, seed=self.suite.seed + 11)
        return x_gen.to(self.device), y_gen.to(self.device)

    def _scale(self, t: torch.Tensor) -> Any:
        lo, hi = self.data.spec.bounds
        return ((t - lo) / (hi - lo)).clamp(0, 1).cpu().numpy().round(3).tolist()

    def _generator_report(self, gan_defense: GanAugmentation) -> dict[str, Any]:
        from .gan.metrics import gan_quality

        spec = self.data.spec
        x_gen, y_gen = self._generator_sample(gan_defense)
        quality = gan_quality(x_gen, y_gen, self.reference(), real_x=self.data.x_test.to(self.device),
                              real_y=self.data.y_test.to(self.device))
        record = {"model": "", "defense": "",
                  **{k: quality[k] for k in ("modes_captured", "high_quality_fraction", "class_kl", "fid",
                                             "conditional_accuracy")}}
        per_class = [x_gen[y_gen == c][:8] for c in range(spec.num_classes)]
        history = gan_defense.history.as_dict() if gan_defense.history is not None else {}
        stride = max(1, len(history.get("g_loss", [])) // 300)
        losses = {k: [round(float(v), 4) for v in history.get(k, [])[::stride]] for k in ("d_loss", "g_loss")}
        losses["steps"] = list(range(0, len(history.get("g_loss", [])), stride))
        return {"generator": gan_defense.generator_key, "gan": gan_defense.gan_config.as_dict(), "metrics": record,
                "grid": {"class_names": list(spec.class_names), "images": [self._scale(t) for t in per_class]},
                "losses": losses}

    def _corner_cases(self, model: ModelConfig, gan_defense: GanAugmentation) -> dict[str, Any]:
        """Generated samples this model's undefended classifier gets wrong or is unsure about."""
        from .gan.metrics import corner_cases

        x_gen, y_gen = self._generator_sample(gan_defense)
        undefended, _ = self.classifier(model, NO_DEFENSE)
        cases = corner_cases(undefended, x_gen, y_gen)
        probs = torch.softmax(undefended.predict(x_gen), 1)
        items = [{"x": self._scale(x_gen[i]), "label": int(y_gen[i]), "pred": int(probs[i].argmax()),
                  "conf": round(float(probs[i].max()), 3)} for i in cases["indices"][:16].tolist()]
        return {"classifier": f"{model.name} (undefended)", "model": model.name,
                "class_names": list(self.data.spec.class_names),
                "rate_per_class": [None if r != r else round(float(r), 4) for r in cases["rate_per_class"]],
                "fraction": round(len(cases["indices"]) / max(1, len(y_gen)), 4), "n": len(y_gen), "items": items}

    # ------------------------------------------------------------------ cells
    def run_cell(self, cell: Cell) -> "CellOutput":
        """Records (one per eps) and gallery entries of one cell; reused from the cell cache when present."""
        clf, clf_key = self.classifier(cell.model, cell.defense)
        attack = make_attack(cell.attack.kind, **cell.attack.params)
        src_key = [self.classifier(m, d)[1] for m, d in cell.source] if cell.source is not None else None
        key = config_hash({"clf": clf_key, "source": src_key, "attack": cell.attack.kind,
                           "params": cell.attack.params, "eps": cell.attack.eps, "eval_n": self.suite.evaluation.n,
                           "seed": self.suite.seed, "gallery": self.suite.evaluation.gallery})
        cached = self._load_cell(key)
        if cached is not None:
            return cached
        if cell.source is not None:
            outcomes = self.transfer_outcomes(cell, attack, clf)
            out = CellOutput([self.record(cell, attack, o) for o in outcomes],
                             samples=self.sample_blocks(cell, attack, outcomes))
            self._save_cell(key, out)
            return out
        outcomes = evaluate_attack(
            clf, self.x_eval, self.y_eval, attack, cell.attack.eps, batch_size=self.suite.evaluation.batch_size,
            seed=self.suite.seed, gallery_size=self.suite.evaluation.gallery,
            desc=f"{cell.model.name}/{cell.defense.name}/{cell.attack.name}", progress=self.progress,
        )
        records = [self.record(cell, attack, o) for o in outcomes]
        gallery = self.gallery(cell, outcomes)
        history = getattr(attack, "history", None)
        rounds = [{"model": cell.model.name, "defense": cell.defense.name, "attack": cell.attack.name,
                   "rounds": [h.as_dict() for h in history]}] if history else []
        out = CellOutput(records, gallery, rounds, self.sample_blocks(cell, attack, outcomes))
        self._save_cell(key, out)
        return out

    def transfer_outcomes(self, cell: Cell, attack: Attack, target: Classifier) -> list[Outcome]:
        """Evaluate ``target`` on the examples of ``attack`` crafted on the cell's source (crafted once per run)."""
        assert cell.source is not None
        ident = (cell.source_name, cell.attack.name)
        if ident not in self._crafted:
            members = [self.classifier(m, d)[0] for m, d in cell.source]
            source = members[0] if len(members) == 1 else ensemble(members)
            self._crafted[ident] = craft(source, self.x_eval, self.y_eval, attack, cell.attack.eps,
                                         batch_size=self.suite.evaluation.batch_size, seed=self.suite.seed)
        return evaluate_transfer(target, self.x_eval, self.y_eval, self._crafted[ident],
                                 batch_size=self.suite.evaluation.batch_size)

    def sample_blocks(self, cell: Cell, attack: Attack, outcomes: list[Outcome]) -> list[dict[str, Any]]:
        meta = {"model": cell.model.name, "defense": cell.defense.name, "attack": cell.attack.name,
                "threat": "transfer" if cell.source is not None else attack.threat, "source": cell.source_name,
                "norm": attack.norm, "attack_kind": cell.attack.kind}
        return [b for b in (sample_block(meta, o) for o in outcomes) if b is not None]

    def record(self, cell: Cell, attack: Attack, outcome: Outcome) -> dict[str, Any]:
        transfer = cell.source is not None
        return {
            "suite": self.suite.name,
            "dataset": self.data.spec.name,
            "model": cell.model.name,
            "defense": cell.defense.name,
            "attack": cell.attack.name,
            "threat": "transfer" if transfer else attack.threat,
            "source": cell.source_name,
            "targeted": bool(attack.targeted),
            "target_mode": attack.target_mode,
            "norm": attack.norm,
            "eps": outcome.eps,
            **outcome.metrics,
            "attack_kind": cell.attack.kind,
            "defense_kind": cell.defense.kind,
        }

    def gallery(self, cell: Cell, outcomes: list[Outcome]) -> list[dict[str, Any]]:
        shown = [o for o in outcomes if o.gallery]
        if not shown:
            return []
        o = max(shown, key=lambda o: o.eps)
        return [{"model": cell.model.name, "defense": cell.defense.name, "attack": cell.attack.name, "eps": o.eps,
                 "class_names": list(self.data.spec.class_names), "items": o.gallery}]

    def _cell_path(self, key: str) -> Path | None:
        return self.cache_dir / "cells" / f"{key}.json" if self.cache_dir is not None else None

    @staticmethod
    def _load_json(path: Path | None) -> Any:
        """A cache entry's payload, or None when missing, unreadable or failing its checksum (then recomputed)."""
        if path is None or not path.is_file():
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            payload = doc["payload"]
            if doc.get("sha256") != payload_digest(payload):
                raise ValueError("checksum mismatch")
            return payload
        except (json.JSONDecodeError, OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable cache entry %s (%s); recomputing", path, exc)
            return None

    @staticmethod
    def _save_json(path: Path | None, payload: Any) -> None:
        if path is not None:
            atomic_write_text(path, json.dumps({"sha256": payload_digest(payload), "payload": payload}))

    def _load_cell(self, key: str) -> "CellOutput | None":
        doc = self._load_json(self._cell_path(key))
        try:
            return CellOutput(doc["records"], doc["gallery"], doc["substitute"], doc["samples"]) if doc else None
        except (KeyError, TypeError) as exc:
            log.warning("ignoring malformed cell cache %s (%s); recomputing", key, exc)
            return None

    def _save_cell(self, key: str, out: "CellOutput") -> None:
        self._save_json(self._cell_path(key), out.as_dict())

    # ------------------------------------------------------------------ whole suite
    def run(self) -> Results:
        suite = self.suite
        results = Results(manifest=new_manifest(suite=suite.name, seed=suite.seed, device=self.device,
                                                config=suite.raw))
        results.manifest["source"] = suite.source
        results.manifest["data"] = {**self.data.spec.as_dict(), "train": len(self.data.y_train),
                                    "test": len(self.data.y_test), "evaluated": len(self.y_eval)}
        cells = plan_cells(suite)
        substitute: list[dict[str, Any]] = []
        blocks: list[dict[str, Any]] = []
        for cell in tqdm(cells, desc=f"suite {suite.name}", disable=not self.progress):
            out = self.run_cell(cell)
            results.extend(out.records)
            results.gallery.extend(out.gallery)
            substitute += out.substitute
            blocks += out.samples
        results.samples = samples_table(blocks, [int(v) for v in self.y_eval.cpu().tolist()])
        results.extra["leaderboard"] = worst_case(results.samples, len(self.y_eval))
        if substitute:
            results.extra["substitute"] = substitute
        if self.gan:
            results.gan = [g["metrics"] for g in self.gan]
            results.extra["gan_details"] = merge_gan_details(self.gan)
        results.flags = self.flags + table_flags(results.records)
        for f in results.flags:
            log.warning("sanity check %s: %s / %s: %s", f["check"], f["model"], f["defense"], f["message"])
        results.manifest["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return results


def payload_digest(payload: Any) -> str:
    """sha256 of a cache payload's canonical JSON: a cache entry whose payload does not match is recomputed."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def merge_gan_details(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One report entry per distinct generator: the classifiers trained on its samples and, per model, the corner
    cases of that model's undefended classifier."""
    merged: dict[Any, dict[str, Any]] = {}
    for g in reports:
        key = g.get("generator") or (g.get("model"), g.get("defense"))
        if key not in merged:
            merged[key] = {k: v for k, v in g.items() if k not in ("metrics", "defense", "model", "corner_cases")}
            merged[key].update(used_by=[], corner_cases=[])
        entry = merged[key]
        entry["used_by"].append({"model": g.get("model"), "defense": g.get("defense")})
        cases = g.get("corner_cases")
        if cases and all(c.get("model") != cases.get("model") for c in entry["corner_cases"]):
            entry["corner_cases"].append(cases)
    return list(merged.values())


def run_suite(
    suite: SuiteConfig | str | Path,
    *,
    out: str | Path | None = None,
    device: str | None = None,
    seed: int | None = None,
    cache_dir: str | Path | None = None,
    cache: bool = True,
    progress: bool = True,
) -> Results:
    """Run a suite (a :class:`SuiteConfig`, a built-in name or a file) and return its :class:`Results`.

    ``out`` writes results.csv, results.json, samples.csv.gz and index.html there; trained weights and finished
    cells are cached in ``cache_dir`` (default ``out/cache``; no cache when both are None or ``cache=False``).
    """
    overrides: dict[str, Any] = {}
    if seed is not None:
        overrides["seed"] = seed
    if device is not None:
        overrides["device"] = device
    if not isinstance(suite, SuiteConfig):
        suite = load_suite(suite, overrides=overrides)
    elif overrides:
        from .suite import validate_suite

        raw = {**suite.raw, **overrides}
        suite = validate_suite(raw, source=suite.source)
    if not cache:
        cache_dir = None
    elif cache_dir is None and out is not None:
        cache_dir = Path(out) / "cache"
    results = Runner(suite, device=suite.device, cache_dir=cache_dir, progress=progress).run()
    if out is not None:
        results.write(out)
    return results

