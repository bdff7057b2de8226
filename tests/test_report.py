"""The HTML report: sections, inline images, escaping, missing values, no network references."""
from __future__ import annotations

import base64
import json
import math
import re

import pandas as pd
import pytest

from robustbench_gan.reports import plots, write_run
from robustbench_gan.reports.formats import fmt_acc_ci, fmt_eps
from robustbench_gan.reports.html import render_report
from robustbench_gan.results import COLUMNS, Results

SECTION_IDS = ("summary", "curves", "attacks", "flags", "gallery", "manifest")
IMG_RE = re.compile(r'<img [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]+"')
EPS = (2 / 255, 4 / 255, 8 / 255)


def record(model: str, attack: str, eps: float, **over) -> dict:
    robust = max(0.0, 0.9 - 8 * eps - (0.1 if attack == "pgd" else 0.0))
    rec = {
        "suite": "toy", "dataset": "synthetic", "model": model, "defense": "none", "attack": attack,
        "threat": "white-box", "source": None, "targeted": False, "target_mode": None, "norm": "inf",
        "eps": eps, "n": 200, "clean_accuracy": 0.95, "robust_accuracy": robust,
        "robust_accuracy_low": max(0.0, robust - 0.05), "robust_accuracy_high": min(1.0, robust + 0.05),
        "attack_success_rate": 1 - robust / 0.95, "mean_linf": eps, "mean_l2": eps * 10, "queries": 0,
        "seconds": 0.5,
    }
    rec.update(over)
    return rec


def image(c: int, h: int, w: int, offset: float = 0.0) -> list:
    return [[[round((i * w + j) / (h * w) * 0.8 + 0.1 + offset + 0.01 * k, 4) for j in range(w)] for i in range(h)]
            for k in range(c)]


def gallery_entry(model: str, c: int, h: int, w: int, n_items: int = 2) -> dict:
    items = [{"label": i, "clean_pred": i, "clean_conf": 0.99, "adv_pred": (i + 1) % 3, "adv_conf": 0.87,
              "x": image(c, h, w), "x_adv": image(c, h, w, offset=0.03 * (-1) ** i)} for i in range(n_items)]
    return {"model": model, "defense": "none", "attack": "pgd", "eps": 8 / 255,
            "class_names": ["zero", "one", "two"], "items": items}


def make_results(suite: str = "toy", model_a: str = "small-cnn", gallery: bool = True) -> Results:
    records = [record(m, a, e) for m in (model_a, "mlp") for a in ("fgsm", "pgd") for e in EPS]
    return Results(
        records=records,
        manifest={"suite": suite, "seed": 7, "device": "cpu", "versions": {"torch": "2.x", "numpy": "1.x"},
                  "platform": "test", "config": {"name": suite, "eps": list(EPS), "models": [model_a, "mlp"]},
                  "started": "2024-01-01T00:00:00+00:00", "finished": "2024-01-01T00:03:05+00:00"},
        flags=[{"check": "gradient_masking", "model": "mlp", "defense": "none", "attack": "fgsm",
                "message": "FGSM beats PGD at eps 8/255"}],
        gallery=[gallery_entry(model_a, 1, 8, 8), gallery_entry("mlp", 3, 4, 4, n_items=1)] if gallery else [],
    )


def section(html: str, sid: str) -> str:
    """The text of ``<section id=sid> ... </section>``."""
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, f"section {sid!r} missing"
    return m.group(1)


@pytest.fixture(scope="module")
def html() -> str:
    return render_report(make_results())


def test_sections_present(html: str) -> None:
    for sid in SECTION_IDS:
        assert f'id="{sid}"' in html
    assert 'id="gan"' not in html  # no GAN records -> no GAN section
    assert html.lstrip().startswith("<!DOCTYPE html>")


def test_the_nav_links_every_section_shown_and_only_those(html: str) -> None:
    """The nav is generated from the sections (reports/sections/): one link per section on the page, in page
    order, none to a section left out."""
    nav = re.search(r"<nav>(.*?)</nav>", html, re.S).group(1)
    links = re.findall(r'href="#([^"]+)"', nav)
    shown = [sid for sid in re.findall(r'<section id="([^"]+)"', html)]
    assert links == shown and "gan" not in links and {"summary", "flags", "manifest"} <= set(links)


def test_images_inline_and_counted(html: str) -> None:
    # One accuracy-vs-eps plot per model (single norm) + one image per gallery entry.
    assert len(IMG_RE.findall(html)) == 2 + 2
    assert len(IMG_RE.findall(section(html, "curves"))) == 2
    assert len(IMG_RE.findall(section(html, "gallery"))) == 2
    assert html.count("<img") == 4
    uri = IMG_RE.search(html).group(0).split("base64,")[1].rstrip('"')
    assert base64.b64decode(uri).startswith(b"\x89PNG\r\n\x1a\n")


def test_no_external_references(html: str) -> None:
    for needle in ("http://", "https://", 'src="//', "href=\"//", "@import", "url("):
        assert needle not in html, needle
    for tag in re.findall(r"<(?:script|link|iframe)\b[^>]*>", html):
        assert "src=" not in tag and "href=" not in tag, tag


def test_summary_golden_values(html: str) -> None:
    summary = section(html, "summary")
    # small-cnn, fgsm, eps=8/255: robust = 0.9 - 8*8/255 = 0.6490 -> "64.9% [59.9, 69.9]"
    assert "64.9% [59.9, 69.9]" in summary
    assert "95.0%" in summary  # clean accuracy
    assert summary.count("ε = 8/255") == 2  # one column per attack
    assert "FGSM beats PGD" in section(html, "flags")

    res = Results(records=[record("m", "pgd", 0.3, robust_accuracy=0.5, robust_accuracy_low=0.4,
                                  robust_accuracy_high=0.6)])
    summary = section(render_report(res), "summary")
    assert "50.0% [40.0, 60.0]" in summary
    assert "ε = 0.3" in summary


def test_manifest_section(html: str) -> None:
    man = section(html, "manifest")
    assert "<pre>" in man and "&#34;seed&#34;" not in man  # config, not the whole manifest, is the JSON
    assert "&#34;models&#34;" in man  # quotes in the JSON are escaped by autoescape
    assert "0:03:05" in man and "cpu" in man and "torch" in man


def test_escaping_of_user_strings() -> None:
    evil = "<script>alert(1)</script>"
    res = make_results(suite=evil, model_a="A&B <i>")
    res.flags[0]["message"] = evil
    res.gallery[0]["class_names"] = ["<b>zero</b>", "one", "two"]
    out = render_report(res)
    assert evil not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "A&amp;B &lt;i&gt;" in out
    assert "A&B" not in out and "<i>" not in out
    assert out.count("<script") == 1  # only the inline sorting script


def test_empty_results_render() -> None:
    out = render_report(Results())
    for sid in SECTION_IDS:
        assert f'id="{sid}"' in out
    assert "No results were recorded" in section(out, "summary")
    assert "No sanity check raised a flag." in section(out, "flags")
    assert "<img" not in out


def test_missing_values_render_as_dash() -> None:
    rec = record("m", "pgd", 0.1)
    rec.update(robust_accuracy=None, robust_accuracy_low=float("nan"), robust_accuracy_high=None,
               mean_l2=float("nan"), queries=None, seconds=None, source=None, clean_accuracy=float("nan"))
    nan_eps = record("m", "fgsm", float("nan"), robust_accuracy=0.25, robust_accuracy_low=None,
                     robust_accuracy_high=None)
    no_ci = record("m", "fgsm", 0.1, robust_accuracy=0.3, robust_accuracy_low=None, robust_accuracy_high=None)
    out = render_report(Results(records=[rec, nan_eps, no_ci], manifest={"suite": "nan"}))
    attacks = section(out, "attacks")
    cells = re.findall(r"<td[^>]*>(.*?)</td>", attacks)
    assert cells.count("–") >= 6
    assert "nan" not in attacks.lower().replace("data-v", "") and "None" not in out
    summary = section(out, "summary")
    assert "25.0%" in summary and "30.0%" in summary and re.search(r"<td [^>]*>–</td>", summary)
    # Only the fgsm point at eps=0.1 is plottable (NaN eps / None robust are dropped): one plot, no band.
    assert len(IMG_RE.findall(out)) == 1


def test_gan_section_and_other_threats() -> None:
    res = make_results(gallery=False)
    res.records.append(record("mlp", "pgd", 8 / 255, threat="transfer", source="small-cnn", robust_accuracy=0.8))
    res.records.append(record("mlp", "square", 8 / 255, threat="black-box", queries=1234.0, targeted=True,
                              target_mode="random"))
    res.gan = [{"model": "wgan", "fid": 12.3456789, "is": 2.5, "note": None}]
    out = render_report(res)
    assert 'id="gan"' in out and "12.35" in section(out, "gan")
    summary = section(out, "summary")
    assert "transfer from small-cnn" in summary and "targeted (random)" in summary
    assert "1,234" in section(out, "attacks") and "yes (random)" in section(out, "attacks")
    assert len(IMG_RE.findall(out)) == 4  # 2 curves (white-box rows only), 1 transfer matrix, 1 black-box plot
    assert IMG_RE.search(section(out, "blackbox"))
    assert 'id="transfer"' in out and 'id="blackbox"' in out
    assert "No examples were stored" in section(out, "gallery")


def test_plots_helpers() -> None:
    df = Results(records=[record("m", "pgd", e) for e in EPS] + [record("m", "pgd", 0.5, norm="2")]).table
    curves = plots.accuracy_vs_eps(df)
    assert [t for t, _ in curves] == ["m — L∞", "m — L2"]
    assert all(u.startswith("data:image/png;base64,") for _, u in curves)
    transfer_only = df.assign(threat="transfer")
    assert plots.accuracy_vs_eps(transfer_only) == []
    assert plots.accuracy_vs_eps(pd.DataFrame(columns=list(COLUMNS))) == []
    uri = plots.gallery_image(gallery_entry("m", 3, 4, 4))
    assert base64.b64decode(uri.split(",", 1)[1])[:4] == b"\x89PNG"
    with pytest.raises(ValueError):
        plots.gallery_image({"items": []})
    assert plots.blackbox_queries(df) is None  # white-box rows only
    blackbox = df.assign(threat="black-box", queries=500.0)
    assert plots.blackbox_queries(blackbox).startswith("data:image/png;base64,")
    assert plots.blackbox_queries(blackbox.assign(queries=0)) is None  # no queries counted: nothing to place


def test_formatting() -> None:
    assert fmt_acc_ci(0.913, 0.88, 0.937) == "91.3% [88.0, 93.7]"
    assert fmt_acc_ci(None, 0.1, 0.2) == "–" and fmt_acc_ci(0.5, math.nan, 0.6) == "50.0%"
    assert fmt_eps(8 / 255) == "8/255" and fmt_eps(0.3) == "0.3" and fmt_eps(0.2) == "0.2" and fmt_eps(None) == "–"


def test_write_produces_files(tmp_path) -> None:
    res = make_results()
    res.records[0]["mean_l2"] = float("nan")
    out = write_run(res, tmp_path / "run")
    for name in ("index.html", "results.csv", "results.json"):
        assert (out / name).is_file()
    page = (out / "index.html").read_text(encoding="utf-8")
    assert 'id="summary"' in page and len(IMG_RE.findall(page)) == 4
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert len(doc["records"]) == 12 and doc["records"][0]["mean_l2"] is None
    assert len(pd.read_csv(out / "results.csv")) == 12
    # Reloaded results render the same report.
    assert render_report(Results.load(out)) == page


def test_naive_and_adaptive_side_by_side() -> None:
    res = make_results(gallery=False)
    res.records.append(record("mlp", "pgd-bpda", 0.2, adaptive="bpda", attack_role="iterative"))
    assert 'id="adaptive"' not in render_report(res)  # nothing purified (bpda on a plain model is pgd): no section
    dgan = {"defense": "dgan", "attack_role": "iterative", "purified": True}
    res.records += [
        record("mlp", "pgd", 0.2, robust_accuracy=0.85, attack_kind="pgd", **dgan),
        record("mlp", "fgsm", 0.2, robust_accuracy=0.9, attack_kind="fgsm", **{**dgan, "attack_role": "single-step"}),
        record("mlp", "pgd-bpda", 0.2, robust_accuracy=0.22, attack_kind="pgd", adaptive="bpda", **dgan),
        record("mlp", "latent", 0.2, robust_accuracy=0.28, attack_kind="latent", **dgan),
    ]
    out = section(render_report(res), "adaptive")
    assert out.count("<tr>") == 2  # header + one (model, defense, norm, eps)
    assert "dgan" in out and "85.0%" in out and "22.0%" in out and "63.0%" in out
    assert "pgd-bpda (bpda)" in out and ">pgd<" in out


# --------------------------------------------------------------------------------------------- ε on the plots
CLOSE_EPS = tuple(k / 255 for k in (1, 2, 3, 4, 5, 6, 7, 8, 16))


def captured_figures(monkeypatch, draw) -> list:
    """The figures ``draw()`` makes, drawn with Agg as they would be saved (``fig_to_data_uri`` captures them)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figs = []

    def capture(fig):
        FigureCanvasAgg(fig)
        fig.set_dpi(100)  # as fig_to_data_uri saves it
        fig.canvas.draw()
        figs.append(fig)
        return "data:image/png;base64,"

    monkeypatch.setattr(plots, "fig_to_data_uri", capture)
    draw()
    return figs


def assert_apart(labels, renderer) -> None:
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
    for a, b in zip(boxes, boxes[1:]):
        assert a.x1 <= b.x0, f"tick labels overlap: {a} and {b}"


def test_eps_ticks_read_k_over_255_and_never_overlap(monkeypatch) -> None:
    df = Results(records=[record("m", a, e) for a in ("fgsm", "pgd") for e in CLOSE_EPS]).table
    (fig,) = captured_figures(monkeypatch, lambda: plots.accuracy_vs_eps(df))
    renderer = fig.canvas.get_renderer()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 2
    for ax in panels:
        labels = [t for t in ax.get_xticklabels() if t.get_text()]
        texts = [t.get_text() for t in labels]
        assert texts[0] == "1/255" and texts[-1] == "16/255", texts
        assert all(re.fullmatch(r"\d+/255", t) for t in texts), texts
        assert len(texts) >= 3  # thinned, not reduced to its ends
        assert_apart(labels, renderer)
        # Every ε keeps its tick mark (the thinned ones unlabelled).
        marks = sorted({*ax.xaxis.get_majorticklocs(), *ax.xaxis.get_minorticklocs()})
        assert marks == pytest.approx(sorted(CLOSE_EPS))


def test_eps_ticks_helper_on_an_axes() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.0, 2.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(CLOSE_EPS, [0.5] * len(CLOSE_EPS))
    plots.set_eps_ticks(ax, CLOSE_EPS)
    fig.canvas.draw()
    labels = [t for t in ax.get_xticklabels() if t.get_text()]
    assert labels[0].get_text() == "1/255" and labels[-1].get_text() == "16/255"
    assert_apart(labels, fig.canvas.get_renderer())
    # Far apart: every value is labelled; plain decimals stay as they are.
    ax.clear()
    ax.plot([0.1, 0.3, 0.5], [0.5] * 3)
    plots.set_eps_ticks(ax, [0.1, 0.3, 0.5])
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "0.3", "0.5"]
    # A wide figure labels all nine.
    fig.set_size_inches(12, 2)
    ax.clear()
    ax.plot(CLOSE_EPS, [0.5] * len(CLOSE_EPS))
    plots.set_eps_ticks(ax, CLOSE_EPS)
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == [fmt_eps(e) for e in CLOSE_EPS]


def test_eps_in_panel_titles(monkeypatch) -> None:
    base = [record(m, "pgd", e) for m in ("a", "b") for e in (2 / 255, 8 / 255)]
    transfer = [record("b", "pgd", e, threat="transfer", source="a") for e in (2 / 255, 8 / 255)]
    blackbox = [record("a", "square", e, threat="black-box", queries=100.0) for e in (2 / 255, 8 / 255)]
    df = Results(records=base + transfer + blackbox).table
    figs = captured_figures(monkeypatch, lambda: (plots.transfer_matrices(df), plots.blackbox_queries(df)))
    assert len(figs) == 2
    for fig in figs:
        titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
        assert titles == ["ε = 2/255", "ε = 8/255"], titles


# --------------------------------------------------------------------------------------------- AutoAttack in words
AA_STANDARD = ("aa is the standard AutoAttack (Croce & Hein 2020: APGD-CE, APGD-T, FAB-T, Square; 100 steps, "
               "9 targets, 5,000 queries); its robust accuracy is the number comparable with RobustBench.")
AA_NOT = "is not the standard AutoAttack"


def autoattack_results(standard: list[str] | None = ("aa",)) -> Results:
    """One standard cascade (with a component row), one custom reduced cascade and one adaptive cascade."""
    cascade = {"attack_kind": "autoattack", "attack_role": "ensemble"}
    records = [record("m", "pgd", 8 / 255, attack_kind="pgd", attack_role="iterative"),
               record("m", "aa", 8 / 255, **cascade),
               record("m", "aa/apgd-ce", 8 / 255, attack_kind="autoattack", attack_role="iterative"),
               record("m", "aa-fast", 8 / 255, **cascade),
               record("m", "aa-bpda", 8 / 255, adaptive="bpda", **cascade)]
    config = {"attacks": [{"name": "aa", "kind": "autoattack", "eps": [8 / 255]},
                          {"name": "aa-fast", "kind": "autoattack", "version": "custom",
                           "attacks": ["apgd-ce", "square"], "steps": 10, "queries": 500, "eps": [8 / 255]},
                          {"name": "aa-bpda", "kind": "autoattack", "adaptive": "bpda", "eps": [8 / 255]}]}
    manifest = {"suite": "aa", "config": config}
    if standard is not None:
        manifest["standard_autoattack"] = list(standard)
    return Results(records=records, manifest=manifest)


def test_autoattack_rows_say_whether_they_are_the_standard_autoattack() -> None:
    import html as htmllib

    out = render_report(autoattack_results())
    summary = htmllib.unescape(section(out, "summary"))
    text = " ".join(re.sub(r"<[^>]+>", " ", summary).split())
    assert AA_STANDARD in text
    assert ("aa-fast is not the standard AutoAttack (custom version: apgd-ce, square; 10 steps instead of 100; "
            "500 queries instead of 5,000); its robust accuracy is not the number to compare with RobustBench."
            ) in text
    assert "aa-bpda is not the standard AutoAttack (adaptive: bpda)" in text
    assert text.count(AA_NOT) == 2 and "aa/apgd-ce is" not in text  # the cascades, not their components
    # Next to the rows: a badge on the summary's column and on each cascade row of the full table.
    heads = re.findall(r'<th class="group"[^>]*>(.*?)</th>', section(out, "summary"), re.S)
    assert sum("standard AutoAttack" in h for h in heads) == 3
    rows = {re.sub(r"<[^>]+>", "", r.split("</td>")[2]).strip(): r
            for r in re.findall(r"<tr>(.*?)</tr>", section(out, "attacks"), re.S) if "<td" in r}
    assert "standard AutoAttack" in rows["aa standard AutoAttack"]
    assert "aa-fast not the standard AutoAttack" in rows and "aa-bpda not the standard AutoAttack" in rows
    assert "aa/apgd-ce" in rows and "pgd" in rows  # components and other attacks carry no badge


def test_no_autoattack_words_without_a_cascade() -> None:
    for res in (make_results(gallery=False), Results(), autoattack_results(standard=None)):
        out = render_report(res)
        assert "standard AutoAttack" not in out and "RobustBench" not in out


def test_autoattack_note_for_a_transfer_and_without_config() -> None:
    from robustbench_gan.reports.autoattack_notes import autoattack_note

    cascade = {"attack": "aa", "attack_kind": "autoattack", "attack_role": "ensemble", "source": ""}
    moved = autoattack_note({**cascade, "source": "cnn2", "threat": "transfer"}, {"standard_autoattack": ["aa"]})
    assert not moved["standard"] and moved["text"].startswith("is not the standard AutoAttack (transferred from cnn2)")
    plain = autoattack_note(cascade, {"standard_autoattack": [], "config": {"attacks": ["autoattack"]}})
    assert "(a custom or rand version, a reduced budget or an adaptive gradient view)" in plain["text"]
    assert autoattack_note({**cascade, "attack": "aa/square", "attack_role": "black-box"}, {"standard_autoattack": []}) is None


def test_every_section_module_is_on_the_page_with_its_own_partial() -> None:
    """One module per section of the page (reports/sections/<module>.py defines SECTION), each in PAGE once, with
    its template partial under reports/templates/sections/ and a distinct id."""
    import importlib
    import pkgutil
    from pathlib import Path

    from robustbench_gan.reports import sections
    from robustbench_gan.reports.html import TEMPLATES

    page = [s for s in sections.PAGE if isinstance(s, sections.Section)]
    modules = [m.name for m in pkgutil.iter_modules(sections.__path__) if m.name != "base"]
    defined = [importlib.import_module(f"{sections.__name__}.{m}").SECTION for m in modules]
    assert sorted(s.id for s in defined) == sorted(s.id for s in page)
    assert len({s.id for s in page}) == len(page) and sections.REGISTERED in sections.PAGE
    for s in page:
        assert s.template and not s.source and (Path(TEMPLATES) / s.template).is_file(), s.id


def test_every_template_ships_in_the_package_data() -> None:
    """A wheel holds only the files pyproject's package-data names: every template must match one of its globs."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["robustbench_gan"]
    package = root / "robustbench_gan"
    for path in (package / "reports" / "templates").rglob("*.html"):
        rel = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(rel, g) and rel.count("/") == g.count("/") for g in globs), rel
