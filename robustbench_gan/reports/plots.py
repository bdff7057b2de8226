"""Figures for the HTML report, returned as self-contained ``data:image/png;base64,...`` URIs.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot, no global state, no GUI
backend) and released after being saved, so this module is safe to use from worker threads and headless runs.
"""
from __future__ import annotations

import base64
import io
import logging
from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.textpath import text_to_path
from matplotlib.ticker import FixedLocator, FuncFormatter, Locator

from .formats import fmt_eps, is_missing

log = logging.getLogger(__name__)

#: Okabe-Ito colour-blind-safe palette (black moved last).
PALETTE: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")
NORM_LABELS = {"inf": "L∞", "2": "L2", "1": "L1", "0": "L0", "latent": "latent L2"}
_DPI = 100


def _text(value: Any) -> str:
    """A label safe for matplotlib: missing -> '–', ``$`` escaped so mathtext never kicks in."""
    text = "–" if is_missing(value) else str(value)
    return text.replace("$", r"\$")


def norm_label(norm: Any) -> str:
    """``'inf'`` -> ``'L∞'``, ``'2'`` -> ``'L2'``, ``'latent'`` -> ``'latent L2'``; anything else is shown as given."""
    if is_missing(norm):
        return "–"
    if str(norm).strip().lower() in NORM_LABELS:
        return NORM_LABELS[str(norm).strip().lower()]
    key = str(norm).strip().lower().removeprefix("l")
    if key in ("np.inf", "infinity"):
        key = "inf"
    if key.endswith(".0"):
        key = key[:-2]
    return NORM_LABELS.get(key, str(norm))


def fig_to_data_uri(fig: Figure) -> str:
    """Render ``fig`` to PNG and return it as a base64 data URI; the figure is cleared afterwards."""
    buf = io.BytesIO()
    try:
        # Software=None keeps the PNG free of version strings, so identical inputs give identical bytes.
        fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    finally:
        fig.clear()
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _eps(value: Any) -> str:
    """ε as the report writes it (``8/255``, ``0.3``)."""
    return fmt_eps(value)


def eps_title(eps: Any) -> str:
    """A panel title: ``ε = 8/255``."""
    return f"ε = {_eps(eps)}"


class EpsLocator(Locator):
    """The ε values as major ticks, thinned when the axes is drawn so that no two labels overlap: the first and the
    last are always kept, and from left to right each value whose label clears the last kept label and the last
    one by ``pad`` points. Positions are measured in the axes as laid out at that draw, label widths from the font
    (no renderer needed); when even the first and the last would overlap, only the first is labelled."""

    def __init__(self, values: Sequence[float], fontsize: float, pad: float | None = None) -> None:
        self.values = sorted({float(v) for v in values})
        self.fontsize = float(fontsize)
        self.pad = 0.6 * self.fontsize if pad is None else float(pad)

    def _width(self, value: float) -> float:
        """The label's width in points."""
        return text_to_path.get_text_width_height_descent(_eps(value), FontProperties(size=self.fontsize),
                                                          ismath=False)[0]

    def __call__(self) -> list[float]:
        values = self.values
        if len(values) <= 1 or self.axis is None:
            return values
        axes = self.axis.axes
        px_per_pt = axes.figure.dpi / 72.0
        x = axes.transData.transform(np.column_stack([values, np.zeros(len(values))]))[:, 0]
        if not np.all(np.isfinite(x)):
            return values
        half = [0.5 * self._width(v) * px_per_pt for v in values]
        pad = self.pad * px_per_pt

        def clear(i: int, j: int) -> bool:  # label i lies left of label j with room between them
            return x[i] + half[i] + pad <= x[j] - half[j]

        last = len(values) - 1
        if not clear(0, last):
            return values[:1]
        keep = [0]
        for i in range(1, last):
            if clear(keep[-1], i) and clear(i, last):
                keep.append(i)
        keep.append(last)
        return [values[i] for i in keep]

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        return self.values


def set_eps_ticks(ax: Any, values: Sequence[float], fontsize: float = 8) -> None:
    """Ticks at the ε values on ``ax``'s x axis, labelled as the report writes ε (``8/255``; decimals as given),
    thinned at draw time so that labels never overlap (see :class:`EpsLocator`); every value keeps a tick mark."""
    ax.xaxis.set_major_locator(EpsLocator(values, fontsize))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _eps(v)))
    ax.xaxis.set_minor_locator(FixedLocator(sorted({float(v) for v in values})))
    ax.tick_params(axis="x", labelsize=fontsize)


def _line_label(defense: Any, attack: Any, targeted: Any, target_mode: Any, show_defense: bool) -> str:
    label = _text(attack)
    if show_defense:
        label = f"{_text(defense)} · {label}"
    if not is_missing(targeted) and bool(targeted):
        label += f" (targeted{', ' + _text(target_mode) if not is_missing(target_mode) else ''})"
    return label


def accuracy_vs_eps(table: pd.DataFrame) -> list[tuple[str, str]]:
    """Robust accuracy against ε, one plot per (model, norm), one line per (defense, attack, targeted).

    Only white-box rows are drawn. The 95% Wilson interval is a shaded band (an error bar where a line has
    a single ε). Returns ``[(title, data_uri), ...]`` in the order models first appear; ``[]`` when there is
    nothing to draw.
    """
    needed = {"model", "defense", "attack", "threat", "targeted", "target_mode", "norm", "eps",
              "robust_accuracy", "robust_accuracy_low", "robust_accuracy_high"}
    if table is None or table.empty or not needed.issubset(table.columns):
        return []
    df = table[table["threat"] == "white-box"].copy()
    if "attack_role" in df.columns:  # an attack on randomized smoothing's classifier: the certification section's
        df = df[df["attack_role"] != "smoothed"]
    for col in ("eps", "robust_accuracy", "robust_accuracy_low", "robust_accuracy_high"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df = df.dropna(subset=["eps", "robust_accuracy"])
    if df.empty:
        return []
    # Group keys must be hashable and NaN-free: use display strings.
    df["_model"] = df["model"].map(lambda v: "–" if is_missing(v) else str(v))
    df["_norm"] = df["norm"].map(norm_label)
    df["_defense"] = df["defense"].map(lambda v: "–" if is_missing(v) else str(v))
    df["_attack"] = df["attack"].map(lambda v: "–" if is_missing(v) else str(v))
    df["_targeted"] = df["targeted"].map(lambda v: False if is_missing(v) else bool(v))
    df["_mode"] = df["target_mode"].map(lambda v: "" if is_missing(v) else str(v))

    # The noise probe measures something else (noise not fooled), so it has no place on these axes.
    df = df[df["_mode"] != "each-class"]
    defenses = list(dict.fromkeys(df["_defense"]))
    colors = {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(defenses)}
    markers = {d: MARKERS[i % len(MARKERS)] for i, d in enumerate(defenses)}

    plots: list[tuple[str, str]] = []
    for (model, norm), panel in df.groupby(["_model", "_norm"], sort=False):
        attacks = list(panel.groupby(["_attack", "_targeted", "_mode"], sort=False))
        ncols = min(4, len(attacks))
        nrows = (len(attacks) + ncols - 1) // ncols
        fig = Figure(figsize=(3.3 * ncols, 2.7 * nrows + 0.5), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
        for ax in axes.flat[len(attacks):]:
            ax.set_visible(False)
        for ax, ((attack, targeted, mode), sub) in zip(axes.flat, attacks):
            for defense, line in sub.groupby("_defense", sort=False):
                pts = line.groupby("eps", sort=True)[["robust_accuracy", "robust_accuracy_low", "robust_accuracy_high"]].mean()
                eps = pts.index.to_numpy(dtype=float)
                acc = pts["robust_accuracy"].to_numpy(dtype=float)
                low = pts["robust_accuracy_low"].to_numpy(dtype=float)
                high = pts["robust_accuracy_high"].to_numpy(dtype=float)
                color = colors[defense]
                ax.plot(eps, acc, marker=markers[defense], color=color, label=_text(defense), linewidth=1.6,
                        markersize=4)
                has_band = np.isfinite(low) & np.isfinite(high)
                if len(eps) > 1 and has_band.any():
                    ax.fill_between(eps, low, high, where=has_band, color=color, alpha=0.18, linewidth=0,
                                    interpolate=True)
                elif has_band.any():
                    err = np.vstack([np.clip(acc - low, 0, None), np.clip(high - acc, 0, None)])
                    ax.errorbar(eps, acc, yerr=np.where(np.isfinite(err), err, 0.0), fmt="none", ecolor=color,
                                capsize=4, linewidth=1.2)
            ax.tick_params(labelsize=8)
            set_eps_ticks(ax, sorted(set(sub["eps"].astype(float))), fontsize=8)
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel(f"ε ({norm})", fontsize=9)
            ax.yaxis.set_major_formatter(lambda v, _pos: f"{100 * v:.0f}%")
            ax.grid(True, alpha=0.3)
            ax.spines[["top", "right"]].set_visible(False)
            ax.set_title(_text(_line_label("", attack, targeted, mode or None, False)), fontsize=10)
        for row in axes:
            row[0].set_ylabel("robust accuracy", fontsize=9)
        title = f"{model} — {norm}"
        handles = [axes.flat[0].plot([], [], color=colors[d], marker=markers[d], label=_text(d))[0]
                   for d in defenses if d in set(panel["_defense"])]
        fig.legend(handles=handles, loc="outside upper center", ncols=min(6, len(handles)), frameon=False,
                   fontsize=9, title=f"{_text(model)}: defense", title_fontsize=9)
        plots.append((title, fig_to_data_uri(fig)))
    log.debug("drew %d accuracy-vs-eps plots", len(plots))
    return plots


def _to_hwc(image: Any) -> np.ndarray:
    """A nested ``[C][H][W]`` (or ``[H][W]``) list as a float array ``(H, W)`` or ``(H, W, 3)``."""
    arr = np.asarray(image, dtype=float)
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3:
        raise ValueError(f"expected an image shaped [C][H][W], got shape {arr.shape}")
    if arr.shape[0] == 1:
        return arr[0]
    if arr.shape[0] >= 3:
        return np.transpose(arr[:3], (1, 2, 0))
    return arr.mean(axis=0)  # 2 channels: show their mean as gray


def _class_name(names: Sequence[Any], index: Any) -> str:
    if is_missing(index):
        return "–"
    try:
        i = int(index)
    except (TypeError, ValueError):
        return _text(index)
    name = str(names[i]) if 0 <= i < len(names) else str(i)
    name = name if len(name) <= 14 else name[:13] + "…"
    return _text(name)


def _conf(value: Any) -> str:
    return "" if is_missing(value) else f" ({float(value):.2f})"


def gallery_image(entry: dict[str, Any]) -> str:
    """A grid with one column per item: original, adversarial, perturbation amplified to fill [0, 1].

    The perturbation row shows ``0.5 + δ / (2·max|δ|)``: gray is no change. 1-channel images use a gray
    colour map, 3-channel images are shown as RGB. Items of a natural adversarial search (with ``x_rec``, the
    reconstruction ``G(I(x))``) show original, reconstruction and natural adversarial example ``G(z~)`` instead.
    Raises :class:`ValueError` when the entry has no items.
    """
    items = list(entry.get("items") or [])
    if not items:
        raise ValueError("gallery entry has no items")
    names = list(entry.get("class_names") or [])
    tiles: list[list[np.ndarray]] = [[], [], []]
    captions: list[list[str]] = [[], [], []]
    for item in items:
        x = _to_hwc(item["x"])
        x_adv = _to_hwc(item["x_adv"])
        if x.shape != x_adv.shape:
            raise ValueError(f"x and x_adv differ in shape: {x.shape} vs {x_adv.shape}")
        delta = x_adv - x
        # Images outside [0, 1] (e.g. normalised inputs) are rescaled jointly so both share one scale.
        lo, hi = float(min(x.min(), x_adv.min())), float(max(x.max(), x_adv.max()))
        if lo < 0.0 or hi > 1.0:
            span = hi - lo if hi > lo else 1.0
            x, x_adv = (x - lo) / span, (x_adv - lo) / span
        m = float(np.abs(delta).max())
        pert = 0.5 + delta / (2.0 * m) if m > 0 else np.full_like(delta, 0.5)
        label = _class_name(names, item.get("label"))
        titles = (
            f"true {label} / pred {_class_name(names, item.get('clean_pred'))}{_conf(item.get('clean_conf'))}",
            f"adv pred {_class_name(names, item.get('adv_pred'))}{_conf(item.get('adv_conf'))}",
            f"perturbation (max |δ| {m:.3g})",
        )
        rows = (x, x_adv, pert)
        if item.get("x_rec") is not None:
            x_rec = np.clip(_to_hwc(item["x_rec"]), 0.0, 1.0)
            rows = (x, x_rec, x_adv)
            titles = (titles[0], f"G(I(x)) pred {_class_name(names, item.get('rec_pred'))}",
                      f"natural: {titles[1].removeprefix('adv ')}, |Δz| {float(item.get('latent_distance', 0)):.3g}")
        for r, (img, title) in enumerate(zip(rows, titles)):
            tiles[r].append(np.clip(img, 0.0, 1.0))
            captions[r].append(title)
    return fig_to_data_uri(_montage(tiles, captions))


def _montage(tiles: list[list[np.ndarray]], captions: list[list[str]]) -> Figure:
    """One figure of equally sized tiles (rows x columns) on a pale blue ground (apart from every grey level a
    tile may hold), each with its caption above it: a single image on a single axes (a gallery of 50 entries
    renders in seconds, not in one axes per tile)."""
    rows, cols = len(tiles), len(tiles[0])
    h, w = tiles[0][0].shape[:2]
    pad_x, pad_y = max(1, w // 6), max(2, h // 2)  # room between tiles; above each for its caption
    canvas = np.empty(((h + pad_y) * rows, (w + pad_x) * cols - pad_x, 3))
    canvas[:] = (0.86, 0.91, 0.97)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            if tile.shape[:2] != (h, w):
                raise ValueError(f"gallery images differ in size: {tile.shape[:2]} vs {(h, w)}")
            top, left = r * (h + pad_y) + pad_y, c * (w + pad_x)
            canvas[top : top + h, left : left + w] = tile[..., None] if tile.ndim == 2 else tile
    width = max(1.9 * cols, 3.0)
    fig = Figure(figsize=(width, width * canvas.shape[0] / canvas.shape[1]))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(canvas, vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    for r, row in enumerate(captions):
        for c, text in enumerate(row):
            ax.text(c * (w + pad_x) + w / 2 - 0.5, r * (h + pad_y) + pad_y - 0.6, _text(text), ha="center",
                    va="bottom", fontsize=7)
    return fig



def _classifier_label(model: Any, defense: Any) -> str:
    return str(model) if is_missing(defense) or str(defense) == "none" else f"{model}/{defense}"


def transfer_matrices(table: pd.DataFrame) -> list[tuple[str, str]]:
    """One heatmap figure per attack: for each eps, robust accuracy of every target (columns) on examples
    crafted on every source (rows); the diagonal is the white-box accuracy. ``[]`` without transfer rows."""
    if table is None or table.empty or "threat" not in table.columns or not (table["threat"] == "transfer").any():
        return []
    df = table[table["threat"].isin(["white-box", "transfer"])].copy()
    df["robust_accuracy"] = pd.to_numeric(df["robust_accuracy"], errors="coerce")
    df["_target"] = [_classifier_label(m, d) for m, d in zip(df["model"], df["defense"])]
    df["_source"] = [t if th == "white-box" else str(s) for t, th, s in zip(df["_target"], df["threat"], df["source"])]
    plots = []
    for attack in dict.fromkeys(df.loc[df["threat"] == "transfer", "attack"]):
        sub = df[df["attack"] == attack]
        eps_values = sorted(set(sub.loc[sub["threat"] == "transfer", "eps"].astype(float)))
        targets = list(dict.fromkeys(sub["_target"]))
        sources = [t for t in targets if t in set(sub["_source"])] + \
            [s for s in dict.fromkeys(sub["_source"]) if s not in targets]
        size = 0.6 * max(len(targets), 3)
        ncols = min(2, len(eps_values))
        nrows = (len(eps_values) + ncols - 1) // ncols
        fig = Figure(figsize=(max(4.0, size + 2.6) * ncols, (size + 2.0) * nrows), layout="constrained")
        grid_axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax in grid_axes.flat[len(eps_values):]:
            ax.set_visible(False)
        axes = list(grid_axes.flat[: len(eps_values)])
        for ax, eps in zip(axes, eps_values):
            at = sub[np.isclose(sub["eps"].astype(float), eps)]
            grid = np.full((len(sources), len(targets)), np.nan)
            for s_, t_, v in zip(at["_source"], at["_target"], at["robust_accuracy"]):
                grid[sources.index(s_), targets.index(t_)] = v
            im = ax.imshow(np.ma.masked_invalid(grid), vmin=0, vmax=1, cmap="viridis")
            for i in range(len(sources)):
                for j in range(len(targets)):
                    if np.isfinite(grid[i, j]):
                        ax.text(j, i, f"{100 * grid[i, j]:.0f}", ha="center", va="center", fontsize=8,
                                color="white" if grid[i, j] < 0.6 else "black",
                                fontweight="bold" if sources[i] == targets[j] else "normal")
            ax.set_xticks(range(len(targets)), [_text(t) for t in targets], rotation=45, ha="right", fontsize=8)
            ax.set_yticks(range(len(sources)), [_text(s) for s in sources], fontsize=8)
            ax.set_xlabel("target (evaluated)", fontsize=8)
            ax.set_ylabel("source (crafted on)", fontsize=8)
            ax.set_title(eps_title(eps), fontsize=9)
        fig.colorbar(im, ax=axes, shrink=0.6, label="robust accuracy")
        fig.suptitle(f"{_text(attack)}: transfer matrix (diagonal = white-box)", fontsize=11)
        plots.append((f"{attack} transfer matrix", fig_to_data_uri(fig)))
    return plots


def substitute_progress(histories: list[dict[str, Any]]) -> str | None:
    """Substitute-oracle agreement and substitute accuracy against oracle queries: two panels, one line per run."""
    runs = [h for h in histories if h.get("rounds")]
    if not runs:
        return None
    fig = Figure(figsize=(9.0, 3.4 + 0.22 * ((len(runs) + 2) // 3)), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for i, h in enumerate(runs):
        rounds = h["rounds"]
        q = [r["queries"] for r in rounds]
        label = f"{_classifier_label(h.get('model'), h.get('defense'))} · {h.get('attack')}"
        style = {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)], "markersize": 4,
                 "linestyle": "-" if i < len(PALETTE) else "--"}
        axes[0].plot(q, [r["agreement"] for r in rounds], label=_text(label), **style)
        axes[1].plot(q, [r["substitute_accuracy"] for r in rounds], **style)
    for ax, title in zip(axes, ("agreement with the oracle", "substitute accuracy (true labels)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("oracle queries (label-only)", fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.yaxis.set_major_formatter(lambda v, _pos: f"{100 * v:.0f}%")
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_title(title, fontsize=10)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    fig.suptitle("Substitute training (Papernot et al. 2017), per round", fontsize=11)
    return fig_to_data_uri(fig)


def blackbox_queries(table: pd.DataFrame) -> str | None:
    """Robust accuracy of each black-box row against the oracle queries it took (log scale): one panel per eps,
    one color per attack, one marker per classifier. ``None`` without black-box rows that counted queries."""
    if table is None or table.empty or "threat" not in table.columns:
        return None
    df = table[table["threat"] == "black-box"].copy()
    for col in ("queries", "robust_accuracy", "eps"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df = df[(df["queries"] > 0) & df["robust_accuracy"].notna() & df["eps"].notna()]
    if df.empty:
        return None
    df["_clf"] = [_classifier_label(m, d) for m, d in zip(df["model"], df["defense"])]
    attacks = list(dict.fromkeys(df["attack"].astype(str)))
    classifiers = list(dict.fromkeys(df["_clf"]))
    eps_values = sorted(set(df["eps"]))
    ncols = min(3, len(eps_values))
    nrows = (len(eps_values) + ncols - 1) // ncols
    fig = Figure(figsize=(3.6 * ncols + 0.4, 3.0 * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    for ax in axes.flat[len(eps_values):]:
        ax.set_visible(False)
    for ax, eps in zip(axes.flat, eps_values):
        at = df[np.isclose(df["eps"], eps)]
        for r in at.to_dict("records"):
            ax.scatter(r["queries"], r["robust_accuracy"], s=36, alpha=0.85,
                       color=PALETTE[attacks.index(str(r["attack"])) % len(PALETTE)],
                       marker=MARKERS[classifiers.index(r["_clf"]) % len(MARKERS)])
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.yaxis.set_major_formatter(lambda v, _pos: f"{100 * v:.0f}%")
        ax.set_xlabel("queries to the model (total)", fontsize=9)
        ax.set_title(eps_title(eps), fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    for row in axes:
        row[0].set_ylabel("robust accuracy", fontsize=9)
    handles = [Line2D([], [], color=PALETTE[i % len(PALETTE)], marker="o", linestyle="", label=_text(a))
               for i, a in enumerate(attacks)]
    handles += [Line2D([], [], color="#59636e", marker=MARKERS[i % len(MARKERS)], linestyle="", label=_text(c))
                for i, c in enumerate(classifiers)]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    fig.suptitle("Black-box attacks: robust accuracy vs queries (lower-left = stronger and cheaper)", fontsize=11)
    return fig_to_data_uri(fig)


def distance_curves(samples: pd.DataFrame | None) -> list[tuple[str, str]]:
    """Robust accuracy against the perturbation size for minimum-norm attacks (FMN, DDN, FAB, DeepFool,
    Carlini-Wagner, ...): the fraction of samples classified correctly whose smallest adversarial perturbation found
    is larger than the distance on the x axis. One figure per (classifier, norm), one line per attack, the per-sample
    best over them in black with each attack's AttackBench optimality in the legend
    (:mod:`robustbench_gan.curves`); the run's eps marked."""
    from ..curves import ENSEMBLE, KEYS, minimum_norm_distances, optimality_table, with_ensemble

    dist = with_ensemble(minimum_norm_distances(samples))
    if dist.empty:
        return []
    scores = optimality_table(samples).set_index(KEYS + ["attack"])["optimality"]
    eps_by_norm = {} if samples is None else {
        str(n): sorted(set(pd.to_numeric(g["eps"], errors="coerce").dropna()))
        for n, g in samples[samples["attack_role"] == "minimum-norm"].groupby(samples["norm"].astype(str))}
    out: list[tuple[str, str]] = []
    for (model, defense, norm), per in dist.groupby(KEYS, sort=True):
        fig = Figure(figsize=(6.4, 3.6), layout="constrained")
        ax = fig.subplots()
        finite = per["distance"][np.isfinite(per["distance"])]
        top = float(finite.max()) * 1.05 if len(finite) else 1.0
        grid = np.linspace(0.0, max(top, 1e-6), 200)
        attacks = [a for a in per["attack"].unique() if a != ENSEMBLE] + \
            ([ENSEMBLE] if (per["attack"] == ENSEMBLE).any() else [])
        for i, attack in enumerate(attacks):
            d = per.loc[per["attack"] == attack, "distance"].to_numpy(dtype=float)
            acc = [(d > r).mean() for r in grid]
            score = scores.get((model, defense, norm, attack), np.nan)
            label = _text(attack) + ("" if attack == ENSEMBLE or not np.isfinite(score)
                                     else f" (optimality {100 * score:.1f}%)")
            ax.step(grid, acc, where="post", color="black" if attack == ENSEMBLE else PALETTE[i % len(PALETTE)],
                    lw=2.2 if attack == ENSEMBLE else 1.5, ls="-" if attack == ENSEMBLE else "--", label=label)
        for e in eps_by_norm.get(norm, []):
            ax.axvline(e, color="#8c959f", lw=0.8, ls=":")
        ax.set_ylim(-0.02, 1.02)
        ax.yaxis.set_major_formatter(lambda v, _pos: f"{100 * v:.0f}%")
        ax.set_xlabel(f"{norm_label(norm)} distance of the smallest adversarial example found", fontsize=9)
        ax.set_ylabel("robust accuracy", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(fontsize=8, frameon=False)
        title = (f"{_classifier_label(model, defense)}: minimum-norm attacks ({norm_label(norm)}), accuracy vs "
                 "distance (dotted: the run's eps)")
        fig.suptitle(title, fontsize=10)
        out.append((title, fig_to_data_uri(fig)))
    return out


def corruption_heatmaps(accuracy: pd.DataFrame) -> list[tuple[str, str]]:
    """One heatmap per classifier: accuracy on the corrupted images, corruption (rows, in the order of the run) by
    severity (columns), from :func:`robustbench_gan.corruption_tables.corruption_accuracy`."""
    out: list[tuple[str, str]] = []
    if accuracy is None or accuracy.empty:
        return out
    for (model, defense), g in accuracy.groupby(["model", "defense"], sort=False):
        names = list(dict.fromkeys(g["corruption"]))
        severities = sorted(set(int(v) for v in g["severity"]))
        grid = np.full((len(names), len(severities)), np.nan)
        for r in g.to_dict("records"):
            grid[names.index(r["corruption"]), severities.index(int(r["severity"]))] = r["accuracy"]
        fig = Figure(figsize=(1.0 + 0.7 * len(severities) + 1.6, 0.9 + 0.32 * len(names)), layout="constrained")
        ax = fig.subplots()
        im = ax.imshow(np.ma.masked_invalid(grid), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i in range(len(names)):
            for j in range(len(severities)):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{100 * grid[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if grid[i, j] < 0.6 else "black")
        ax.set_xticks(range(len(severities)), [str(s) for s in severities], fontsize=8)
        ax.set_yticks(range(len(names)), [_text(n) for n in names], fontsize=8)
        ax.set_xlabel("severity", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8, format=FuncFormatter(lambda v, _p: f"{100 * v:.0f}%"))
        title = f"{_classifier_label(model, defense)}: accuracy on corrupted images (%)"
        fig.suptitle(title, fontsize=10)
        out.append((title, fig_to_data_uri(fig)))
    return out


def corruption_strips(gallery: Sequence[dict[str, Any]]) -> str | None:
    """The first gallery image under each corruption at each severity (one row per corruption, the clean image
    first), with the first classifier's prediction under each."""
    entries = [g for g in gallery if g.get("strip")]
    if not entries:
        return None
    first = (entries[0]["model"], entries[0]["defense"])
    entries = [g for g in entries if (g["model"], g["defense"]) == first]
    names = entries[0].get("class_names") or []
    tiles, captions = [], []
    for g in entries:
        clean = g["items"][0]
        row = [_to_hwc(clean["x"])] + [_to_hwc(s["x_adv"]) for s in g["strip"]]
        caps = [f"{_text(g['attack'])}: {_class_name(names, clean['clean_pred'])}"] + \
            [f"{_eps(s['eps'])}: {_class_name(names, s['adv_pred'])}" for s in g["strip"]]
        tiles.append(row)
        captions.append(caps)
    return fig_to_data_uri(_montage(tiles, captions))


def certification_curves(table: pd.DataFrame) -> list[tuple[str, str]]:
    """One figure per classifier with randomized-smoothing rows: certified accuracy against the L2 radius (role
    ``certified``, solid) and the empirical robust accuracy of the same smoothed classifier under an attack (role
    ``smoothed``, dashed), with their 95% intervals."""
    out: list[tuple[str, str]] = []
    if table is None or table.empty or "attack_role" not in table.columns:
        return out
    df = table[table["attack_role"].isin(["certified", "smoothed"])].copy()
    for col in ("eps", "robust_accuracy", "robust_accuracy_low", "robust_accuracy_high"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    for (model, defense), g in df.groupby(["model", "defense"], sort=False):
        fig = Figure(figsize=(6.0, 3.4), layout="constrained")
        ax = fig.subplots()
        for i, (attack, a) in enumerate(g.groupby("attack", sort=False)):
            a = a.sort_values("eps")
            certified = a["attack_role"].iloc[0] == "certified"
            color = PALETTE[i % len(PALETTE)]
            ax.plot(a["eps"], a["robust_accuracy"], marker="o", ms=3, color=color, ls="-" if certified else "--",
                    label=f"{_text(attack)} ({'certified' if certified else 'empirical'})")
            ax.fill_between(a["eps"], a["robust_accuracy_low"], a["robust_accuracy_high"], color=color, alpha=0.15)
        ax.set_ylim(-0.02, 1.02)
        ax.yaxis.set_major_formatter(lambda v, _pos: f"{100 * v:.0f}%")
        ax.set_xlabel("L2 radius", fontsize=9)
        ax.set_ylabel("accuracy of the smoothed classifier", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(fontsize=8, frameon=False)
        title = f"{_classifier_label(model, defense)}: randomized smoothing, certified vs attacked"
        fig.suptitle(title, fontsize=10)
        out.append((title, fig_to_data_uri(fig)))
    return out


def _show(ax: Any, image: Any) -> None:
    img = _to_hwc(image)
    ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def gan_sample_grid(grid: dict[str, Any]) -> str:
    """Generated samples, one row per class (images already scaled to [0, 1])."""
    rows = grid["images"]
    names = grid.get("class_names") or [str(i) for i in range(len(rows))]
    ncols = max(len(r) for r in rows)
    fig = Figure(figsize=(0.7 * ncols + 1.0, 0.7 * len(rows) + 0.4), layout="constrained")
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for i, row in enumerate(rows):
        for j in range(ncols):
            ax = axes[i][j]
            if j < len(row):
                _show(ax, row[j])
            else:
                ax.set_axis_off()
        axes[i][0].set_ylabel(_text(names[i]), rotation=0, ha="right", va="center", fontsize=8)
    return fig_to_data_uri(fig)


def gan_losses(losses: dict[str, list[float]]) -> str:
    """Discriminator and generator losses per generator step."""
    fig = Figure(figsize=(6.0, 2.8), layout="constrained")
    ax = fig.add_subplot()
    for key, color in (("d_loss", PALETTE[0]), ("g_loss", PALETTE[1])):
        values = losses.get(key) or []
        steps = losses.get("steps") or list(range(len(values)))
        ax.plot(steps[: len(values)], values, color=color, linewidth=1.2,
                label={"d_loss": "discriminator", "g_loss": "generator (non-saturating)"}[key])
    ax.set_xlabel("generator step")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False)
    return fig_to_data_uri(fig)


def corner_case_gallery(cases: dict[str, Any]) -> str | None:
    """Generated samples the classifier gets wrong or is unsure about, with the class-wise rate as a bar chart."""
    items = cases.get("items") or []
    rates = [0.0 if is_missing(r) else float(r) for r in (cases.get("rate_per_class") or [])]
    names = cases.get("class_names") or [str(i) for i in range(len(rates))]
    if not items and not rates:
        return None
    ncols = max(1, min(8, len(items)))
    nrows = (len(items) + ncols - 1) // ncols if items else 0
    fig = Figure(figsize=(max(6.0, 1.1 * ncols), 2.2 + 1.25 * nrows), layout="constrained")
    gs = fig.add_gridspec(nrows + 1, ncols, height_ratios=[1.6] + [1.0] * nrows)
    bar = fig.add_subplot(gs[0, :])
    bar.bar(range(len(rates)), rates, color=PALETTE[1])
    bar.set_xticks(range(len(rates)), [_text(n) for n in names], fontsize=8)
    bar.set_ylim(0, 1)
    bar.yaxis.set_major_formatter(lambda v, _pos: f"{100 * v:.0f}%")
    bar.set_ylabel("corner-case rate", fontsize=8)
    bar.spines[["top", "right"]].set_visible(False)
    for k, it in enumerate(items):
        ax = fig.add_subplot(gs[1 + k // ncols, k % ncols])
        _show(ax, it["x"])
        ax.set_title(f"{_class_name(names, it['label'])} → {_class_name(names, it['pred'])} ({it['conf']:.2f})",
                     fontsize=7)
    return fig_to_data_uri(fig)
