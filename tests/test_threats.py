"""The threat models beside the adversarial ones (issue 25): common corruptions and randomized-smoothing
certification in the attack table, their report sections, and the checks that tie them to the other rows.

The corruption recipes themselves are tested in tests/test_corruptions.py, CERTIFY and PREDICT against ART in
tests/test_smoothing.py, the minimum-norm curves in tests/test_minimum_norm.py."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from robustbench_gan import benchmark
from robustbench_gan.attacks import Certify, Corruption, SmoothAdvPGD
from robustbench_gan.certification import certified_accuracy, certify
from robustbench_gan.certification.smoothing import SmoothingConfig
from robustbench_gan.checks.row_checks import check_certified_above_empirical
from robustbench_gan.corruption_tables import corruption_accuracy, corruption_flags, corruption_summary
from robustbench_gan.corruptions import CORRUPTIONS, corrupt
from robustbench_gan.errors import ConfigError
from robustbench_gan.suite import validate_suite
from suite_files import CNN, suite_doc

N = 80
SEVERITIES = [1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def corrupted_run(cnn, digits):
    return benchmark(cnn, (digits.x_test[:N], digits.y_test[:N]),
                     attacks=[Corruption(corruption=c) for c in ("fog", "contrast", "gaussian_noise")],
                     eps=SEVERITIES, progress=False)


def test_a_corruption_gives_a_row_per_severity_from_each_samples_own_draws(corrupted_run, cnn, digits):
    table = corrupted_run.table
    assert set(table["attack"]) == {"fog", "contrast", "gaussian_noise"}
    assert (table["threat"] == "corruption").all() and table["eps"].tolist()[:5] == [1.0, 2.0, 3.0, 4.0, 5.0]
    fog = table[table["attack"] == "fog"].sort_values("eps")["robust_accuracy"].to_numpy()
    assert fog[-1] < fog[0]  # heavier fog, fewer right
    assert corrupted_run.leaderboard == []  # no adversary: never in the worst case
    again = benchmark(cnn, (digits.x_test[:N], digits.y_test[:N]), attacks=[Corruption(corruption="fog")],
                      eps=SEVERITIES, progress=False, shard_size=17)
    ours = corrupted_run.samples[corrupted_run.samples["attack"] == "fog"].reset_index(drop=True)
    assert ours.drop(columns=["attack"]).equals(again.samples.drop(columns=["attack"]))  # any cut: the same images


def test_corruption_tables_give_plain_accuracy_and_mce_against_a_named_baseline(corrupted_run, cnn, digits):
    acc = corruption_accuracy(corrupted_run.samples)
    assert len(acc) == 3 * 5 and (acc["n"] == N).all()
    x, y = digits.x_test[:N], digits.y_test[:N]
    for r in acc[acc["corruption"] == "contrast"].to_dict("records"):  # contrast draws nothing: recompute it
        pred = cnn.predict(corrupt(x, "contrast", r["severity"])).argmax(1)
        assert r["accuracy"] == pytest.approx(float((pred == y).float().mean()))
    summary = corruption_summary(corrupted_run.samples)
    (row,) = summary.to_dict("records")
    assert row["baseline"] == f"{row['model']}/none" and row["mce"] == pytest.approx(1.0)  # itself as baseline
    assert row["mean_corruption_accuracy"] == pytest.approx(float(acc["accuracy"].mean()))
    worse = corrupted_run.samples.copy()  # a classifier that errs twice as often on corrupted images
    worse["defense"] = "worse"
    flip = (worse["attack_role"] == "corruption") & (worse["adv_pred"] == worse["true_label"])
    flip &= worse.groupby(["attack", "eps"]).cumcount() % 3 == 0
    worse.loc[flip, "adv_pred"] = (worse.loc[flip, "true_label"] + 1) % 10
    both = corruption_summary(pd.concat([corrupted_run.samples, worse]))
    assert both.set_index("defense").loc["worse", "mce"] > 1.0


def test_a_corruption_accuracy_above_clean_is_flagged(corrupted_run):
    assert corruption_flags(corrupted_run.samples) == []
    odd = corrupted_run.samples.copy()  # clean inputs scaled wrongly: most clean labels wrong, corrupted right
    odd["clean_pred"] = np.where(odd["sample_id"] % 2 == 0, (odd["true_label"] + 1) % 10, odd["clean_pred"])
    odd["adv_pred"] = odd["true_label"]
    flags = corruption_flags(odd)
    assert {f["attack"] for f in flags} == {"fog", "contrast", "gaussian_noise"}
    assert all(f["check"] == "corruption-above-clean" for f in flags)


def test_a_stored_corruption_folder_gives_the_rows_of_its_images(tmp_path, cnn, digits):
    """A CIFAR-10-C-style folder written here (fog at 5 severities, uint8, labels once per severity): its rows are
    the accuracy of the classifier on exactly those stored images."""
    x, y = digits.x_test[:N], digits.y_test[:N]
    blocks = [(corrupt(x, "fog", s, seed=4) * 255).round().to(torch.uint8)[:, 0].numpy() for s in SEVERITIES]
    np.save(tmp_path / "fog.npy", np.concatenate(blocks))
    np.save(tmp_path / "labels.npy", np.tile(y.numpy(), 5))
    run = benchmark(cnn, (x, y), attacks=[Corruption(corruption="fog", folder=str(tmp_path))], eps=SEVERITIES,
                    progress=False)
    assert set(run.table["attack"]) == {"stored-fog"}
    clean = cnn.predict(x).argmax(1) == y
    for s, block in zip(SEVERITIES, blocks):
        stored = torch.from_numpy(block).float()[:, None] / 255
        right = cnn.predict(stored).argmax(1) == y
        row = run.table[run.table["eps"] == s].iloc[0]
        assert row["robust_accuracy"] == pytest.approx(float((clean & right).float().mean()))
        acc = corruption_accuracy(run.samples)
        assert acc[acc["severity"] == s]["accuracy"].iloc[0] == pytest.approx(float(right.float().mean()))
    np.save(tmp_path / "labels.npy", np.tile((y.numpy() + 1) % 10, 5))  # another split's labels
    from robustbench_gan.attacks import corruption as module

    module._stored.cache_clear()
    with pytest.raises(ConfigError, match="stored labels differ from the evaluated samples"):
        benchmark(cnn, (x, y), attacks=[Corruption(corruption="fog", folder=str(tmp_path))], eps=[1],
                  progress=False)


def test_a_suite_names_all_fifteen_corruptions_at_once_and_bad_ones_get_a_fix():
    suite = validate_suite(suite_doc(models=[CNN], attacks=[{"name": "corruption", "corruption": "all",
                                                             "eps": SEVERITIES}]))
    assert [a.name for a in suite.attacks] == list(CORRUPTIONS) and len(CORRUPTIONS) == 15
    some = validate_suite(suite_doc(models=[CNN], attacks=[{"name": "weather", "kind": "corruption",
                                                            "corruption": ["fog", "snow"], "eps": [3]}]))
    assert [a.name for a in some.attacks] == ["weather-fog", "weather-snow"]
    with pytest.raises(ConfigError, match="eps are its severities, integers from 1 to 5"):
        validate_suite(suite_doc(models=[CNN], attacks=[{"name": "corruption", "corruption": "fog", "eps": [0.1]}]))
    with pytest.raises(ConfigError, match="did you mean 'fog'"):
        validate_suite(suite_doc(models=[CNN], attacks=[{"name": "corruption", "corruption": "fgo", "eps": [1]}]))


@pytest.fixture(scope="module")
def smoothed_run(cnn, digits):
    return benchmark(cnn, (digits.x_test[:N], digits.y_test[:N]),
                     attacks=[Certify(sigma=0.25, n=300, n0=32), SmoothAdvPGD(sigma=0.25, n=300, steps=10)],
                     eps=[0.0, 0.2, 0.4], progress=False)


def test_certify_rows_are_the_certified_accuracy_of_cohen_et_al(smoothed_run, cnn, digits):
    x, y = digits.x_test[:N], digits.y_test[:N]
    rows = smoothed_run.table[smoothed_run.table["attack"] == "certify"].sort_values("eps")
    attack = Certify(sigma=0.25, n=300, n0=32)
    goal = attack.make_goal(cnn, x, y)
    cert = certify(cnn, x, SmoothingConfig(sigma=0.25, n0=32, n=300), draws=goal.draws(attack.seed, len(x)))
    assert rows["robust_accuracy"].tolist() == pytest.approx(certified_accuracy(cert, y, [0.0, 0.2, 0.4]), abs=0)
    assert rows["clean_accuracy"].iloc[0] == pytest.approx(certified_accuracy(cert, y, [0.0])[0])
    assert (rows["threat"] == "certified").all() and smoothed_run.leaderboard == []
    attacked = smoothed_run.table[smoothed_run.table["attack"] == "smooth-pgd"].sort_values("eps")
    assert attacked["robust_accuracy"].iloc[-1] < attacked["robust_accuracy"].iloc[0]
    assert check_certified_above_empirical(smoothed_run.table.to_dict("records")) == []
    assert not [f for f in smoothed_run.flags if f["check"] == "certified-above-empirical"]


def test_a_certificate_with_its_radius_doubled_is_flagged(monkeypatch, cnn, digits):
    honest = Certify.certificate

    def doubled(self, clf, x, goal):
        cert = honest(self, clf, x, goal)
        cert.radius = cert.radius * 2
        return cert

    monkeypatch.setattr(Certify, "certificate", doubled)
    run = benchmark(cnn, (digits.x_test[:200], digits.y_test[:200]),
                    attacks=[Certify(sigma=0.25, n=1000, n0=32), SmoothAdvPGD(sigma=0.25, n=300, steps=10)],
                    eps=[0.0, 1.0], progress=False)
    flags = [f for f in run.flags if f["check"] == "certified-above-empirical"]
    assert [f["attack"] for f in flags] == ["certify"], run.table[["attack", "eps", "robust_accuracy"]]


def test_the_report_shows_the_corruption_heatmap_strip_and_the_certified_curves(corrupted_run, smoothed_run):
    from robustbench_gan.reports.html import render_report

    page = render_report(corrupted_run)
    section = page[page.index('<section id="corruptions"'):]
    section = section[: section.index("</section>")]
    assert section.count("data:image/png;base64,") == 2 and "mCE" in section  # heatmap and strip
    gallery = page[page.index('<section id="gallery"'):] if '<section id="gallery"' in page else ""
    assert "fog" not in gallery.split("</section>")[0]  # the strips live in their section
    page = render_report(smoothed_run)
    section = page[page.index('<section id="certification"'):]
    assert section[: section.index("</section>")].count("data:image/png;base64,") == 1


def test_the_smoothed_rows_at_radius_zero_are_the_smoothed_clean_accuracy(smoothed_run):
    rows = smoothed_run.table[smoothed_run.table["eps"] == 0.0]
    assert (rows["robust_accuracy"] == rows["clean_accuracy"]).all()  # no attack at 0: the clean vote itself
    assert set(rows["sigma"]) == {0.25} and set(rows["threat"]) == {"certified", "smoothed"}


def test_a_certificate_is_compared_only_with_an_attack_on_the_same_sigma(smoothed_run):
    records = [dict(r) for r in smoothed_run.table.to_dict("records")]
    for r in records:
        if r["attack_role"] == "certified":
            r.update(robust_accuracy=0.99, robust_accuracy_low=0.98, robust_accuracy_high=1.0)  # absurdly high
    assert [f["attack"] for f in check_certified_above_empirical(records)] == ["certify"]
    for r in records:
        if r["attack_role"] == "certified":
            r["sigma"] = 0.12  # another smoothed classifier: nothing to compare it with
    assert check_certified_above_empirical(records) == []


def test_a_stored_folder_is_found_beside_the_suite_file(tmp_path):
    (tmp_path / "c10c").mkdir()
    suite = validate_suite(suite_doc(models=[CNN], attacks=[{"name": "c", "kind": "corruption", "corruption": "fog",
                                                              "folder": "c10c", "eps": [1]}]), base=tmp_path)
    assert suite.attacks[0].params["folder"] == str(tmp_path / "c10c")
