"""Fuzzing (issue 7, item 5) with hypothesis.

(a) The suite parser: random documents, random mutations of a valid suite (as dicts, YAML and TOML text) either
    give a SuiteConfig or raise a RobustBenchError subclass -- never any other exception.
(b) The attack contract on random problems: in test_attack_contract.py, with the rest of the contract.
(c) A malformed suite through the CLI exits 2 with one line and never leaves a report that looks complete.
"""
from __future__ import annotations

import contextlib
import copy
import datetime
import io
import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustbench_gan.cli import main
from robustbench_gan.errors import RobustBenchError
from robustbench_gan.suite import EVAL_KEYS, MODEL_KEYS, TOP_KEYS, TRANSFER_KEYS, SuiteConfig, load_suite, validate_suite

# 25 examples per test in the regular run; FUZZ_EXAMPLES=2000 fuzzes longer.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "25")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

VALID: dict[str, Any] = {
    "name": "fuzz",
    "seed": 1,
    "device": "cpu",
    "data": {"dataset": "digits", "train_size": 0.5},
    "models": [
        {"name": "logistic", "arch": "logistic", "epochs": 1},
        {"name": "mlp", "arch": "mlp", "epochs": 1, "params": {"hidden": [8]}},
    ],
    "defenses": [{"name": "fgsm-at", "kind": "adversarial-training", "method": "fgsm", "eps": 0.1}],
    "attacks": [
        {"name": "fgsm", "kind": "fgsm", "eps": [0.1, 0.2]},
        {"name": "pgd", "kind": "pgd", "steps": 3, "norm": "2", "eps": 0.5},
        {"name": "noise", "kind": "uniform-noise", "eps": [0.1]},
    ],
    "evaluation": {"n": 20, "batch_size": 16},
    "transfer": {"sources": "undefended", "ensemble": False},
}

WORDS = sorted(set(TOP_KEYS + MODEL_KEYS + EVAL_KEYS + TRANSFER_KEYS) | {
    "dataset", "kind", "eps", "steps", "norm", "method", "bounds", "path", "root", "train_size", "test_size",
    "hidden", "targeted", "target_mode", "loss", "restarts", "random_start", "temperature", "alpha", "holdout"})
NAMES = ["digits", "npz", "idx", "mnist", "logistic", "mlp", "cnn", "fgsm", "pgd", "bim", "noise", "uniform-noise",
         "substitute", "none", "adversarial-training", "distillation", "gan-augmentation", "art:FastGradientMethod",
         "art:NoSuchAttack", "art:", "inf", "2", "l2", "auto", "cpu", "cuda", "cuda:0", "cuda:x", "all", "undefended",
         "ce", "margin", "random", "least-likely", "fixed", "", " ", "../x", "a:b", "os:system"]

yaml_scalars = st.one_of(  # everything YAML can represent (it has no time-of-day type)
    st.none(), st.booleans(), st.integers(-3, 12), st.integers(), st.floats(), st.floats(-2, 2),
    st.text(max_size=10), st.sampled_from(NAMES), st.dates(), st.datetimes(),
)
keys = st.one_of(st.sampled_from(WORDS), st.text(max_size=8))


def nested(leaves: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4),
                                st.dictionaries(st.one_of(st.integers(), st.booleans(), st.none()), inner, max_size=2)),
        max_leaves=12,
    )


yaml_values = nested(yaml_scalars)
values = nested(st.one_of(yaml_scalars, st.times(), st.just(object()), st.binary(max_size=4), st.sets(st.integers())))


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every (container path, key or index) in a nested document."""
    out: list[tuple] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for k, v in items:
        out.append(prefix + (k,))
        out += paths(v, prefix + (k,))
    return out


@st.composite
def mutated(draw: st.DrawFn, value_strategy: st.SearchStrategy = values, ops: tuple = ("replace", "delete", "add")):
    """VALID with one to three random edits: replace a value, delete a key/item, or add a key."""
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths(doc)))
        parent = doc
        for k in where[:-1]:
            parent = parent[k]
        op = draw(st.sampled_from(ops))
        if op == "replace":
            parent[where[-1]] = draw(value_strategy)
        elif op == "delete":
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[draw(keys)] = draw(value_strategy)
        else:
            parent.append(draw(value_strategy))
        if not paths(doc):
            break
    return doc


def check_suite(call) -> None:
    try:
        result = call()
    except RobustBenchError as exc:
        assert str(exc) and "\n" not in str(exc), repr(str(exc))
    else:
        assert isinstance(result, SuiteConfig)


# ------------------------------------------------------------------------------------------ (a) suite parser


def test_valid_base_suite_is_valid():
    assert isinstance(validate_suite(copy.deepcopy(VALID)), SuiteConfig)


@FUZZ
@given(doc=st.one_of(values, st.dictionaries(keys, values, max_size=6)))
def test_random_documents(doc):
    check_suite(lambda: validate_suite(doc, source="<fuzz>"))


@FUZZ
@given(doc=mutated())
def test_mutated_suite_dicts(doc):
    check_suite(lambda: validate_suite(doc, source="<fuzz>"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(doc=mutated(yaml_values))
def test_mutated_suites_as_yaml_files(doc, workdir):
    path = workdir / "suite.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    check_suite(lambda: load_suite(path))


def toml_value(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(v)


def toml_text(doc: dict[str, Any]) -> str:
    """A TOML rendering of VALID-like documents (tables, arrays of tables, inline values)."""
    lines = [f"{k} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, (dict, list))]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += [f"[{k}]"] + [f"{kk} = {toml_value(vv)}" for kk, vv in v.items()]
        elif isinstance(v, list) and all(isinstance(x, dict) for x in v):
            for item in v:
                lines += [f"[[{k}]]"] + [f"{kk} = {toml_value(vv)}" for kk, vv in item.items()]
        elif isinstance(v, list):
            lines.insert(0, f"{k} = {toml_value(v)}")
    return "\n".join(lines) + "\n"


BASE_TOML = toml_text(VALID)
json_scalars = st.one_of(st.booleans(), st.integers(-3, 12), st.floats(-2, 2), st.text(max_size=8),
                         st.sampled_from(NAMES))


@st.composite
def toml_texts(draw: st.DrawFn) -> str:
    """The valid suite as TOML text with line-level damage: lines dropped, duplicated, garbled or invented."""
    lines = BASE_TOML.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "garble", "insert", "value"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "garble":
            j = draw(st.integers(0, max(0, len(lines[i]))))
            lines[i] = lines[i][:j] + draw(st.text(alphabet="[]{}=\"',.#\n 0aZ-_:", max_size=4)) + lines[i][j:]
        elif op == "insert":
            lines.insert(i, f"{draw(keys)} = {toml_value(draw(json_scalars))}".replace("\n", " "))
        elif "=" in lines[i]:
            lines[i] = lines[i].split("=", 1)[0] + "= " + draw(st.sampled_from(
                ["nan", "inf", "-inf", "1979-05-27", "07:32:00", "1979-05-27T07:32:00Z", "[]", "{}", '""', "true",
                 "0x10", "1e400", "-0", "[1, [2]]", "{a = 1}", '"art:"', "99999999999999999999"]))
        if not lines:
            break
    return "\n".join(lines) + "\n"


def test_toml_rendering_of_the_base_is_valid(workdir):
    path = workdir / "base.toml"
    path.write_text(BASE_TOML)
    assert load_suite(path).name == "fuzz"


@FUZZ
@given(text=toml_texts())
def test_damaged_toml_text(text, workdir):
    path = workdir / "suite.toml"
    path.write_text(text)
    check_suite(lambda: load_suite(path))


@FUZZ
@given(text=st.text(max_size=200))
def test_arbitrary_text_as_toml_and_yaml(text, workdir):
    for name in ("any.toml", "any.yaml"):
        path = workdir / name
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        check_suite(lambda: load_suite(path))


# ------------------------------------------------------------------------------------------ (c) CLI, no partial report

CLI_NAMES = ["digits", "npz", "logistic", "mlp", "fgsm", "pgd", "bim", "uniform-noise", "none", "inf", "2", "cpu",
             "auto", "cuda", "all", "undefended", "", "art:NoSuchAttack"]
cli_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 3), st.floats(-2, 2), st.floats(),
                        st.text(max_size=6), st.sampled_from(CLI_NAMES), st.dates())
cli_values = st.recursive(cli_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                               st.dictionaries(keys, inner, max_size=3)), max_leaves=6)
REPORT_FILES = ("results.csv", "results.json", "index.html", "samples.csv.gz")
RUNS = itertools.count()


def cheap(doc: Any) -> Any:
    """The CLI fuzz runs whatever it generates: one model, one attack and no defense keep a valid run short."""
    if not isinstance(doc, dict):
        return doc
    doc = {k: v for k, v in doc.items() if k != "defenses"}
    for key in ("models", "attacks"):
        if isinstance(doc.get(key), list):
            doc[key] = doc[key][:1]
    return doc


def run_cli(path: Path, out: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["-q", "run", str(path), "--out", str(out), "--device", "cpu", "--no-cache"])
    return code, err.getvalue()


@FUZZ
@given(doc=mutated(cli_values, ops=("replace", "delete")), as_yaml=st.booleans())
def test_cli_malformed_suite_leaves_no_report(doc, as_yaml, workdir):
    doc = cheap(doc)
    case = workdir / f"cli-{next(RUNS)}"
    case.mkdir()
    path = case / ("suite.yaml" if as_yaml else "suite.toml")
    try:
        path.write_text(yaml.safe_dump(doc) if as_yaml else toml_text(doc))
    except (TypeError, ValueError):  # not representable by the tiny TOML writer (dates): write YAML instead
        path = case / "suite.yaml"
        path.write_text(yaml.safe_dump(doc))
    out = case / "out"
    code, text = run_cli(path, out)
    assert "Traceback" not in text
    if code == 0:  # the edits happened to leave a valid suite: the report must then be complete
        assert all((out / f).is_file() for f in REPORT_FILES[:3])
        doc = json.loads((out / "results.json").read_text())
        assert doc["manifest"]["finished"]
        for r in doc["records"]:  # robust accuracy is bounded by clean accuracy on every non-empty row
            assert r["robust_accuracy"] is None or r["robust_accuracy"] <= r["clean_accuracy"] + 1e-12, r
    else:
        assert code == 2 and text.startswith("error: ") and text.count("\n") == 1, text
        assert not any((out / f).exists() for f in REPORT_FILES), sorted(p.name for p in out.iterdir())


def test_cli_suite_with_a_date_fails_up_front_without_partial_report(tmp_path):
    """A date in `description` used to pass validation and break results.json after results.csv was written (a
    traceback and a CSV without its JSON and report); now the suite is refused before any work."""
    path = tmp_path / "suite.toml"
    path.write_text(toml_text(cheap(VALID)).replace('name = "fuzz"', 'name = "fuzz"\ndescription = 1979-05-27'))
    out = tmp_path / "out"
    code, text = run_cli(path, out)
    assert code == 2 and "description" in text and "date" in text, text
    assert not out.exists() or not any((out / f).exists() for f in REPORT_FILES)


def test_dates_and_non_finite_numbers_are_refused_with_their_key():
    for key, value in (("description", datetime.date(1979, 5, 27)), ("description", float("nan"))):
        doc = {**copy.deepcopy(VALID), key: value}
        with pytest.raises(RobustBenchError, match=key):
            validate_suite(doc, source="<test>")
    doc = copy.deepcopy(VALID)
    doc["attacks"][0]["norm"] = float("inf")
    with pytest.raises(RobustBenchError, match=r"attacks\[0\]\.norm.*\"inf\""):
        validate_suite(doc, source="<test>")
