"""Suite files (TOML or YAML) -> a validated :class:`SuiteConfig`. Errors name the file and the bad key."""
from __future__ import annotations

import difflib
import inspect
import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError, RobustBenchError
from .training import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOP_KEYS = ("name", "description", "seed", "device", "data", "models", "defenses", "attacks", "evaluation",
            "transfer")
TRANSFER_KEYS = ("sources", "ensemble")
TRANSFER_SOURCES = ("all", "undefended", "none")
MODEL_KEYS = ("name", "arch", "factory", "weights", "params", "trust_checkpoint") + tuple(TrainConfig.__dataclass_fields__)
EVAL_KEYS = ("n", "batch_size", "gallery")
PATH_KEYS = ("images", "labels", "test_images", "test_labels", "path", "root")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    arch: str | None = None
    factory: str | None = None
    weights: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    trust_checkpoint: bool = False

    def describe(self) -> dict[str, Any]:
        return {"arch": self.arch, "factory": self.factory, "weights": self.weights, "params": self.params,
                "train": self.train.as_dict()}


@dataclass(frozen=True)
class AttackConfig:
    name: str
    kind: str
    eps: tuple[float, ...]
    params: dict[str, Any] = field(default_factory=dict)
    transfer: bool | None = None  # None: transfer untargeted white-box attacks to the other classifiers


@dataclass(frozen=True)
class DefenseConfig:
    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)  # overrides of the model's training config (epochs, lr, ...)


@dataclass(frozen=True)
class EvalConfig:
    n: int | None = None  # evaluate on the first n test samples (after a seeded shuffle); None: all
    batch_size: int = 256
    gallery: int = 4


@dataclass(frozen=True)
class TransferConfig:
    sources: str = "all"  # all | undefended | none: which classifiers examples are crafted on
    ensemble: bool = False  # also craft on the average of the undefended models' logits


@dataclass(frozen=True)
class SuiteConfig:
    name: str
    data: dict[str, Any]
    models: tuple[ModelConfig, ...]
    attacks: tuple[AttackConfig, ...]
    defenses: tuple[DefenseConfig, ...] = ()
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    seed: int = 0
    device: str = "auto"
    description: str = ""
    source: str = "<dict>"
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


def builtin_suites() -> list[str]:
    """Names of the suites shipped with the package."""
    folder = resources.files("robustbench_gan") / "suites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_suite(ref: str | Path, *, overrides: dict[str, Any] | None = None) -> SuiteConfig:
    """Load a suite from a built-in name or a TOML/YAML path and validate it.

    ``overrides`` maps dotted keys (``"data.root"``, ``"seed"``) to values applied before validation.
    """
    ref_s = str(ref)
    path = Path(ref_s)
    if ref_s in builtin_suites() and not path.is_file():
        text = (resources.files("robustbench_gan") / "suites" / f"{ref_s}.toml").read_text(encoding="utf-8")
        doc, source, base = parse_text(text, f"built-in suite {ref_s!r}", "toml"), f"built-in suite {ref_s!r}", Path.cwd()
    elif path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read suite file {ref_s!r}: {exc}") from None
        kind = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "toml"
        doc, source, base = parse_text(text, ref_s, kind), ref_s, path.parent
    else:
        close = difflib.get_close_matches(ref_s, builtin_suites(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"suite {ref_s!r} is neither a file nor a built-in suite; {hint}built-in: {', '.join(builtin_suites())}"
        )
    for key, value in (overrides or {}).items():
        apply_override(doc, key, value)
    return validate_suite(doc, source=source, base=base)


def parse_text(text: str, source: str, kind: str) -> dict[str, Any]:
    """Parse TOML or YAML text; syntax errors name the file and line."""
    if kind == "yaml":
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{source}:{where} YAML syntax error: {getattr(exc, 'problem', exc)}") from None
    else:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: TOML syntax error: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: a suite must be a table of keys (name, data, models, attacks, ...)")
    return doc


def apply_override(doc: dict[str, Any], dotted: str, value: Any) -> None:
    node = doc
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def unknown_key_error(source: str, where: str, key: str, allowed: tuple[str, ...] | list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(f"{source}: {where}: unknown key {key!r}; {hint}allowed: {', '.join(allowed)}")


def check_keys(source: str, where: str, table: Any, allowed: tuple[str, ...] | list[str]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {where} must be a table, got {type(table).__name__}")
    for key in table:
        if key not in allowed:
            raise unknown_key_error(source, where, key, allowed)
    return table


def need_str(source: str, where: str, table: dict[str, Any], key: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if value is None:
        raise ConfigError(f"{source}: {where}: missing required key {key!r}")
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: {where}: {key} must be a non-empty string, got {value!r}")
    return value


def parse_eps(source: str, where: str, value: Any) -> tuple[float, ...]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{source}: {where}: eps must list at least one value")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"{source}: {where}: eps values must be finite numbers >= 0, got {v!r}")
        out.append(float(v))
    return tuple(out)


def resolve_path(base: Path, value: Any) -> Any:
    if isinstance(value, str) and value and not Path(value).is_absolute():
        candidate = base / value
        return str(candidate) if candidate.exists() or not Path(value).exists() else value
    return value


def validate_suite(doc: dict[str, Any], *, source: str = "<dict>", base: Path | None = None) -> SuiteConfig:
    """Check every key and value of a parsed suite; raise ConfigError naming ``source`` and the key."""
    from .attacks import make_attack  # registers attacks
    from .data import DATASETS
    from .defenses import make_defense
    from .models import MODELS

    base = base or Path.cwd()
    check_keys(source, "top level", doc, TOP_KEYS)
    name = need_str(source, "top level", doc, "name", default="suite")
    seed = doc.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{source}: seed must be a non-negative integer, got {seed!r}")
    device = doc.get("device", "auto")
    if device not in DEVICES and not (isinstance(device, str) and device.startswith("cuda:")):
        raise ConfigError(f"{source}: device must be one of {', '.join(DEVICES)} (or cuda:N), got {device!r}")

    data = dict(check_keys(source, "[data]", doc.get("data", {"dataset": "digits"}), _data_keys(doc, source)))
    dataset = need_str(source, "[data]", data, "dataset")
    DATASETS.get(dataset)
    for key in PATH_KEYS:
        if key in data:
            data[key] = resolve_path(base, data[key])

    models = []
    raw_models = doc.get("models")
    if not isinstance(raw_models, list) or not raw_models:
        raise ConfigError(f"{source}: define at least one [[models]] table (e.g. name = \"cnn\", arch = \"cnn\")")
    for i, m in enumerate(raw_models):
        where = f"models[{i}]"
        check_keys(source, where, m, MODEL_KEYS)
        mname = need_str(source, where, m, "name")
        where = f"models[{i}] ({mname})"
        arch, factory = m.get("arch"), m.get("factory")
        if factory is None:
            arch = need_str(source, where, m, "arch", default=mname if mname in MODELS else None)
            try:
                MODELS.get(arch)
            except ConfigError as exc:
                raise ConfigError(f"{source}: {where}: {exc}") from None
        elif arch is not None:
            raise ConfigError(f"{source}: {where}: give either arch or factory, not both")
        params = m.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"{source}: {where}: params must be a table")
        try:
            train = TrainConfig(**{k: m[k] for k in TrainConfig.__dataclass_fields__ if k in m})
        except ConfigError as exc:
            raise ConfigError(f"{source}: {where}: {exc}") from None
        weights = m.get("weights")
        if weights is not None:
            weights = resolve_path(base, weights)
            if not Path(weights).is_file():
                raise ConfigError(f"{source}: {where}: weights file {weights!r} not found")
        trust = m.get("trust_checkpoint", False)
        if not isinstance(trust, bool):
            raise ConfigError(f"{source}: {where}: trust_checkpoint must be true or false")
        models.append(ModelConfig(mname, arch, factory, weights, dict(params), train, trust))
    _unique(source, "models", [m.name for m in models])

    defenses = []
    for i, d in enumerate(doc.get("defenses", []) or []):
        where = f"defenses[{i}]"
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: {where} must be a table")
        dname = need_str(source, where, d, "name")
        kind = need_str(source, f"{where} ({dname})", d, "kind")
        train_keys = tuple(TrainConfig.__dataclass_fields__)
        params = {k: v for k, v in d.items() if k not in ("name", "kind") + train_keys}
        train_over = {k: v for k, v in d.items() if k in train_keys}
        try:
            make_defense(kind, name=dname, **params)
            TrainConfig(**train_over)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {where} ({dname}): {exc}") from None
        defenses.append(DefenseConfig(dname, kind, params, train_over))
    _unique(source, "defenses", ["none"] + [d.name for d in defenses])

    attacks = []
    raw_attacks = doc.get("attacks")
    if not isinstance(raw_attacks, list) or not raw_attacks:
        raise ConfigError(f"{source}: define at least one [[attacks]] table (e.g. name = \"fgsm\", eps = [0.1])")
    for i, a in enumerate(raw_attacks):
        where = f"attacks[{i}]"
        if not isinstance(a, dict):
            raise ConfigError(f"{source}: {where} must be a table")
        aname = need_str(source, where, a, "name")
        where = f"attacks[{i}] ({aname})"
        kind = need_str(source, where, a, "kind", default=aname)
        if "eps" not in a:
            raise ConfigError(f"{source}: {where}: missing required key 'eps' (a number or a list of numbers)")
        eps = parse_eps(source, where, a["eps"])
        params = {k: v for k, v in a.items() if k not in ("name", "kind", "eps", "transfer")}
        try:
            make_attack(kind, **params)
        except RobustBenchError as exc:
            raise ConfigError(f"{source}: {where}: {exc}") from None
        transfer = a.get("transfer")
        if transfer is not None and not isinstance(transfer, bool):
            raise ConfigError(f"{source}: {where}: transfer must be true or false, got {transfer!r}")
        attacks.append(AttackConfig(aname, kind, eps, params, transfer))
    _unique(source, "attacks", [a.name for a in attacks])

    ev = check_keys(source, "[evaluation]", doc.get("evaluation", {}), EVAL_KEYS)
    for key in ev:
        v = ev[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < (0 if key == "gallery" else 1)):
            raise ConfigError(f"{source}: [evaluation]: {key} must be a positive integer, got {v!r}")
    evaluation = EvalConfig(**ev)

    tr = check_keys(source, "[transfer]", doc.get("transfer", {}), TRANSFER_KEYS)
    if tr.get("sources", "all") not in TRANSFER_SOURCES:
        raise ConfigError(f"{source}: [transfer]: sources must be one of {', '.join(TRANSFER_SOURCES)}, "
                          f"got {tr['sources']!r}")
    if not isinstance(tr.get("ensemble", False), bool):
        raise ConfigError(f"{source}: [transfer]: ensemble must be true or false")
    transfer = TransferConfig(**tr)

    return SuiteConfig(
        name=name, data=data, models=tuple(models), attacks=tuple(attacks), defenses=tuple(defenses),
        evaluation=evaluation, transfer=transfer, seed=seed, device=device, description=str(doc.get("description", "")),
        source=source, raw=doc,
    )


def _data_keys(doc: dict[str, Any], source: str) -> list[str]:
    from .data import DATASETS

    data = doc.get("data", {})
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: [data] must be a table")
    name = data.get("dataset", "digits")
    if not isinstance(name, str):
        raise ConfigError(f"{source}: [data]: dataset must be a string")
    try:
        loader = DATASETS.get(name)
    except ConfigError as exc:
        raise ConfigError(f"{source}: [data]: {exc}") from None
    return ["dataset"] + [p for p in inspect.signature(loader).parameters]


def _unique(source: str, what: str, names: list[str]) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise ConfigError(f"{source}: {what}: the name {n!r} is used twice; names must be unique")
        seen.add(n)
