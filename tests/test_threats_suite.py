"""The built-in ``threats`` suite end to end (issue 25, point 5): one command runs every threat model on an
undefended, a PGD-trained and a noise-trained digits CNN into one report, which a real browser renders with the
corruption heatmaps, the robustness curves and the certified curves. About 3 minutes on this 2-core machine."""
from __future__ import annotations

import re

import pytest

from robustbench_gan.cli import main
from robustbench_gan.corruption_tables import corruption_summary
from robustbench_gan.curves import optimality_table
from robustbench_gan.results import Results
from test_report_browser import browse, console_lines


@pytest.fixture(scope="module")
def threats_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("threats")
    assert main(["-q", "run", "threats", "--out", str(out), "--device", "cpu", "--no-cache"]) == 0
    return out


@pytest.mark.slow
def test_the_threats_suite_covers_every_threat_model_on_three_classifiers(threats_run):
    res = Results.load(threats_run)
    table = res.table
    classifiers = {("cnn", d) for d in ("none", "pgd-at", "noise")}
    for threat in ("white-box", "corruption", "certified"):
        assert {(m, d) for m, d in table.loc[table["threat"] == threat, ["model", "defense"]].values} == classifiers
    assert table.loc[table["threat"] == "corruption", "attack"].nunique() == 15
    summary = corruption_summary(res.samples).set_index("defense")
    assert summary.loc["none", "mce"] == pytest.approx(1.0) and (summary["baseline"] == "cnn/none").all()
    scores = optimality_table(res.samples)
    l2 = scores[scores["norm"] == "2"]
    assert set(l2["attack"]) == {"fmn-l2", "ddn", "fab-l2", "best of all"} and (l2["optimality"] > 0.8).all()
    pgd = table[(table["attack"] == "pgd-l2") & (table["defense"] == "pgd-at")].set_index("eps")["robust_accuracy"]
    fmn = table[(table["attack"] == "fmn-l2") & (table["defense"] == "pgd-at")].set_index("eps")["robust_accuracy"]
    assert (fmn <= pgd + 0.05).all()  # the curve is no weaker than PGD at its eps
    assert not [f for f in res.flags if f["check"] in ("certified-above-empirical", "corruption-above-clean",
                                                       "minimum-norm-curve-above-fixed-eps")]
    assert res.leaderboard and {b["norm"] for b in res.leaderboard} == {"inf", "2"}  # the adversarial worst case


@pytest.mark.slow
def test_the_threats_report_in_chromium(threats_run, tmp_path):
    from test_report_browser import _install_chromium

    chromium = _install_chromium()
    if chromium is None:
        pytest.skip("chromium is missing and cannot be installed here")
    dom, err = browse(chromium, threats_run / "index.html", tmp_path, "--dump-dom")
    assert console_lines(err) == []
    sections = {s: re.search(rf'<section id="{s}">(.*?)</section>', dom, re.S).group(1)
                for s in ("corruptions", "minimum-norm", "certification")}
    assert sections["corruptions"].count("data:image/png;base64,") == 3 + 1  # a heatmap per classifier, the strip
    assert "mCE" in sections["corruptions"] and "cnn/none" in sections["corruptions"]
    assert sections["minimum-norm"].count("data:image/png;base64,") == 3 * 2  # per classifier and norm
    assert "best of all" in sections["minimum-norm"]
    assert sections["certification"].count("data:image/png;base64,") == 3
