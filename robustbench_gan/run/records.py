"""Shaping what cells produce into results: one record per (classifier, attack, source, eps), per-sample blocks,
gallery entries, and the aggregation of a run (leaderboard, sanity flags, GAN report). Suites and
``benchmark()`` both go through here."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Sequence

from ..attacks import Attack
from ..evaluation import Outcome
from ..checks import table_flags
from ..corruption_tables import corruption_flags
from ..results import Results
from ..samples import sample_block, samples_table, worst_case
from ..suite import AttackConfig, DefenseConfig
from .plan import CellSettings

log = logging.getLogger(__name__)


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

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "CellOutput":
        return cls(doc["records"], doc["gallery"], doc["substitute"], doc["samples"])

    def extend(self, other: "CellOutput") -> None:
        self.records += other.records
        self.gallery += other.gallery
        self.substitute += other.substitute
        self.samples += other.samples


def make_record(
    settings: CellSettings, model: str, defense: DefenseConfig, cfg: AttackConfig, attack: Attack, outcome: Outcome,
    *, source: str = "", purified: bool = False,
) -> dict[str, Any]:
    """One results row (the ``results.csv`` columns plus the attack's kind and role and the defense's kind).

    Two columns appear only where they say something, so runs without purifying defenses keep their columns:
    ``adaptive`` (the attack's gradient view of a purifying defense, e.g. ``bpda``, when not ``none``) and
    ``purified`` (True when the evaluated classifier purifies its input, a
    :class:`~robustbench_gan.purified.PurifiedClassifier`)."""
    adaptive = getattr(attack, "adaptive", "none")
    marks = {**({"adaptive": adaptive} if adaptive != "none" else {}), **({"purified": True} if purified else {}),
             **({"sigma": attack.sigma} if attack.role in ("certified", "smoothed") else {})}  # which smoothed g
    return {
        "suite": settings.suite,
        "dataset": settings.dataset,
        "model": model,
        "defense": defense.name,
        "attack": cfg.name,
        "threat": "transfer" if source else attack.threat,
        "source": source,
        "targeted": bool(attack.targeted),
        "target_mode": attack.target_mode,
        "norm": attack.norm,
        "eps": outcome.eps,
        **outcome.metrics,
        "attack_kind": cfg.kind,
        "defense_kind": defense.kind,
        "attack_role": attack.role,
        **marks,
    }


def component_records(
    settings: CellSettings, model: str, defense: DefenseConfig, cfg: AttackConfig, outcomes: Sequence[Outcome],
    *, purified: bool = False,
) -> list[dict[str, Any]]:
    """The rows of an ensemble's components (AutoAttack: the robust accuracy after each attack of the cascade),
    named ``<attack>/<component>`` with the component's own threat, role and norm. They carry no per-sample data:
    the ensemble's own row feeds the leaderboard."""
    rows = []
    for k in range(min((len(o.components) for o in outcomes), default=0)):  # a component's rows, eps by eps
        for o in outcomes:
            part = o.components[k]
            named = replace(cfg, name=f"{cfg.name}/{part.label}")
            rows.append(make_record(settings, model, defense, named, part.attack, part.outcome, purified=purified))
    return rows


def sample_blocks(
    model: str, defense: str, cfg: AttackConfig, attack: Attack, outcomes: Sequence[Outcome], *, source: str = "",
) -> list[dict[str, Any]]:
    """The per-sample data of a cell's outcomes (see :mod:`robustbench_gan.samples`)."""
    meta = {"model": model, "defense": defense, "attack": cfg.name, "threat": "transfer" if source else attack.threat,
            "source": source, "norm": attack.norm, "attack_kind": cfg.kind, "attack_role": attack.role}
    return [b for b in (sample_block(meta, o) for o in outcomes) if b is not None]


def gallery_entry(
    model: str, defense: str, attack: str, outcomes: Sequence[Outcome], class_names: Sequence[str], *,
    strip: bool = False,
) -> list[dict[str, Any]]:
    """The report's gallery of a white-box cell: the examples at its largest eps. ``strip`` (a corruption): also
    the first sample at every eps, in order (``strip``: eps, image, prediction)."""
    shown = [o for o in outcomes if o.gallery]
    if not shown:
        return []
    o = max(shown, key=lambda o: o.eps)
    entry = {"model": model, "defense": defense, "attack": attack, "eps": o.eps, "class_names": list(class_names),
             "items": o.gallery}
    if strip:
        entry["strip"] = [{"eps": s.eps, "x_adv": s.gallery[0]["x_adv"], "adv_pred": s.gallery[0]["adv_pred"]}
                          for s in sorted(shown, key=lambda s: s.eps)]
    return [entry]


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


def aggregate(
    output: CellOutput, *, manifest: dict[str, Any], labels: list[int], flags: list[dict[str, Any]],
    sections: list[dict[str, Any]], checks: bool = True, sample_ids: list[int] | None = None,
) -> Results:
    """The Results of a run from all its cells' output (in plan order), the classifier flags and the defenses'
    report sections: per-sample table, worst-case leaderboard, table flags, GAN report, finish time.
    ``sample_ids``: where each evaluated sample sits in the user's data (default: its position)."""
    results = Results(manifest=manifest)
    results.extend(output.records)
    results.gallery.extend(output.gallery)
    results.samples = samples_table(output.samples, labels, sample_ids)
    results.leaderboard = worst_case(results.samples, len(labels))
    results.substitute = list(output.substitute)
    gans = [s["gan"] for s in sections if "gan" in s]
    if gans:
        results.gan = [g["metrics"] for g in gans]
        results.gan_details = merge_gan_details(gans)
    for section in sections:  # every other section by its id: the report renders each under its own heading
        for key, payload in section.items():
            if key != "gan":
                results.sections.setdefault(str(key), []).append(payload)
    results.flags = list(flags) + (table_flags(results.records) + corruption_flags(results.samples) if checks else [])
    for f in results.flags:  # the CLI summarises them at the end; the Python API raises SanityFlagWarning
        log.debug("sanity check %s: %s / %s: %s", f["check"], f["model"], f["defense"], f["message"])
    results.manifest["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return results
