"""Bad input, everywhere (issue 7, item 1): suite files, data, models, checkpoints and CLI arguments.

Every case must end the CLI with exit code 2 and exactly one line on stderr, ``error: ...``, that names the
problem (the key, file or value) and says how to fix it -- never a traceback. The same inputs raise a typed
:class:`RobustBenchError` subclass from the Python API. ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import pickle
import struct
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from robustbench_gan.cli import main
from robustbench_gan.errors import CheckpointError, ConfigError, DataError, ModelError, RobustBenchError
from robustbench_gan.run import run_suite
from robustbench_gan.suite import load_suite

BASE = """\
name = "bad-input"
seed = 0

[data]
dataset = "digits"

[[models]]
name = "logistic"
arch = "logistic"
epochs = 1

[[attacks]]
name = "fgsm"
kind = "fgsm"
eps = [0.1]

[evaluation]
n = 50
"""

DIGITS_DATA = '[data]\ndataset = "digits"\n'


def suite_file(tmp_path: Path, *replacements: tuple[str, str], text: str = BASE, name: str = "suite.toml") -> Path:
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / name
    path.write_text(text)
    return path


def write_idx(path: Path, arr: np.ndarray) -> Path:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.float32): 0x0D}
    head = bytes([0, 0, codes[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(head + arr.astype(arr.dtype.newbyteorder(">")).tobytes())
    return path


def npz_suite(tmp_path: Path, x: np.ndarray, y: np.ndarray, extra: str = "") -> Path:
    np.savez(tmp_path / "data.npz", x=x, y=y)
    return suite_file(tmp_path, (DIGITS_DATA, f'[data]\ndataset = "npz"\npath = "data.npz"\n{extra}'))


def good_images(n: int = 40) -> np.ndarray:
    return np.random.default_rng(0).random((n, 1, 8, 8), dtype=np.float32)


def good_labels(n: int = 40) -> np.ndarray:
    return np.arange(n) % 10


def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> str:
    """Write a module of model factories into tmp_path, importable under a fresh name."""
    name = f"rb_user_models_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("import torch\nfrom torch import nn\n" + body)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def factory_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, fn: str) -> Path:
    module = user_module(tmp_path, monkeypatch, body)
    return suite_file(tmp_path, ('arch = "logistic"', f'factory = "{module}:{fn}"'))


class _Evil:
    """Unpickling this object opens (creates) ``path``: a stand-in for any code a checkpoint could run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def evil_checkpoint(tmp_path: Path, how: str) -> Path:
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    if how == "torch.save":
        torch.save({"weight": _Evil(str(marker))}, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump({"weight": _Evil(str(marker))}, fh)
    return path


# ------------------------------------------------------------------------------------------------ cases


@dataclass(frozen=True)
class Case:
    """``build(tmp_path, monkeypatch)`` returns a suite path (run with the standard options) or a full argv."""

    id: str
    build: Callable[[Path, pytest.MonkeyPatch], "Path | list[str]"]
    expect: tuple[str, ...]  # substrings of the one-line message: the problem ...
    fix: tuple[str, ...]  # ... and how to fix it
    api: "tuple[str, type[RobustBenchError]] | None" = None  # ("load" | "run", exception) for the Python API


CASES = [
    # ---------------------------------------------------------------- suite files
    Case("unknown-top-level-key", lambda t, m: suite_file(t, ("seed = 0", "sede = 0")),
         ("suite.toml", "unknown key 'sede'"), ("did you mean 'seed'",), ("load", ConfigError)),
    Case("unknown-attack-key", lambda t, m: suite_file(t, ('kind = "fgsm"', 'kind = "pgd"\nstepz = 3')),
         ("suite.toml", "attacks[0] (fgsm)", "'stepz'"), ("did you mean 'steps'",), ("load", ConfigError)),
    Case("unknown-model-key", lambda t, m: suite_file(t, ("epochs = 1", "epochz = 1")),
         ("models[0]", "unknown key 'epochz'"), ("did you mean 'epochs'",), ("load", ConfigError)),
    Case("eps-as-string", lambda t, m: suite_file(t, ("eps = [0.1]", 'eps = "0.1"')),
         ("attacks[0] (fgsm)", "eps", "'0.1'"), ("without quotes",), ("load", ConfigError)),
    Case("epochs-float", lambda t, m: suite_file(t, ("epochs = 1", "epochs = 1.5")),
         ("models[0] (logistic)", "epochs", "1.5"), ("positive integer",), ("load", ConfigError)),
    Case("epochs-string", lambda t, m: suite_file(t, ("epochs = 1", 'epochs = "1"')),
         ("models[0] (logistic)", "epochs", "'1'"), ("positive integer",), ("load", ConfigError)),
    Case("eps-negative", lambda t, m: suite_file(t, ("eps = [0.1]", "eps = [0.1, -0.2]")),
         ("attacks[0] (fgsm)", "-0.2"), (">= 0",), ("load", ConfigError)),
    Case("eps-beyond-pixel-range", lambda t, m: suite_file(t, ("eps = [0.1]", "eps = [0.1, 8]")),
         ("attacks[0] (fgsm)", "eps 8", "[0, 1]"), ("8/255",), ("load", ConfigError)),
    Case("missing-suite-file", lambda t, m: t / "nosuch.toml",
         ("nosuch.toml", "not found"), ("check the path",), ("load", ConfigError)),
    Case("toml-syntax-error", lambda t, m: suite_file(t, ('[data]\ndataset = "digits"', '[data]\ndataset = "digits\n'
                                                                                          'x = 1')),
         ("suite.toml", "line 5", "TOML syntax error"), ("fix",), ("load", ConfigError)),
    Case("yaml-syntax-error", lambda t, m: suite_file(t, text="name: y\nseed: [1\nmodels: []\n", name="s.yaml"),
         ("s.yaml", "line 3", "YAML syntax error"), ("fix",), ("load", ConfigError)),
    Case("unknown-dataset", lambda t, m: suite_file(t, ('dataset = "digits"', 'dataset = "digitz"')),
         ("[data]", "unknown dataset 'digitz'"), ("did you mean 'digits'",), ("load", ConfigError)),
    Case("unknown-arch", lambda t, m: suite_file(t, ('arch = "logistic"', 'arch = "cnnn"')),
         ("models[0] (logistic)", "'cnnn'"), ("did you mean 'cnn'",), ("load", ConfigError)),
    Case("unknown-attack-kind", lambda t, m: suite_file(t, ('kind = "fgsm"', 'kind = "fgsn"')),
         ("attacks[0] (fgsm)", "'fgsn'"), ("did you mean 'fgsm'",), ("load", ConfigError)),
    Case("unknown-device-in-suite",  # no --device option here: it would override the suite's device
         lambda t, m: ["run", str(suite_file(t, ("seed = 0", 'seed = 0\ndevice = "tpu"'))), "--out", str(t / "out")],
         ("device", "'tpu'"), ("auto, cpu, cuda",), ("load", ConfigError)),
    Case("no-attacks", lambda t, m: suite_file(t, text=BASE.split("[[attacks]]")[0]),
         ("suite.toml", "[[attacks]]"), ("define at least one",), ("load", ConfigError)),
    Case("model-params-wrong-type",
         lambda t, m: suite_file(t, ('arch = "logistic"', 'arch = "mlp"\nparams = {hidden = "wide"}')),
         ("mlp", "hidden", "'wide'"), ("params",), ("run", ConfigError)),
    Case("data-option-wrong-type", lambda t, m: suite_file(t, (DIGITS_DATA, DIGITS_DATA + 'train_size = "most"\n')),
         ("train_size", "'most'"), ("positive count or a fraction",), ("run", DataError)),
    # ---------------------------------------------------------------- data
    Case("idx-values-outside-bounds",
         lambda t, m: suite_file(t, (DIGITS_DATA, '[data]\ndataset = "idx"\nimages = "img.idx"\nlabels = "lab.idx"\n')),
         ("img.idx", "[0, 2]", "[0, 1]"), ("rescale",), ("run", DataError)),
    Case("npz-values-outside-bounds", lambda t, m: npz_suite(t, good_images() * 255, good_labels()),
         ("data.npz", "outside the declared bounds [0"), ("bounds = [",), ("run", DataError)),
    Case("npz-wrong-image-shape", lambda t, m: npz_suite(t, good_images().reshape(40, 64), good_labels()),
         ("data.npz", "(40, 64)"), ("[N, H, W]",), ("run", DataError)),
    Case("npz-labels-out-of-range", lambda t, m: npz_suite(t, good_images(), good_labels(), "num_classes = 5\n"),
         ("data.npz", "labels", "[0, 9]", "[0, 4]"), ("num_classes",), ("run", DataError)),
    Case("npz-negative-labels", lambda t, m: npz_suite(t, good_images(), good_labels() - 1),
         ("data.npz", "labels", "-1"), ("class indices",), ("run", DataError)),
    Case("npz-nan-pixels", lambda t, m: npz_suite(t, np.where(good_images() > 0.9, np.nan, good_images()), good_labels()),
         ("data.npz", "NaN"), ("clean",), ("run", DataError)),
    Case("npz-without-path", lambda t, m: suite_file(t, ('dataset = "digits"', 'dataset = "npz"')),
         ("[data]", "'npz'", "'path'"), ("add path = ... to [data]",), ("load", ConfigError)),
    Case("npz-missing-file", lambda t, m: suite_file(t, (DIGITS_DATA, '[data]\ndataset = "npz"\npath = "none.npz"\n')),
         ("none.npz", "not found"), ("check the path",), ("run", DataError)),
    # ---------------------------------------------------------------- models
    Case("factory-wrong-output-shape",
         lambda t, m: factory_suite(t, m, "def make():\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))\n",
                                    "make"),
         (":make'", "expected [batch, 10] logits"), ("one logit per class",), ("run", ModelError)),
    Case("factory-nan-logits",
         lambda t, m: factory_suite(t, m, "class Nan(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                                          "        self.lin = nn.Linear(64, 10)\n"
                                          "    def forward(self, x):\n        return self.lin(x.flatten(1)) * float('nan')\n"
                                          "def make():\n    return Nan()\n", "make"),
         ("(Nan)", "NaN or infinite logits"), ("check its forward and its weights",), ("run", ModelError)),
    Case("factory-inf-logits",
         lambda t, m: factory_suite(t, m, "class Inf(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                                          "        self.lin = nn.Linear(64, 10)\n"
                                          "    def forward(self, x):\n        return self.lin(x.flatten(1)) / 0.0\n"
                                          "def make():\n    return Inf()\n", "make"),
         ("(Inf)", "NaN or infinite logits"), ("check its forward and its weights",), ("run", ModelError)),
    Case("factory-raises",
         lambda t, m: factory_suite(t, m, "def make(num_classes):\n    raise RuntimeError('needs a GPU')\n", "make"),
         (":make'", "raised RuntimeError: needs a GPU"), ("fix the factory",), ("run", ModelError)),
    Case("factory-module-missing", lambda t, m: suite_file(t, ('arch = "logistic"', 'factory = "no_such_mod_xyz:make"')),
         ("'no_such_mod_xyz'",), ("PYTHONPATH",), ("run", ModelError)),
    Case("weights-file-missing", lambda t, m: suite_file(t, ("epochs = 1", 'epochs = 1\nweights = "nope.pt"')),
         ("models[0] (logistic)", "nope.pt", "not found"), ("check the path",), ("load", ConfigError)),
    Case("weights-do-not-fit",
         lambda t, m: (torch.save({"w": torch.zeros(3)}, t / "w.pt"),
                       suite_file(t, ("epochs = 1", 'epochs = 1\nweights = "w.pt"')))[1],
         ("w.pt", "do not fit the model", "missing keys 1.weight, 1.bias; unexpected keys w"), ("same architecture",),
         ("run", CheckpointError)),
    Case("checkpoint-needs-pickled-code",
         lambda t, m: (evil_checkpoint(t, "torch.save"), suite_file(t, ("epochs = 1", 'epochs = 1\nweights = "evil.pt"')))[1],
         ("evil.pt", "needs pickled code", "references io.open"), ("--trust-checkpoint",), ("run", CheckpointError)),
    # ---------------------------------------------------------------- CLI arguments
    Case("cli-unknown-device", lambda t, m: ["run", "default", "--device", "tpu"],
         ("--device", "'tpu'"), ("choose from",)),
    Case("cli-seed-not-a-number", lambda t, m: ["run", "default", "--seed", "abc"],
         ("--seed", "'abc'"), ("non-negative integer", "--seed 0")),
    Case("cli-negative-seed", lambda t, m: ["run", "default", "--seed", "-1"], ("--seed", "-1"),
         ("non-negative integer",)),
    Case("cli-unknown-subcommand", lambda t, m: ["frobnicate"], ("'frobnicate'",), ("choose from",)),
    Case("cli-unknown-option", lambda t, m: ["run", "default", "--frobnicate"], ("--frobnicate",), ("unrecognized", "--help")),
    Case("cli-report-missing-folder", lambda t, m: ["report", str(t / "no-run")], ("no-run",), ("run",)),
]


def prepare(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    if case.id == "idx-values-outside-bounds":
        write_idx(tmp_path / "img.idx", np.linspace(0, 2, 40 * 64, dtype=np.float32).reshape(40, 8, 8))
        write_idx(tmp_path / "lab.idx", (np.arange(40) % 10).astype(np.uint8))
    built = case.build(tmp_path, monkeypatch)
    if isinstance(built, list):
        return ["-q", *built]
    return ["-q", "run", str(built), "--out", str(tmp_path / "out"), "--device", "cpu", "--no-cache"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_bad_input_one_line_exit_2(case: Case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing a failing run writes may land in the repository
    argv = prepare(case, tmp_path, monkeypatch)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for part in case.expect + case.fix:
        assert part in err, f"{part!r} not in {err!r}"
    out = tmp_path / "out"
    assert not (out / "results.csv").exists() and not (out / "index.html").exists()
    assert not (tmp_path / "pwned.txt").exists()


API_CASES = [c for c in CASES if c.api is not None]


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_python_api_raises_typed_error(case: Case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = prepare(case, tmp_path, monkeypatch)
    suite = argv[2]
    stage, exc_type = case.api  # type: ignore[misc]
    with pytest.raises(exc_type) as info:
        if stage == "load":
            load_suite(suite)
        else:
            run_suite(load_suite(suite, overrides={"device": "cpu"}), cache_dir=None, progress=False)
    assert isinstance(info.value, RobustBenchError)
    assert "\n" not in str(info.value)
    for part in case.expect:
        assert part in str(info.value)


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_malicious_checkpoint_refused_through_cli(how, tmp_path, monkeypatch, capsys):
    """A checkpoint whose unpickling would run code is refused (exit 2) and the code never runs; with
    --trust-checkpoint the very same file does run it, which shows the refusal is what protects the user."""
    monkeypatch.chdir(tmp_path)
    evil_checkpoint(tmp_path, how)
    marker = tmp_path / "pwned.txt"
    suite = suite_file(tmp_path, ("epochs = 1", 'epochs = 1\nweights = "evil.pt"'))
    argv = ["-q", "run", str(suite), "--out", str(tmp_path / "out"), "--device", "cpu", "--no-cache"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "evil.pt" in err and "--trust-checkpoint" in err and "Traceback" not in err
    assert not marker.exists()
    main([*argv, "--trust-checkpoint"])  # the payload runs; the file is no state_dict, so it still fails
    capsys.readouterr()
    assert marker.exists()


def test_safetensors_weights_accepted(tmp_path, monkeypatch, capsys):
    safetensors = pytest.importorskip("safetensors.torch")
    from robustbench_gan.data import load_dataset
    from robustbench_gan.zoo import build_model

    model = build_model("logistic", load_dataset("digits").spec)
    safetensors.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    monkeypatch.chdir(tmp_path)
    suite = suite_file(tmp_path, ("epochs = 1", 'epochs = 1\nweights = "w.safetensors"'))
    assert main(["-q", "run", str(suite), "--out", str(tmp_path / "out"), "--device", "cpu", "--no-cache"]) == 0
    assert (tmp_path / "out" / "results.csv").is_file()


def test_debug_flag_shows_traceback(tmp_path):
    cmd = [sys.executable, "-m", "robustbench_gan.cli", "--debug", "run", str(tmp_path / "nosuch.toml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" in proc.stderr and "ConfigError" in proc.stderr
    assert "nosuch.toml" in proc.stderr


def test_debug_flag_reraises_in_process(tmp_path):
    with pytest.raises(ConfigError, match="nosuch.toml"):
        main(["--debug", "run", str(tmp_path / "nosuch.toml")])


def test_console_refuses_malicious_checkpoint_in_one_line(tmp_path):
    """The real process (no pytest capture): exit 2, exactly one line on stderr, and the payload never ran."""
    evil_checkpoint(tmp_path, "torch.save")
    suite = suite_file(tmp_path, ("epochs = 1", 'epochs = 1\nweights = "evil.pt"'))
    cmd = [sys.executable, "-m", "robustbench_gan.cli", "-q", "run", str(suite), "--out", str(tmp_path / "out"),
           "--device", "cpu", "--no-cache"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "needs pickled code" in proc.stderr and "--trust-checkpoint" in proc.stderr
    assert not (tmp_path / "pwned.txt").exists()
    assert not (tmp_path / "out" / "results.csv").exists()
