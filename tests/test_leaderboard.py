"""Per-sample data, the worst-case leaderboard, run comparison and the RobustBench-style export."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from robustbench_gan.cli import main
from robustbench_gan.evaluation import Outcome
from robustbench_gan.export import robustbench_entries
from robustbench_gan.results import Results
from robustbench_gan.samples import SAMPLE_COLUMNS, sample_block, samples_table, worst_case
from suite_files import LOGISTIC, suite_toml


def block(attack, adv, *, clean=(0, 1, 2, 3, 4), ids=None, eps=0.1, source="", kind="pgd", norm="inf",
          model="m", defense="none", threat="white-box"):
    outcome = Outcome(eps, {}, torch.tensor(clean), torch.tensor(adv), torch.full((len(adv),), eps),
                      ids=None if ids is None else torch.tensor(ids))
    meta = {"model": model, "defense": defense, "attack": attack, "threat": threat, "source": source,
            "norm": norm, "attack_kind": kind, "attack_role": "probe" if kind == "noise" else "iterative"}
    return sample_block(meta, outcome)


LABELS = [0, 1, 2, 3, 4]


def test_worst_case_hand_computed():
    """5 samples; sample 4 is misclassified clean. fgsm fools 0, pgd fools 1, a transfer fools 2, the substitute
    (which saw samples 0-2 only, 3-4 were its seeds) fools 0, the noise probe "fools" 3 but is not an attack."""
    blocks = [
        block("fgsm", [9, 1, 2, 3, 9], clean=[0, 1, 2, 3, 9], kind="fgsm"),
        block("pgd", [0, 9, 2, 3, 9], clean=[0, 1, 2, 3, 9]),
        block("pgd", [0, 1, 9, 3, 9], clean=[0, 1, 2, 3, 9], threat="transfer", source="other"),
        block("substitute", [9, 1, 2], clean=[0, 1, 2], ids=[0, 1, 2], threat="black-box", kind="substitute"),
        block("noise", [0, 1, 2, 9, 9], clean=[0, 1, 2, 3, 9], kind="noise"),
        block("pgd", [0, 9, 9, 9, 9], clean=[0, 1, 2, 3, 9], eps=0.2),
    ]
    table = samples_table(blocks, LABELS)
    assert list(table.columns[: len(SAMPLE_COLUMNS)]) == list(SAMPLE_COLUMNS)
    assert len(table) == 5 * 5 + 3
    sub = table[table["attack"] == "substitute"]
    assert sub["sample_id"].tolist() == [0, 1, 2] and sub["true_label"].tolist() == [0, 1, 2]
    rows = {r["eps"]: r for r in worst_case(table, n_eval=5)}
    r = rows[0.1]
    assert r["clean_accuracy"] == pytest.approx(4 / 5)
    assert r["worst_case_accuracy"] == pytest.approx(1 / 5)  # only sample 3 survives fgsm, pgd and the transfer
    assert r["attacks"] == 4 and r["norm"] == "inf"  # noise left out
    assert r["strongest_attack"] == "fgsm" and r["strongest_attack_accuracy"] == pytest.approx(3 / 5)
    assert r["worst_case_low"] < 0.2 < r["worst_case_high"]
    assert rows[0.2]["worst_case_accuracy"] == pytest.approx(1 / 5)  # sample 0 only
    assert rows[0.2]["attacks"] == 1


def test_worst_case_separates_norms_and_classifiers():
    blocks = [block("pgd", [9, 1, 2, 3, 4]), block("pgd-l2", [0, 9, 2, 3, 4], norm="2"),
              block("pgd", [0, 1, 2, 3, 4], defense="at")]
    rows = worst_case(samples_table(blocks, LABELS), n_eval=5)
    got = {(r["defense"], r["norm"]): r["worst_case_accuracy"] for r in rows}
    assert got == {("none", "inf"): 0.8, ("none", "2"): 0.8, ("at", "inf"): 1.0}


def test_outcome_without_per_sample_data_is_skipped():
    assert sample_block({}, Outcome(0.1, {})) is None
    assert worst_case(samples_table([], LABELS), n_eval=5) == []


def test_default_run_worst_case_and_samples(default_run):
    """Worst case <= every single attack's accuracy in every cell; samples.csv.gz matches the records."""
    results = Results.load(default_run)
    board = pd.DataFrame(results.leaderboard)
    table = results.table
    attacks = table[table["attack_kind"] != "noise"]
    merged = attacks.merge(board, on=["model", "defense", "norm", "eps"], validate="many_to_one")
    assert len(merged) == len(attacks)
    assert (merged["worst_case_accuracy"] <= merged["robust_accuracy"] + 1e-12).all()
    assert (board["worst_case_accuracy"] <= board["strongest_attack_accuracy"] + 1e-12).all()
    assert len(board) == 8 * 4  # 8 classifiers x 4 eps
    samples = results.samples
    assert samples is not None and list(samples.columns[: len(SAMPLE_COLUMNS)]) == list(SAMPLE_COLUMNS)
    per_sample = table[table["attack_kind"] != "noise"]
    assert len(samples) == int(per_sample["n"].sum())
    # the per-sample rows reproduce each record's robust accuracy
    counts = samples.groupby(["model", "defense", "attack", "source", "eps"])["robust"].agg(["sum", "count"])
    for rec in per_sample.head(40).to_dict("records"):
        s, c = counts.loc[(rec["model"], rec["defense"], rec["attack"], rec["source"] or "", rec["eps"])]
        assert c == rec["n"] and s / c == pytest.approx(rec["robust_accuracy"])
    clean = samples.groupby(["model", "defense", "sample_id"])["clean_pred"].nunique()
    assert (clean == 1).all()  # one clean prediction per sample and classifier, whatever the attack
    pgd = samples[(samples["attack"] == "pgd20") & (samples["threat"] == "white-box")]
    assert (pgd["perturbation"] <= pgd["eps"] + 1e-5).all()


def test_export_cards(default_run, tmp_path):
    assert main(["-q", "export", str(default_run), "--out", str(tmp_path), "--eps", "0.2"]) == 0
    card = json.loads((tmp_path / "digits" / "Linf" / "cnn_pgd-at.json").read_text())
    assert set(card) >= {"link", "name", "authors", "additional_data", "number_forward_passes", "dataset", "venue",
                         "architecture", "eps", "clean_acc", "reported", "autoattack_acc"}
    board = {(b["model"], b["defense"], b["eps"]): b for b in Results.load(default_run).leaderboard}
    expected = board[("cnn", "pgd-at", 0.2)]
    assert card["eps"] == "0.2" and card["architecture"] == "cnn" and card["threat_model"] == "Linf"
    assert card["clean_acc"] == f"{100 * expected['clean_accuracy']:.2f}"
    assert card["autoattack_acc"] == f"{100 * expected['worst_case_accuracy']:.2f}"
    assert "not AutoAttack" in card["footnote"]
    flagged = json.loads((tmp_path / "digits" / "Linf" / "cnn_distillation.json").read_text())
    assert "zero-gradients" in flagged["sanity_flags"]
    assert len(list(tmp_path.rglob("*.json"))) == 8
    default_eps = robustbench_entries(Results.load(default_run))
    assert {c["eps"] for c in default_eps} == {"0.3"}


def test_export_bad_eps_exits_2(default_run, tmp_path, capsys):
    assert main(["-q", "export", str(default_run), "--out", str(tmp_path), "--eps", "0.25"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Linf results at eps 0.25" in err and "0.05, 0.1, 0.2, 0.3" in err


def run_tiny(tmp_path, name, seed=0, epochs=3, extra=""):
    path = tmp_path / f"{abs(hash(name))}.toml"
    path.write_text(suite_toml(name, seed=seed, models=[{**LOGISTIC, "epochs": epochs}],
                               attacks=[{"name": "fgsm", "eps": [0.1, 0.2]},
                                        {"name": "pgd", "kind": "pgd", "steps": 5, "eps": [0.1, 0.2]}],
                               evaluation={"n": 120}) + extra)
    out = tmp_path / f"out-{abs(hash(name))}"
    assert main(["-q", "run", str(path), "--out", str(out), "--device", "cpu", "--no-cache"]) == 0
    return out


def test_compare_two_runs(tmp_path, capsys):
    a = run_tiny(tmp_path, "baseline", epochs=1)
    b = run_tiny(tmp_path, "better", epochs=30, extra='[[defenses]]\nname = "fgsm-at"\nkind = "adversarial-training"\n'
                                                       'method = "fgsm"\neps = 0.2\n')
    out = tmp_path / "cmp"
    assert main(["-q", "compare", str(a), str(b), "--out", str(out)]) == 0
    rows = pd.read_csv(out / "compare.csv")
    both = rows[rows["in"] == "both"]
    assert len(both) == 4 and set(rows["in"]) == {"both", "only B"}
    only_b = rows[rows["in"] == "only B"]
    assert ((only_b["defense"] == "fgsm-at") | (only_b["threat"] == "transfer")).all()  # B's new defense
    for r in both.to_dict("records"):
        assert r["delta"] == pytest.approx(r["robust_accuracy_b"] - r["robust_accuracy_a"])
    assert both["significant"].astype(str).str.lower().eq("true").any()  # 1 vs 30 epochs: clearly different
    doc = json.loads((out / "compare.json").read_text())
    assert doc["a"]["manifest"]["suite"] == "baseline" and len(doc["leaderboard"]) == 2 + 2
    html = (out / "index.html").read_text()
    assert "baseline vs better" in html and html.count("data:image/png;base64,") == 1
    assert "https://" not in html and "http://" not in html


def test_compare_missing_run_exits_2(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope"), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no run folder" in capsys.readouterr().err


def test_suite_name_is_escaped_in_report_and_comparison(tmp_path):
    evil = "<script>alert(1)</script>"
    out = run_tiny(tmp_path, evil)
    html = (out / "index.html").read_text()
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert main(["-q", "compare", str(out), str(out), "--out", str(tmp_path / "cmp")]) == 0
    page = (tmp_path / "cmp" / "index.html").read_text()
    assert evil not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_benchmark_api_has_leaderboard_samples_and_flags(cnn, digits, tmp_path):
    from robustbench_gan import benchmark

    x, y = digits.x_test[:120], digits.y_test[:120]
    res = benchmark(cnn, (x, y), attacks=("fgsm", "pgd"), eps=(0.1, 0.2), out=tmp_path, progress=False)
    board = {b["eps"]: b for b in res.leaderboard}
    assert set(board) == {0.1, 0.2}
    for rec in res.records:
        assert board[rec["eps"]]["worst_case_accuracy"] <= rec["robust_accuracy"] + 1e-12
    assert len(res.samples) == 2 * 2 * 120 and (tmp_path / "samples.csv.gz").is_file()
    assert res.flags == []  # a plain CNN raises no sanity flag
    assert 'id="leaderboard"' in (tmp_path / "index.html").read_text()
    masked = benchmark(torch.nn.Sequential(cnn, torch.nn.Softmax(dim=1)), (x, y), attacks=("fgsm",), eps=(0.1,),
                       progress=False)
    assert "outputs-are-probabilities" in {f["check"] for f in masked.flags}
