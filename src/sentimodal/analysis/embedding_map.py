"""A 2-D t-SNE map of an embedding space, as a PNG to read at a glance and as an interactive
HTML page where hovering a point shows its post.

Points are coloured by one column (e.g. the true label); the names of the largest groups of
another column (e.g. the ANP) are written at the group's centre, in bold where the group is
tighter than the median named group in the original space (``tightness``, e.g. the mean
cosine to the own centroid from :func:`sentimodal.analysis.clusters.cluster_coherence`), as
in the study's figure. Names are placed greedily, largest group first, and moved aside (with
a leader line) or dropped rather than printed on top of each other.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from numpy.typing import ArrayLike
from sklearn.manifold import TSNE

from sentimodal.analysis.plots import MISSING_NAMES, category_colours
from sentimodal.analysis.report import thumbnail_data_uri
from sentimodal.errors import UserInputError

Offset = tuple[float, float]
# Directions in which a name is moved off its group centre when the centre is taken.
_DIRECTIONS: tuple[Offset, ...] = (
    (0, 1),
    (0, -1),
    (1, 0),
    (-1, 0),
    (1, 1),
    (-1, 1),
    (1, -1),
    (-1, -1),
)
TEXT_PREVIEW_CHARS = 280


def default_perplexity(n: int) -> float:
    """scikit-learn's usual 30, lowered for small sets (perplexity must stay below n)."""
    return float(min(30.0, max(2.0, (n - 1) / 3)))


def tsne_coordinates(
    vectors: ArrayLike,
    metric: str = "cosine",
    perplexity: float | None = None,
    seed: int = 0,
    max_iter: int = 1000,
) -> np.ndarray:
    """(N, 2) t-SNE coordinates; seeded, so the same vectors give the same picture."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"expected an (N, D) array, got shape {matrix.shape}")
    if len(matrix) < 4:
        raise UserInputError(f"a t-SNE map needs at least 4 points, got {len(matrix)}")
    if metric == "cosine" and (np.linalg.norm(matrix, axis=1) == 0).any():
        raise UserInputError("some vectors are all zeros: their cosine distance is undefined")
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity or default_perplexity(len(matrix)),
        metric=metric,
        init="pca",
        learning_rate="auto",
        max_iter=max_iter,
        random_state=seed,
    )
    return tsne.fit_transform(matrix)


def group_centres(coords: np.ndarray, names: ArrayLike, max_groups: int) -> pd.DataFrame:
    """The ``max_groups`` largest groups with their median position (robust to stragglers)."""
    frame = pd.DataFrame({"group": pd.Series(list(names)).astype(str)})
    frame["x"], frame["y"] = coords[:, 0], coords[:, 1]
    frame = frame[~frame["group"].str.lower().isin(MISSING_NAMES)]
    centres = frame.groupby("group").agg(n=("x", "size"), x=("x", "median"), y=("y", "median"))
    centres = centres.reset_index().sort_values(["n", "group"], ascending=[False, True])
    return centres.head(max_groups).reset_index(drop=True)


def place_labels(
    anchors: np.ndarray,
    sizes: np.ndarray,
    bounds: tuple[float, float, float, float],
    pad: float = 2.0,
) -> list[Offset | None]:
    """Greedy label placement in pixels: at the anchor if free, else the nearest free spot of
    rings around it, else None (dropped). Earlier labels (larger groups) win."""
    x0, y0, x1, y1 = bounds
    placed: list[tuple[float, float, float, float]] = []
    offsets: list[Offset | None] = []
    for (ax_, ay), (width, height) in zip(anchors, sizes, strict=True):
        candidates = [(0.0, 0.0)] + [
            (dx * (0.6 * width + 4) * ring, dy * (height + 2) * ring)
            for ring in (1, 2, 3)
            for dx, dy in _DIRECTIONS
        ]
        chosen = None
        for dx, dy in candidates:
            box = (
                ax_ + dx - width / 2 - pad,
                ay + dy - height / 2 - pad,
                ax_ + dx + width / 2 + pad,
                ay + dy + height / 2 + pad,
            )
            inside = box[0] >= x0 and box[1] >= y0 and box[2] <= x1 and box[3] <= y1
            if inside and not any(_overlap(box, other) for other in placed):
                placed.append(box)
                chosen = (dx, dy)
                break
        offsets.append(chosen)
    return offsets


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def tight_names(shown: Sequence[str], tightness: Mapping[str, float] | None) -> set[str]:
    """The shown groups above the shown groups' median tightness: bold in the pictures.

    The median is taken over the named groups, not all groups, so bold always separates
    the names on the picture (the largest groups are often all tighter than the rest).
    """
    if not tightness:
        return set()
    scores = pd.Series({g: tightness[g] for g in shown if g in tightness}, dtype=float)
    return set(scores.index[scores > scores.median()])


def _categories(values: ArrayLike) -> tuple[np.ndarray, list[str]]:
    labels = pd.Series(list(values), dtype=object).fillna("missing").astype(str).to_numpy()
    return labels, sorted(set(labels))


def _point_size(n: int) -> float:
    return float(np.clip(6000 / max(n, 1), 6, 40))


def embedding_map_figure(
    coords: np.ndarray,
    colour_by: ArrayLike,
    names: ArrayLike | None = None,
    tightness: Mapping[str, float] | None = None,
    max_names: int = 30,
    title: str = "t-SNE map of the embedding space",
    colour_title: str = "label",
) -> Figure:
    """The map as a matplotlib figure: legend on the right, group names on the points."""
    colours_of, categories = _categories(colour_by)
    palette = category_colours(categories)
    figure = Figure(figsize=(11.0, 8.0), dpi=100)
    FigureCanvasAgg(figure)  # a renderer to measure names before placing them
    ax = figure.add_axes((0.03, 0.07, 0.74, 0.85))
    for category in categories:
        members = colours_of == category
        ax.scatter(
            coords[members, 0],
            coords[members, 1],
            s=_point_size(len(coords)),
            color=palette[category],
            alpha=0.75,
            linewidths=0,
            label=f"{category} (n={members.sum()})",
        )
    span = np.ptp(coords, axis=0)
    low, high = coords.min(axis=0) - 0.04 * span, coords.max(axis=0) + 0.04 * span
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE dimension 1 (distances only meaningful locally)")
    ax.set_ylabel("t-SNE dimension 2")
    ax.set_title(f"{title} ({len(coords)} points)", fontsize=13)
    legend = ax.legend(
        title=colour_title, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
    )
    for handle in legend.legend_handles:
        handle.set_sizes([60])  # type: ignore[union-attr]
        handle.set_alpha(1.0)
    if names is not None:
        note = _draw_names(figure, ax, coords, names, tightness, max_names)
        figure.text(0.03, 0.015, note, fontsize=9, color="0.3")
    return figure


def _draw_names(
    figure: Figure,
    ax: Axes,
    coords: np.ndarray,
    names: ArrayLike,
    tightness: Mapping[str, float] | None,
    max_names: int,
) -> str:
    centres = group_centres(coords, names, max_names)
    tight = tight_names(centres["group"], tightness)
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    font_size = 9 if len(centres) > 15 else 10.5
    fonts = {weight: FontProperties(size=font_size, weight=weight) for weight in ("normal", "bold")}
    weights = ["bold" if g in tight else "normal" for g in centres["group"]]
    sizes = np.array(
        [
            renderer.get_text_width_height_descent(name, fonts[w], ismath=False)[:2]
            for name, w in zip(centres["group"], weights, strict=True)
        ]
    ).reshape(-1, 2)
    anchors = ax.transData.transform(centres[["x", "y"]].to_numpy())
    offsets = place_labels(anchors, sizes, tuple(ax.bbox.extents))
    to_points = 72.0 / figure.dpi
    halo = [patheffects.withStroke(linewidth=3, foreground="white")]
    shown = 0
    for row, weight, offset in zip(centres.itertuples(), weights, offsets, strict=True):
        if offset is None:
            continue
        shown += 1
        moved = offset != (0.0, 0.0)
        ax.annotate(
            row.group,
            xy=(row.x, row.y),
            xytext=(offset[0] * to_points, offset[1] * to_points),
            textcoords="offset points",
            ha="center",
            va="center",
            fontproperties=fonts[weight],
            path_effects=halo,
            arrowprops={"arrowstyle": "-", "color": "0.35", "lw": 0.7} if moved else None,
        )
    dropped = len(centres) - shown
    return (
        f"Names: {shown} of the largest groups at their median position"
        + (f" ({dropped} more hidden to avoid overlap)" if dropped else "")
        + ("; bold = tighter than the median named group." if tightness else ".")
    )


def _json_for_script(value: object) -> str:
    """JSON that cannot close or break out of the <script> element holding it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_HTML_SCRIPT = """
const points = JSON.parse(document.getElementById("points").textContent);
const thumbs = JSON.parse(document.getElementById("thumbs").textContent);
const tip = document.getElementById("tip");
const map = document.getElementById("map");
map.addEventListener("mousemove", (event) => {
  const index = event.target.dataset ? event.target.dataset.i : undefined;
  if (index === undefined) { tip.hidden = true; return; }
  const point = points[index];
  tip.querySelector(".meta").textContent = point.l + (point.g ? " \\u00b7 " + point.g : "");
  tip.querySelector(".text").textContent = point.t;
  const image = tip.querySelector("img");
  const note = tip.querySelector(".note");
  if (point.m >= 0) { image.src = thumbs[point.m]; image.hidden = false; note.hidden = true; }
  else { image.hidden = true; note.hidden = !point.noimg; note.textContent = point.noimg || ""; }
  tip.hidden = false;
  const x = Math.min(event.pageX + 14, window.scrollX + window.innerWidth - tip.offsetWidth - 8);
  tip.style.left = x + "px";
  tip.style.top = (event.pageY + 14) + "px";
});
map.addEventListener("mouseleave", () => { tip.hidden = true; });
"""

_HTML_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 16px 24px; color: #1d1d1d; }
.layout { display: flex; gap: 24px; align-items: flex-start; }
svg { border: 1px solid #d6dbe0; background: #fff; }
circle { fill-opacity: 0.8; }
circle:hover { stroke: #000; stroke-width: 1.5; fill-opacity: 1; }
text.name { font-size: 12px; paint-order: stroke; stroke: #fff; stroke-width: 3px;
            pointer-events: none; }
text.tight { font-weight: bold; }
line.leader { stroke: #666; stroke-width: 0.7; }
.legend ul { list-style: none; padding: 0; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 6px;
          margin-right: 6px; vertical-align: -1px; }
#tip { position: absolute; max-width: 320px; background: #fff; border: 1px solid #888;
       border-radius: 6px; padding: 8px; box-shadow: 0 2px 8px rgba(0,0,0,.25); }
#tip img { max-width: 160px; max-height: 160px; display: block; margin-bottom: 6px; }
#tip .meta { font-weight: bold; }
#tip .note { color: #777; font-size: 12px; }
.footnote { color: #555; font-size: 13px; max-width: 900px; }
"""


def embedding_map_html(
    coords: np.ndarray,
    colour_by: ArrayLike,
    texts: Sequence[str],
    images: Sequence[str | None] | None = None,
    names: ArrayLike | None = None,
    tightness: Mapping[str, float] | None = None,
    max_names: int = 30,
    max_thumbnails: int = 200,
    seed: int = 0,
    title: str = "t-SNE map of the embedding space",
    colour_title: str = "label",
) -> str:
    """A self-contained page: an inline SVG map; hovering a point shows its text and image.

    Only ``max_thumbnails`` points (a seeded random sample) carry a thumbnail, which keeps the
    page a few MB at most however large the split is.
    """
    width, height, margin = 900.0, 700.0, 20.0
    colours_of, categories = _categories(colour_by)
    palette = category_colours(categories)
    span = np.where(np.ptp(coords, axis=0) > 0, np.ptp(coords, axis=0), 1.0)
    scale = (np.array([width, height]) - 2 * margin) / span
    xy = (coords - coords.min(axis=0)) * scale + margin
    xy[:, 1] = height - xy[:, 1]  # SVG's y grows downwards
    group_of = (
        pd.Series(list(names)).astype(str).to_numpy() if names is not None else [""] * len(xy)
    )

    thumbs: list[str] = []
    thumb_of = np.full(len(xy), -1)
    if images is not None:
        candidates = [i for i, image in enumerate(images) if isinstance(image, str) and image]
        order = np.random.default_rng(seed).permutation(len(candidates))
        for i in (candidates[j] for j in order):
            if len(thumbs) >= max_thumbnails:
                break
            uri = thumbnail_data_uri(images[i], side=160)
            if uri is not None:
                thumb_of[i] = len(thumbs)
                thumbs.append(uri)
    points = []
    for i in range(len(xy)):
        point: dict[str, object] = {
            "l": colours_of[i],
            "g": group_of[i],
            "t": str(texts[i])[:TEXT_PREVIEW_CHARS],
            "m": int(thumb_of[i]),
        }
        if images is not None and thumb_of[i] < 0:
            point["noimg"] = f"(no thumbnail: at most {max_thumbnails} are embedded)"
        points.append(point)

    radius = float(np.clip(np.sqrt(_point_size(len(xy))) / 1.6, 1.6, 4.5))
    circles = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" '
        f'fill="{palette[colours_of[i]]}" data-i="{i}"/>'
        for i, (x, y) in enumerate(xy)
    )
    labels_svg = ""
    if names is not None:
        labels_svg = _svg_names(xy, names, tightness, max_names, width, height)
    legend = "".join(
        f'<li><span class="swatch" style="background:{palette[c]}"></span>'
        f"{html.escape(c)} (n={int((colours_of == c).sum())})</li>"
        for c in categories
    )
    footnote = f"{len(xy)} points. Hover a point to see its post. "
    if images is not None:
        footnote += f"{len(thumbs)} points carry a thumbnail. "
    footnote += "Distances are only meaningful locally."
    if names is not None and tightness:
        footnote += " Bold names: groups tighter than the median named group."
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_HTML_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        f'<div class="layout">\n<svg id="map" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="{html.escape(title)}">{circles}{labels_svg}</svg>\n'
        f'<div class="legend"><strong>{html.escape(colour_title)}</strong><ul>{legend}</ul>'
        "</div>\n</div>\n"
        f'<p class="footnote">{html.escape(footnote)}</p>\n'
        '<div id="tip" hidden><img alt="" hidden><div class="meta"></div>'
        '<div class="text"></div><div class="note" hidden></div></div>\n'
        f'<script type="application/json" id="points">{_json_for_script(points)}</script>\n'
        f'<script type="application/json" id="thumbs">{_json_for_script(thumbs)}</script>\n'
        f"<script>{_HTML_SCRIPT}</script>\n</body>\n</html>\n"
    )


def _svg_names(
    xy: np.ndarray,
    names: ArrayLike,
    tightness: Mapping[str, float] | None,
    max_names: int,
    width: float,
    height: float,
) -> str:
    """Group names for the SVG; text sizes estimated from character counts (no renderer)."""
    pixel_centres = group_centres(xy, names, max_names)
    tight = tight_names(pixel_centres["group"], tightness)
    font = 12.0
    sizes = np.array(
        [
            [len(g) * font * (0.64 if g in tight else 0.58), font * 1.25]
            for g in pixel_centres["group"]
        ]
    ).reshape(-1, 2)
    anchors = pixel_centres[["x", "y"]].to_numpy()
    offsets = place_labels(anchors, sizes, (0.0, 0.0, width, height))
    parts = []
    for row, offset in zip(pixel_centres.itertuples(), offsets, strict=True):
        if offset is None:
            continue
        x, y = row.x + offset[0], row.y + offset[1]
        if offset != (0.0, 0.0):
            parts.append(
                f'<line class="leader" x1="{row.x:.1f}" y1="{row.y:.1f}" '
                f'x2="{x:.1f}" y2="{y:.1f}"/>'
            )
        css = "name tight" if row.group in tight else "name"
        parts.append(
            f'<text class="{css}" x="{x:.1f}" y="{y:.1f}" text-anchor="middle" '
            f'dominant-baseline="central">{html.escape(row.group)}</text>'
        )
    return "".join(parts)
