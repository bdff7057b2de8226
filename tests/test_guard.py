"""The guard between every attack and its score (issue 22): examples outside the eps ball (in the attack's norm)
or the pixel bounds stop the run with a one-line error naming the attack, the count and the largest excess, and
are never scored; finished cells stay cached. Forward and backward passes are counted per sample."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from robustbench_gan import benchmark
from robustbench_gan.attacks import Attack, Goal
from robustbench_gan.evaluation import check_examples, tolerance
from robustbench_gan.errors import AttackContractError
from suite_files import FGSM, NO_TRANSFER


class TooFar(Attack):
    """Returns ``x + 2 eps`` (clipped to the bounds): outside the Linf ball wherever a pixel could move."""

    kind = "too-far"

    def perturb(self, clf, x: torch.Tensor, goal: Goal, *, eps: float) -> torch.Tensor:
        return (x + 2 * eps).clamp(*clf.bounds)


class OutOfBounds(Attack):
    """Stays in the ball but forgets the bounds: ``x + eps`` unclipped."""

    kind = "out-of-bounds"

    def perturb(self, clf, x: torch.Tensor, goal: Goal, *, eps: float) -> torch.Tensor:
        return x + eps


def test_examples_outside_the_ball_or_the_bounds_are_one_line_errors(cnn, digits):
    x, y = digits.x_test[:40], digits.y_test[:40]
    with pytest.raises(AttackContractError) as err:
        benchmark(cnn, (x, y), attacks=TooFar(), eps=0.1, progress=False)
    text = str(err.value)
    assert "\n" not in text and "too-far" in text and "outside the Linf ball of eps 0.1" in text
    assert "largest distance 0.2" in text and " of 40 examples" in text
    with pytest.raises(AttackContractError, match=r"pixels outside the bounds \[0, 1\]"):
        benchmark(cnn, (x, y), attacks=OutOfBounds(), eps=0.1, progress=False)


def test_the_guard_allows_rounding_and_checks_l2_and_shape():
    x = torch.rand(6, 1, 4, 4)
    attack = Attack()
    attack.norm = "2"
    direction = torch.randn_like(x)
    on_sphere = x + 0.5 * direction / direction.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    unclipped = TooFar()  # bounds of its own: this test is about the ball
    check_examples(attack, x, on_sphere, 0.5, (-10.0, 10.0))  # exactly eps, up to rounding: fine
    with pytest.raises(AttackContractError, match="outside the L2 ball"):
        check_examples(attack, x, x + 1.01 * (on_sphere - x), 0.5, (-10.0, 10.0))
    with pytest.raises(AttackContractError, match="shape"):
        check_examples(unclipped, x, x[:3], 0.1, (0.0, 1.0))
    with pytest.raises(AttackContractError, match="NaN or infinite"):
        check_examples(unclipped, x, x * float("nan"), 0.1, (0.0, 1.0))
    assert tolerance(0.1, (0.0, 1.0)) < 1e-6 and tolerance(8.0, (0.0, 255.0)) < 3e-4  # 8 ulps of the scale


BAD = {"name": "bad", "kind": "too-far", "eps": [0.1]}
CHILD = textwrap.dedent('''
    import sys
    sys.path.insert(0, {tests!r})
    from robustbench_gan.attacks import ATTACKS
    from robustbench_gan.cli import main
    from test_guard import TooFar
    ATTACKS.register("too-far")(TooFar)
    sys.exit(main(sys.argv[1:]))
''')


def test_a_run_stops_at_the_bad_attack_with_exit_2_and_keeps_finished_cells(tmp_path, suite_file):
    """Through the CLI: a registered attack that leaves the ball ends the run with exit 2 and one line; the cell
    finished before it is in the cache, so the run without it resumes."""
    code = CHILD.format(tests=str(__import__("pathlib").Path(__file__).parent))
    suite_file("s.toml", name="guarded", attacks=[FGSM, BAD], transfer=NO_TRANSFER, evaluation={"n": 40})
    run = [sys.executable, "-c", code, "run", "s.toml", "--out", "o"]
    r = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: attack ") and "too-far" in last and "outside the Linf ball" in last
    assert not (tmp_path / "o" / "results.csv").exists()
    suite_file("s.toml", name="guarded", attacks=[FGSM], transfer=NO_TRANSFER, evaluation={"n": 40})
    r = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resuming: 1 of 1 cells cached" in r.stderr


def test_forward_and_backward_passes_are_counted_per_sample(cnn, digits):
    """FGSM: one forward and one backward pass per sample (plus the evaluation's own, not counted); PGD-10
    without random start nor active set: ten of each and one final check; Square: forward passes only; transfer
    rows: none on the target."""
    from robustbench_gan.attacks import FGSM, PGD, Square

    x, y = digits.x_test[:50], digits.y_test[:50]
    pgd = PGD(steps=10, random_start=False)
    pgd.active_set = False
    res = benchmark(cnn, (x, y), attacks=(FGSM(), pgd, Square(queries=20)), eps=0.1, progress=False, checks=False)
    rows = {r["attack"]: r for r in res.records}
    assert (rows["fgsm"]["forward_passes"], rows["fgsm"]["backward_passes"]) == (50, 50)
    assert rows["pgd"]["backward_passes"] == 10 * 50
    assert 10 * 50 <= rows["pgd"]["forward_passes"] <= 11 * 50
    assert rows["square"]["backward_passes"] == 0 and rows["square"]["forward_passes"] > 0
    assert list(res.table.columns).index("forward_passes") > list(res.table.columns).index("seconds")
