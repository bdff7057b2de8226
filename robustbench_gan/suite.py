"""Suite files (TOML or YAML) -> a validated :class:`SuiteConfig`. Errors name the file and the bad key."""
from __future__ import annotations

import datetime
import difflib
import inspect
import math
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .classifier_training import TrainConfig
from .core.validation import bounds_pair, check_seed, eps_values
from .errors import ConfigError, RobustBenchError
from .execution import EXECUTORS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOP_KEYS = ("name", "description", "seed", "device", "data", "models", "defenses", "attacks", "evaluation",
            "transfer", "execution")
EXECUTION_KEYS = ("executor", "address", "num_cpus", "num_gpus")
TRANSFER_KEYS = ("sources", "ensemble")
TRANSFER_SOURCES = ("all", "undefended", "none")
MODEL_KEYS = ("name", "arch", "factory", "weights", "params", "trust_checkpoint", "mean", "std", "bounds") + tuple(
    TrainConfig.__dataclass_fields__)
NORMALIZATION_KEYS = ("mean", "std")  # [data] and [[models]]: the wrapper normalizes, attacks stay in pixel space
EVAL_KEYS = ("n", "subset", "batch_size", "micro_batch", "shard_size", "gallery", "precision", "compile", "cudnn_benchmark")
DEVICES = ("auto", "cpu", "cuda")
SHARD_SIZE = 1000
"""Samples per shard of a cell by default: a 10,000-image evaluation is 10 jobs that workers share and a rerun
resumes shard by shard; a few hundred samples stay one shard."""


@dataclass(frozen=True)
class Place:
    """Where in a suite a value sits (``source``: the file, ``where``: the table), and the checks every table's
    parser shares; each error is one line naming both."""

    source: str
    where: str

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.where}: {message}")

    def named(self, name: str) -> "Place":
        """This table, said with the name its ``name`` key gives (``models[0] (cnn)``)."""
        return Place(self.source, f"{self.where} ({label(name)})")

    def table(self, value: Any, allowed: tuple[str, ...] | list[str] | None = None) -> dict[str, Any]:
        """``value`` as a table whose keys are all in ``allowed`` (None: any key)."""
        if not isinstance(value, dict):
            raise ConfigError(f"{self.source}: {self.where} must be a table"
                              + (f", got {type(value).__name__}" if allowed is not None else ""))
        for key in value if allowed is not None else ():
            if key not in allowed:
                raise unknown_key_error(self.source, self.where, key, allowed)
        return value

    def string(self, table: dict[str, Any], key: str, default: str | None = None) -> str:
        return need_str(self.source, self.where, table, key, default)

    def boolean(self, table: dict[str, Any], key: str, default: bool | None = None) -> bool | None:
        """``table[key]`` as true or false (``default`` when absent); a string such as "no" is refused."""
        value = table.get(key, default)
        if value is not None and not isinstance(value, bool):
            raise self.error(f"{key} must be true or false, got {value!r}")
        return value

    def choice(self, table: dict[str, Any], key: str, options: tuple[str, ...], default: str, say: str = "") -> str:
        value = table.get(key, default)
        if value not in options:
            raise self.error(say or f"{key} must be one of {', '.join(options)}, got {value!r}")
        return value

    def wrap(self, exc: RobustBenchError) -> ConfigError:
        """A method's own ConfigError (or any user error), said at this place."""
        return self.error(str(exc))


@dataclass(frozen=True)
class ModelConfig:
    name: str
    arch: str | None = None
    factory: str | None = None
    weights: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    trust_checkpoint: bool = False
    mean: tuple[float, ...] | None = None  # per-channel normalization of this model (overrides [data])
    std: tuple[float, ...] | None = None
    bounds: tuple[float, float] | None = None  # the input range this model was trained on, if not the data's
    search_path: tuple[str, ...] = ()  # folders where a factory's module is looked for (the suite file's)

    @classmethod
    def parse(cls, m: Any, at: Place, base: Path) -> "ModelConfig":
        """One ``[[models]]`` table."""
        from .zoo import MODELS

        at.table(m, MODEL_KEYS)
        name = at.string(m, "name")
        at = at.named(name)
        arch, factory = m.get("arch"), m.get("factory")
        if factory is None:
            arch = at.string(m, "arch", default=name if name in MODELS else None)
            try:
                MODELS.get(arch)
            except ConfigError as exc:
                raise at.wrap(exc) from None
        elif arch is not None:
            raise at.error("give either arch or factory, not both")
        params = m.get("params", {})
        if not isinstance(params, dict):
            raise at.error("params must be a table")
        try:
            train = TrainConfig(**{k: m[k] for k in TrainConfig.__dataclass_fields__ if k in m})
        except ConfigError as exc:
            raise at.wrap(exc) from None
        weights = m.get("weights")
        if weights is not None:
            weights = resolve_path(base, weights)
            if not isinstance(weights, str) or not Path(weights).is_file():
                raise at.error(f"weights file {weights!r} not found; check the path (relative paths are resolved "
                               "from the suite file's folder)")
        trust = at.boolean(m, "trust_checkpoint", False)
        mean, std = parse_normalization(at.source, at.where, m)
        bounds = parse_bounds(at.source, at.where, m["bounds"]) if m.get("bounds") is not None else None
        search = tuple(dict.fromkeys(str(p.resolve()) for p in (base, Path.cwd()))) if factory is not None else ()
        return cls(name, arch, factory, weights, dict(params), train, bool(trust), mean, std, bounds, search)

    def describe(self) -> dict[str, Any]:
        out = {"arch": self.arch, "factory": self.factory, "weights": self.weights, "params": self.params,
               "train": self.train.as_dict()}
        for key in ("mean", "std", "bounds"):  # only when given: cache keys of older suites stay the same
            if getattr(self, key) is not None:
                out[key] = list(getattr(self, key))
        return out


@dataclass(frozen=True)
class AttackConfig:
    name: str
    kind: str
    eps: tuple[float, ...]
    params: dict[str, Any] = field(default_factory=dict)
    transfer: bool | None = None  # None: transfer untargeted white-box attacks to the other classifiers
    instance: Any = field(default=None, compare=False)  # an Attack object given directly (benchmark())

    @classmethod
    def parse(cls, a: Any, at: Place, bounds: tuple[float, float] | None, base: Path | None = None) -> "AttackConfig":
        """One ``[[attacks]]`` table; an Linf eps beyond the data's pixel range (``bounds``) is refused; a
        ``folder`` (a stored corruption set) is relative to the suite file's folder ``base``."""
        from .attacks import make_attack  # registers attacks

        at.table(a)
        name = at.string(a, "name")
        at = at.named(name)
        kind = at.string(a, "kind", default=name)
        if "eps" not in a:
            raise at.error("missing required key 'eps' (a number or a list of numbers)")
        eps = parse_eps(at.source, at.where, a["eps"])
        params = {k: v for k, v in a.items() if k not in ("name", "kind", "eps", "transfer")}
        if base is not None and "folder" in params:
            params["folder"] = resolve_path(base, params["folder"])
        try:
            attack = make_attack(kind, **params)
            attack.check_eps(eps)
        except RobustBenchError as exc:
            raise at.wrap(exc) from None
        check_eps_range(at.source, at.where, eps, attack.norm, bounds)
        return cls(name, kind, eps, params, at.boolean(a, "transfer"))

    def build(self) -> Any:
        """A fresh attack of this config (a copy of ``instance`` when one was given)."""
        if self.instance is not None:
            import copy

            return copy.deepcopy(self.instance)
        from .attacks import make_attack

        return make_attack(self.kind, **self.params)


@dataclass(frozen=True)
class DefenseConfig:
    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)  # overrides of the model's training config (epochs, lr, ...)

    @classmethod
    def parse(cls, d: Any, at: Place) -> "DefenseConfig":
        """One ``[[defenses]]`` table: its parameters are the defense's own, checked by building it."""
        from .defenses import make_defense

        at.table(d)
        name = at.string(d, "name")
        kind = at.named(name).string(d, "kind")
        train_keys = tuple(TrainConfig.__dataclass_fields__)
        params = {k: v for k, v in d.items() if k not in ("name", "kind") + train_keys}
        train = {k: v for k, v in d.items() if k in train_keys}
        try:
            make_defense(kind, name=name, **params)
            TrainConfig(**train)
        except ConfigError as exc:
            raise at.named(name).wrap(exc) from None
        return cls(name, kind, params, train)


@dataclass(frozen=True)
class EvalConfig:
    n: int | None = None  # evaluate n test samples (the first n, as RobustBench does; see subset); None: all
    subset: str = "first"  # which n: "first" (x_test[:n]) or "random" (a subset seeded by the run's seed)
    batch_size: int | None = None  # None ("auto"): 256 on the CPU, on CUDA the largest that fits (run.tuning)
    micro_batch: int = 0  # > 0: every forward pass runs on chunks of exactly this many samples (run.tuning)
    shard_size: int = SHARD_SIZE  # samples per shard of a cell (a job, cached on its own); 0: one shard
    gallery: int = 4
    precision: str = "auto"  # of the attacks' own passes: auto | fp32 | bf16 | fp16 (decisions always in fp32)
    compile: bool = False  # attack a torch.compile'd copy of each plain classifier (run.tuning.compiled)
    cudnn_benchmark: bool = False  # CUDA: let cuDNN time its kernels (faster; not bitwise repeatable across runs)

    @classmethod
    def parse(cls, table: Any, at: Place) -> "EvalConfig":
        """The ``[evaluation]`` table."""
        from .attacks.engine.precision import SETTINGS
        from .data import SUBSETS

        ev = dict(at.table(table, EVAL_KEYS))
        at.choice(ev, "precision", SETTINGS, "auto")
        at.choice(ev, "subset", SUBSETS, "first", say="subset must be \"first\" (the first n test samples) or "
                  f"\"random\" (a seeded random subset), got {ev.get('subset')!r}")
        if ev.get("batch_size") == "auto":
            ev["batch_size"] = None
        for key in ("compile", "cudnn_benchmark"):
            at.boolean(ev, key)
        for key in ("n", "batch_size", "gallery", "micro_batch", "shard_size"):
            v = ev.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)
                                  or v < (0 if key in ("gallery", "micro_batch", "shard_size") else 1)):
                what = "an integer >= 0" if key in ("gallery", "micro_batch", "shard_size") else "a positive integer"
                raise at.error(f"{key} must be {what}{' or auto' if key == 'batch_size' else ''}, "
                               f"got {v!r}")
        return cls(**ev)


@dataclass(frozen=True)
class TransferConfig:
    sources: str = "all"  # all | undefended | none: which classifiers examples are crafted on
    ensemble: bool = False  # also craft on the average of the undefended models' logits

    @classmethod
    def parse(cls, table: Any, at: Place) -> "TransferConfig":
        """The ``[transfer]`` table."""
        tr = at.table(table, TRANSFER_KEYS)
        return cls(at.choice(tr, "sources", TRANSFER_SOURCES, "all"), bool(at.boolean(tr, "ensemble", False)))


@dataclass(frozen=True)
class ExecutionConfig:
    executor: str = "local"  # local | ray
    address: str | None = None  # ray: a running cluster ("auto", "ray://host:10001"); None: RAY_ADDRESS or a new one
    num_cpus: float | None = None  # ray: CPUs per task (default 1; torch uses that many threads)
    num_gpus: float | None = None  # ray: GPUs per task (default 1 with a CUDA device, else 0; fractions allowed)

    @classmethod
    def parse(cls, table: Any, at: Place) -> "ExecutionConfig":
        """The ``[execution]`` table: which executor runs the run's jobs and each task's resources."""
        ex = at.table(table, EXECUTION_KEYS)
        executor = at.choice(ex, "executor", tuple(EXECUTORS.names()), "local")
        address = ex.get("address")
        if address is not None and (not isinstance(address, str) or not address):
            raise at.error(f"address must be a non-empty string such as \"auto\", got {address!r}")
        for key, low in (("num_cpus", "> 0"), ("num_gpus", ">= 0")):
            v = ex.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not (v > 0 if key == "num_cpus" else v >= 0)):
                raise at.error(f"{key} must be a number {low} (fractions allowed, e.g. {key} = 0.5), got {v!r}")
        return cls(executor, address, *(float(ex[k]) if ex.get(k) is not None else None
                                        for k in ("num_cpus", "num_gpus")))


@dataclass(frozen=True)
class SuiteConfig:
    name: str
    data: dict[str, Any]
    models: tuple[ModelConfig, ...]
    attacks: tuple[AttackConfig, ...]
    defenses: tuple[DefenseConfig, ...] = ()
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
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
            raise ConfigError(f"cannot read suite file {ref_s!r}: {exc}; save it as UTF-8 text") from None
        kind = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "toml"
        doc, source, base = parse_text(text, ref_s, kind), ref_s, path.parent
    elif path.is_dir():
        raise ConfigError(f"suite {ref_s!r} is a folder; give a TOML or YAML suite file or a built-in suite name")
    elif "/" in ref_s or "\\" in ref_s or path.suffix.lower() in (".toml", ".yaml", ".yml"):
        raise ConfigError(
            f"suite file {ref_s!r} not found; check the path (relative to {str(Path.cwd())!r}) "
            f"or give a built-in suite: {', '.join(builtin_suites())}"
        )
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
            where = f" line {mark.line + 1}:" if mark is not None else ""
            problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
            context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
            if context and cmark is not None:
                problem += f" ({context} at line {cmark.line + 1})"
            fix = "fix the file at that line" if mark is not None else "fix the file"
            raise ConfigError(f"{source}:{where} YAML syntax error: {problem}; {fix}") from None
    else:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            msg = " ".join(str(exc).split())
            line = re.search(r"at line (\d+)", msg)
            where = f" line {line.group(1)}:" if line else ""
            fix = "fix the file at that line" if line else "fix the file"
            raise ConfigError(f"{source}:{where} TOML syntax error: {msg}; {fix}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: a suite must be a table of keys (name, data, models, attacks, ...)")
    return doc


def apply_override(doc: dict[str, Any], dotted: str, value: Any) -> None:
    node = doc
    *parents, leaf = dotted.split(".")
    for i, p in enumerate(parents):
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            where = ".".join(parents[: i + 1])
            raise ConfigError(f"cannot set {dotted!r}: {where} in the suite is a {type(node).__name__}, not a table")
    node[leaf] = value


def label(text: str) -> str:
    """A user's key or name as shown in messages: as is when plain, quoted (escapes visible) otherwise."""
    return text if re.fullmatch(r"[\w.:+-]+", text) else repr(text)


def check_values(source: str, where: str, value: Any) -> None:
    """Suites hold JSON-like values only: tables with string keys, lists, strings, booleans, finite numbers and
    (YAML) null. Dates, NaN, inf and other YAML types are refused here, before they can fail a run at its end."""
    if isinstance(value, dict):
        for key, v in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{source}: {where}: keys must be strings, got {key!r}; quote the key")
            check_values(source, f"{where}.{label(key)}" if where != "top level" else label(key), v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_values(source, f"{where}[{i}]", v)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: {where}: {value!r} is not allowed; use a finite number "
                          "(for the Linf norm write the string \"inf\")")
    elif isinstance(value, (datetime.date, datetime.time)):
        raise ConfigError(f"{source}: {where}: got a date/time {value!s}; quote it if you mean a string")
    elif value is not None and not isinstance(value, (str, bool, int, float)):
        raise ConfigError(f"{source}: {where}: unsupported value {value!r} of type {type(value).__name__}; "
                          "use strings, numbers, booleans, lists and tables")


def unknown_key_error(source: str, where: str, key: str, allowed: tuple[str, ...] | list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(f"{source}: {where}: unknown key {key!r}; {hint}allowed: {', '.join(allowed)}")


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
    return eps_values(values, context=f"{source}: {where}", hint="write numbers without quotes, e.g. eps = [0.1, 0.3]")


def resolve_path(base: Path, value: Any) -> Any:
    if isinstance(value, str) and value and not Path(value).is_absolute():
        candidate = base / value
        return str(candidate) if candidate.exists() or not Path(value).exists() else value
    return value


def validate_suite(doc: dict[str, Any], *, source: str = "<dict>", base: Path | None = None) -> SuiteConfig:
    """Check every key and value of a parsed suite; raise ConfigError naming ``source`` and the key. Each table is
    parsed by its config class (``ModelConfig.parse``, ``AttackConfig.parse``, ...)."""
    base = base or Path.cwd()
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: a suite must be a table of keys (name, data, models, attacks, ...)")
    check_values(source, "top level", doc)
    top = Place(source, "top level")
    top.table(doc, TOP_KEYS)
    name = top.string(doc, "name", default="suite")
    seed = doc.get("seed", 0)
    try:
        check_seed(seed)
    except ConfigError:
        raise ConfigError(f"{source}: seed must be a non-negative integer (at most 2**63 - 1), got {seed!r}") from None
    device = doc.get("device", "auto")
    if device not in DEVICES and not (isinstance(device, str) and re.fullmatch(r"cuda:\d+", device)):
        raise ConfigError(f"{source}: device must be one of {', '.join(DEVICES)} (or cuda:N), got {device!r}")

    data, bounds = parse_data(doc, Place(source, "[data]"), base)

    raw_models = doc.get("models")
    if not isinstance(raw_models, list) or not raw_models:
        raise ConfigError(f"{source}: define at least one [[models]] table (e.g. name = \"cnn\", arch = \"cnn\")")
    models = [ModelConfig.parse(m, Place(source, f"models[{i}]"), base) for i, m in enumerate(raw_models)]
    _unique(source, "models", [m.name for m in models])

    raw_defenses = doc.get("defenses") or []
    if not isinstance(raw_defenses, list):
        raise ConfigError(f"{source}: defenses must be a list of [[defenses]] tables (e.g. name = \"at\", "
                          f"kind = \"adversarial-training\"), got {type(raw_defenses).__name__}")
    defenses = [DefenseConfig.parse(d, Place(source, f"defenses[{i}]")) for i, d in enumerate(raw_defenses)]
    _unique(source, "defenses", ["none"] + [d.name for d in defenses])

    raw_attacks = doc.get("attacks")
    if not isinstance(raw_attacks, list) or not raw_attacks:
        raise ConfigError(f"{source}: define at least one [[attacks]] table (e.g. name = \"fgsm\", eps = [0.1])")
    attacks = [AttackConfig.parse(t, Place(source, f"attacks[{i}]"), bounds, base)
               for i, a in enumerate(raw_attacks) for t in expand_corruptions(a)]
    _unique(source, "attacks", [a.name for a in attacks])

    return SuiteConfig(
        name=name, data=data, models=tuple(models), attacks=tuple(attacks), defenses=tuple(defenses),
        evaluation=EvalConfig.parse(doc.get("evaluation", {}), Place(source, "[evaluation]")),
        transfer=TransferConfig.parse(doc.get("transfer", {}), Place(source, "[transfer]")),
        execution=ExecutionConfig.parse(doc.get("execution", {}), Place(source, "[execution]")),
        seed=seed, device=device, description=str(doc.get("description", "")), source=source, raw=doc,
    )


def expand_corruptions(table: Any) -> list[Any]:
    """An ``[[attacks]]`` table of kind ``corruption`` whose ``corruption`` is ``"all"`` or a list: one table per
    type (of :data:`robustbench_gan.corruptions.CORRUPTIONS` for ``"all"``), named after the type (prefixed
    ``<name>-`` unless the table's name is ``corruption`` or ``corruptions``). Without ``corruption`` a suite's
    corruption table means all 15. Any other table as it is."""
    if not isinstance(table, dict) or table.get("kind", table.get("name")) not in ("corruption", "corruptions"):
        return [table]
    which = table.get("corruption", "all")
    if isinstance(which, str) and which != "all":
        return [{**table, "kind": "corruption"}]
    from .corruptions import CORRUPTIONS

    types = list(CORRUPTIONS) if which == "all" else which
    if not isinstance(types, list) or not types:
        return [{**table, "kind": "corruption"}]  # let the attack say what is wrong with it
    name = str(table.get("name", "corruption"))
    prefix = "" if name in ("corruption", "corruptions") else f"{name}-"
    return [{**table, "name": f"{prefix}{t}", "kind": "corruption", "corruption": t} for t in types]


def parse_data(doc: dict[str, Any], at: Place, base: Path) -> tuple[dict[str, Any], tuple[float, float] | None]:
    """The ``[data]`` table (its keys are the loader's options, paths resolved against ``base``) and the pixel
    bounds its loader declares, known before loading (None: it declares none)."""
    from .data import declared_bounds, path_options, required_options

    data = dict(at.table(doc.get("data", {"dataset": "digits"}), _data_keys(doc, at.source)))
    dataset = at.string(data, "dataset")
    for key in required_options(dataset):
        if key not in data:
            raise at.error(f"dataset {dataset!r} needs the key {key!r}; add {key} = ... to [data]")
    for key in path_options(dataset):
        if key in data:
            data[key] = resolve_path(base, data[key])
    bounds = declared_bounds(dataset, {k: v for k, v in data.items() if k not in NORMALIZATION_KEYS})
    mean, std = parse_normalization(at.source, at.where, data)
    if mean is not None:
        data["mean"], data["std"] = list(mean), list(std)
    return data, bounds


def parse_normalization(source: str, where: str, table: dict[str, Any]) -> tuple[Any, Any]:
    """``mean`` and ``std`` (numbers or per-channel lists, both or neither; std > 0) as tuples, or (None, None)."""
    if "mean" not in table and "std" not in table:
        return None, None
    if ("mean" in table) != ("std" in table):
        raise ConfigError(f"{source}: {where}: give both mean and std (per channel), or neither")
    out = []
    for key in ("mean", "std"):
        value = table[key]
        values = value if isinstance(value, list) else [value]
        if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                             for v in values):
            raise ConfigError(f"{source}: {where}: {key} must be a number or a list of numbers per channel, "
                              f"e.g. {key} = [0.49, 0.48, 0.45]; got {value!r}")
        out.append(tuple(float(v) for v in values))
    mean, std = out
    if len(mean) != len(std):
        raise ConfigError(f"{source}: {where}: mean has {len(mean)} values but std {len(std)}; give one per channel")
    if any(v <= 0 for v in std):
        raise ConfigError(f"{source}: {where}: std values must be positive, got {list(std)}")
    return mean, std


def parse_bounds(source: str, where: str, value: Any) -> tuple[float, float]:
    return bounds_pair(value, context=f"{source}: {where}",
                       hint="e.g. bounds = [0, 255]")


def check_eps_range(source: str, where: str, eps: tuple[float, ...], norm: str,
                    bounds: tuple[float, float] | None) -> None:
    """An Linf budget beyond the whole pixel range is almost always eps given in 0..255 units for [0, 1] images."""
    if norm != "inf" or bounds is None:
        return
    lo, hi = bounds
    width = hi - lo
    for e in eps:
        if e > width * (1 + 1e-9):
            raise ConfigError(
                f"{source}: {where}: eps {e:g} is larger than the data's whole pixel range [{lo:g}, {hi:g}]; "
                f"eps is in pixel units: for {e:g} grey levels of 255 write {e:g}/255 (= {e / 255 * width:.4g}), "
                f"e.g. {8 / 255 * width:.3g} (8/255 of the range) for 8"
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
    return ["dataset"] + [p for p in inspect.signature(loader).parameters] + [
        k for k in NORMALIZATION_KEYS if k not in inspect.signature(loader).parameters]


def _unique(source: str, what: str, names: list[str]) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise ConfigError(f"{source}: {what}: the name {n!r} is used twice; names must be unique")
        seen.add(n)
