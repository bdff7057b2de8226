"""Suite parsing and validation: every bad key or value is a ConfigError naming the file and the key."""
from __future__ import annotations

import textwrap

import pytest

from robustbench_gan.errors import ConfigError
from robustbench_gan.suite import builtin_suites, load_suite

GOOD = """
name = "t"
seed = 3
[data]
dataset = "digits"
[[models]]
name = "cnn"
arch = "cnn"
epochs = 2
[[defenses]]
name = "plain"
kind = "none"
[[attacks]]
name = "fgsm"
kind = "fgsm"
eps = [0.1, 0.2]
[[attacks]]
name = "pgd"
steps = 5
eps = 0.1
[evaluation]
n = 50
"""


def write(tmp_path, text, name="suite.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_builtin_suites_load():
    assert {"default", "mnist"} <= set(builtin_suites())
    for name in builtin_suites():
        s = load_suite(name)
        assert s.models and s.attacks


def test_good_suite(tmp_path):
    s = load_suite(write(tmp_path, GOOD))
    assert s.name == "t" and s.seed == 3 and s.evaluation.n == 50
    assert s.models[0].train.epochs == 2
    assert s.attacks[0].eps == (0.1, 0.2) and s.attacks[1].kind == "pgd" and s.attacks[1].eps == (0.1,)
    assert s.defenses[0].kind == "none"


def test_yaml_suite(tmp_path):
    text = """
    name: y
    data: {dataset: digits}
    models: [{name: m, arch: mlp, epochs: 1, params: {hidden: [32]}}]
    attacks: [{name: fgsm, eps: [0.1]}]
    """
    s = load_suite(write(tmp_path, text, "s.yaml"))
    assert s.models[0].params == {"hidden": [32]}


def test_overrides(tmp_path):
    s = load_suite(write(tmp_path, GOOD), overrides={"seed": 9, "data.train_size": 100})
    assert s.seed == 9 and s.data["train_size"] == 100


@pytest.mark.parametrize("old, new, message", [
    ('seed = 3', 'seed = 3\nsede = 1', "unknown key 'sede'; did you mean 'seed'"),
    ('epochs = 2', 'epoch = 2', "models\\[0\\].*unknown key 'epoch'; did you mean 'epochs'"),
    ('epochs = 2', 'epochs = -2', "epochs must be a positive integer"),
    ('eps = [0.1, 0.2]', 'eps = [0.1, -0.2]', "eps values must be finite numbers >= 0"),
    ('eps = [0.1, 0.2]', 'eps = ["big"]', "eps values"),
    ('eps = [0.1, 0.2]', 'epsilon = [0.1]', "missing required key 'eps'"),
    ('steps = 5', 'stepz = 5', "has no parameter 'stepz'; did you mean 'steps'"),
    ('kind = "fgsm"', 'kind = "fgsn"', "did you mean 'fgsm'"),
    ('arch = "cnn"', 'arch = "cnnn"', "did you mean 'cnn'"),
    ('dataset = "digits"', 'dataset = "digitz"', "did you mean 'digits'"),
    ('dataset = "digits"', 'dataset = "digits"\nroot = "x"', "\\[data\\]: unknown key 'root'"),
    ('kind = "none"', 'kind = "magic"', "unknown defense kind 'magic'"),
    ('seed = 3', 'seed = "three"', "seed must be a non-negative integer"),
    ('name = "plain"', 'name = "none"', "'none' is used twice"),
    ('n = 50', 'n = 0', "n must be a positive integer"),
    ('arch = "cnn"', 'arch = "cnn"\nweights = "missing.pt"', "weights file .* not found"),
])
def test_bad_suites(tmp_path, old, new, message):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError, match=message) as info:
        load_suite(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_syntax_errors_name_the_line(tmp_path):
    with pytest.raises(ConfigError, match="TOML syntax error.*line 2"):
        load_suite(write(tmp_path, 'name = "x"\nseed = = 1\n'))
    with pytest.raises(ConfigError, match="line [23].*YAML syntax error"):
        load_suite(write(tmp_path, "name: x\nseed: [1\nmodels: []\n", "s.yml"))


def test_missing_suite_suggests_builtin():
    with pytest.raises(ConfigError, match="did you mean 'default'"):
        load_suite("defualt")


def test_missing_sections(tmp_path):
    with pytest.raises(ConfigError, match="at least one \\[\\[models\\]\\]"):
        load_suite(write(tmp_path, 'name = "x"\n[[attacks]]\nname = "fgsm"\neps = 0.1\n'))
    with pytest.raises(ConfigError, match="at least one \\[\\[attacks\\]\\]"):
        load_suite(write(tmp_path, 'name = "x"\n[[models]]\nname = "cnn"\n'))


@pytest.mark.parametrize("key", ["data", "models", "defenses", "attacks", "evaluation", "transfer", "execution"])
@pytest.mark.parametrize("value", [1, "x", [1], True])
def test_a_table_of_the_wrong_type_is_one_config_error(key, value):
    """Each table's parser refuses a value of the wrong type in one line (``defenses = 1`` once raised TypeError,
    found by the fuzz test)."""
    from robustbench_gan.suite import validate_suite

    doc = {"name": "t", "models": [{"name": "m", "arch": "logistic"}], "attacks": [{"name": "fgsm", "eps": [0.1]}],
           key: value}
    if key in ("models", "attacks") and isinstance(value, list):
        doc[key] = [value[0]]
    with pytest.raises(ConfigError) as info:
        validate_suite(doc, source="s.toml")
    assert str(info.value).startswith("s.toml: ") and "\n" not in str(info.value)


def test_the_tests_suite_writer_gives_what_it_was_told():
    """tests/suite_files.py: what ``suite_toml`` writes parses back to its parts and is a valid suite."""
    from robustbench_gan.suite import validate_suite
    from suite_files import CNN, LOGISTIC, NO_TRANSFER, suite_doc

    doc = suite_doc("w", seed=4, models=[LOGISTIC, CNN], defenses=[{"name": "d", "kind": "distillation"}],
                    attacks=[{"name": "pgd", "kind": "pgd", "steps": 3, "eps": [0.1, 0.2], "random_start": False}],
                    transfer=NO_TRANSFER, evaluation={"n": 30})
    assert doc == {"name": "w", "seed": 4, "data": {"dataset": "digits"}, "models": [LOGISTIC, CNN],
                   "defenses": [{"name": "d", "kind": "distillation"}],
                   "attacks": [{"name": "pgd", "kind": "pgd", "steps": 3, "eps": [0.1, 0.2], "random_start": False}],
                   "transfer": NO_TRANSFER, "evaluation": {"n": 30}}
    cfg = validate_suite(doc)
    assert [m.name for m in cfg.models] == ["logistic", "cnn"] and cfg.attacks[0].params["steps"] == 3
