"""Figures of an analysed recording, written to files (matplotlib's Agg backend: no display needed).

- `plot_lvid`: LVID (mm) over time (s) with end-diastoles and end-systoles marked.
- `plot_volume`: LV volume (µL) over time (s) with the same beats marked.
- `draw_overlay`: the recording at full resolution with the predicted cavity borders drawn on it
  (an image, not a chart, so a recording of any length keeps every column), and the flagged beats marked
  by a band along its top edge.
- `draw_box`: the image as read with the box that was analysed outlined (`<stem>_crop.png` with `--crop`).
- `plot_study_overview`: a study's recordings one row each, LVID over time and the summary, to look over a
  whole study in one file.
- `plot_bland_altman`: the tool against a reference (calipers, a simulator's truth), one point per recording,
  with the bias and limits of agreement of `mmode.agreement.bland_altman` (bench/accuracy.py --bland-altman).
"""
import textwrap

import numpy as np
from PIL import Image

UPPER_COLOUR = (255, 64, 64)
LOWER_COLOUR = (64, 160, 255)
FLAGGED_BAND_COLOUR = (255, 176, 0)  # along the overlay's top edge over a flagged beat's ED..ES columns
BOX_COLOUR = (0, 230, 0)  # the outline of the box analysed, drawn outside it (`draw_box`)
TRUTH_COLOUR = (64, 255, 64)  # the truth's borders beside the model's (bench/accuracy.py --overlays)
END_DIASTOLE_COLOUR = "tab:red"
END_SYSTOLE_COLOUR = "tab:blue"
FLAGGED_COLOUR = "0.6"  # a flagged beat's markers: grey, hollow
BIAS_COLOUR, LIMITS_COLOUR = "tab:blue", "tab:red"  # Bland-Altman lines
FLAGGED_SHADE_COLOUR = (255, 224, 160)  # behind a flagged beat's ED..ES in the study overview (solid, light)
# Study overview: a row of this height per recording (its plot and, above and below it, title and time axis), at
# this width and resolution (200 recordings: about 14,500 px), with this much room above the first and below the last
OVERVIEW_ROW_IN, OVERVIEW_WIDTH_IN, OVERVIEW_DPI, OVERVIEW_MARGIN_IN = 0.9, 12.0, 80, 0.4
OVERVIEW_HEADER_IN = 0.3  # the line on top that says what the rows show
OVERVIEW_TITLE_CHARS = 160  # a longer title or error line is cut short ("[...]") to stay within the row
# Figure width grows with the recording (inches per second), within limits a viewer can open.
INCHES_PER_S = 4.0
MIN_WIDTH_IN, MAX_WIDTH_IN = 8.0, 60.0
# zlib level of the overlay PNG: bench/speed.py's 10-s overlay (16,766 x 767 RGB) took 0.82 s and 9.5 MB
# at 3 against 2.21 s and 10.2 MB at PIL's default 6 (session 20, 2 CPU cores)
OVERLAY_PNG_COMPRESSION = 3


def _figure(duration_s):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width_in = float(np.clip(duration_s * INCHES_PER_S, MIN_WIDTH_IN, MAX_WIDTH_IN))
    return plt.subplots(figsize=(width_in, 3.5), dpi=100, layout="constrained")


def _save(figure, path):
    import matplotlib.pyplot as plt

    figure.savefig(path)
    plt.close(figure)
    return path


def _curve_with_beats(path, time_s, values, ed_index, es_index, ylabel, title, flagged=None):
    figure, axes = _figure(time_s[-1] - time_s[0] if time_s.size else 0.0)
    axes.plot(time_s, values, color="black", linewidth=0.8)
    ed_index, es_index = np.asarray(ed_index, dtype=int), np.asarray(es_index, dtype=int)
    flagged = np.zeros(ed_index.size, dtype=bool) if flagged is None else np.asarray(flagged, dtype=bool)
    sound_ed, sound_es = ed_index[~flagged], es_index[~flagged]
    axes.plot(time_s[sound_ed], values[sound_ed], "v", color=END_DIASTOLE_COLOUR, label="end-diastole")
    axes.plot(time_s[sound_es], values[sound_es], "^", color=END_SYSTOLE_COLOUR, label="end-systole")
    if flagged.any():
        for index, marker in ((ed_index[flagged], "v"), (es_index[flagged], "^")):
            axes.plot(time_s[index], values[index], marker, markerfacecolor="none", color=FLAGGED_COLOUR,
                      label="flagged beat (not in the medians)" if marker == "v" else None)
    axes.set_xlabel("time (s)")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if time_s.size:
        axes.set_xlim(time_s[0], time_s[-1])
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", fontsize="small")
    return _save(figure, path)


def plot_lvid(path, time_s, lvid_mm, ed_index, es_index, title="LVID", flagged=None):
    """Save LVID (mm, NaN = gap) against time (s) with ED (▼) and ES (▲) columns marked, as PNG `path`;
    the beats `flagged` (bool per beat) hollow and grey."""
    return _curve_with_beats(path, np.asarray(time_s), np.asarray(lvid_mm), ed_index, es_index,
                             "LVID (mm)", title, flagged)


def plot_volume(path, time_s, volume_ul, ed_index, es_index, title="LV volume", flagged=None):
    """Save LV volume (µL, NaN = gap) against time (s) with ED (▼) and ES (▲) columns marked, as PNG `path`;
    the beats `flagged` (bool per beat) hollow and grey."""
    return _curve_with_beats(path, np.asarray(time_s), np.asarray(volume_ul), ed_index, es_index,
                             "LV volume (µL)", title, flagged)


def draw_overlay(image_uint8, upper_px, lower_px, thickness_px=None, flagged_columns=None):
    """The grey recording (H, W) as RGB uint8 (H, W, 3) with the upper (red) and lower (blue) cavity
    borders drawn in every column that has them; `thickness_px` defaults to about H / 200 (at least 1).
    `flagged_columns` (bool, W): an orange band, about H / 40 rows (at least 2), along the top edge there."""
    image = np.asarray(image_uint8)
    height, width = image.shape
    rgb = np.repeat(image[:, :, None], 3, axis=2)
    thickness = max(1, height // 200) if thickness_px is None else int(thickness_px)
    for border, colour in ((upper_px, UPPER_COLOUR), (lower_px, LOWER_COLOUR)):
        _draw_border(rgb, border, np.arange(width), thickness, colour)
    if flagged_columns is not None:
        rgb[:max(2, height // 40), np.asarray(flagged_columns, dtype=bool)] = FLAGGED_BAND_COLOUR
    return rgb


def draw_box(image_uint8, box, thickness_px=None):
    """The grey image (H, W) as RGB uint8 with `box` (left, top, right, bottom; right and bottom exclusive) outlined
    in BOX_COLOUR just outside it, `thickness_px` wide (default about H / 200, at least 2), so every pixel inside the
    box keeps its grey; a side on the image's edge has no line."""
    image = np.asarray(image_uint8)
    height, width = image.shape
    rgb = np.repeat(image[:, :, None], 3, axis=2)
    left, top, right, bottom = box
    thickness = max(2, height // 200) if thickness_px is None else int(thickness_px)
    outer = np.zeros((height, width), dtype=bool)
    outer[max(top - thickness, 0):bottom + thickness, max(left - thickness, 0):right + thickness] = True
    outer[top:bottom, left:right] = False
    rgb[outer] = BOX_COLOUR
    return rgb


def save_box(path, image_uint8, box):
    """Write `draw_box` as PNG `path`."""
    return save_png(path, draw_box(image_uint8, box))


def draw_truth(rgb, upper_px, lower_px, dash_px=8):
    """`rgb` (H, W, 3) uint8 with the truth's borders (W,) (NaN: none) drawn in TRUTH_COLOUR over it, dashed
    (`dash_px` columns on, as many off) and thinner than the model's, so both stay visible where they agree."""
    rgb = rgb.copy()
    height, width = rgb.shape[:2]
    columns = np.flatnonzero((np.arange(width) // dash_px) % 2 == 0)
    for border in (upper_px, lower_px):
        _draw_border(rgb, border, columns, max(1, height // 400), TRUTH_COLOUR)
    return rgb


def _draw_border(rgb, border_px, columns, thickness, colour):
    """Paint `border_px` (W,) rows (NaN: none) into `rgb` in place, at `columns` only, `thickness` rows each
    side: the border lies on a pixel edge, so the rows on both sides of it."""
    border = np.asarray(border_px, dtype=float)[columns]
    known = np.isfinite(border)
    rows = np.floor(border[known] + 0.5).astype(int)[:, None] + np.arange(-thickness, thickness)
    cols = np.repeat(columns[known][:, None], rows.shape[1], axis=1)
    inside = (rows >= 0) & (rows < rgb.shape[0])
    rgb[rows[inside], cols[inside]] = colour


def save_png(path, rgb):
    """Write an RGB uint8 image as PNG `path` at OVERLAY_PNG_COMPRESSION."""
    Image.fromarray(rgb).save(path, format="PNG", compress_level=OVERLAY_PNG_COMPRESSION)
    return path


def save_overlay(path, image_uint8, upper_px, lower_px, flagged_columns=None):
    """Write `draw_overlay` as PNG `path`."""
    return save_png(path, draw_overlay(image_uint8, upper_px, lower_px, flagged_columns=flagged_columns))


def plot_study_overview(path, rows):
    """Save one PNG `path` with a row per recording of a study, in order: its LVID (mm) over time (s), each flagged
    beat's end-diastole..end-systole shaded (FLAGGED_SHADE_COLOUR), and its `title` (name and summary) above it; a
    recording that could not be analysed gets its row with its error. `rows`: dicts with `title` and either
    `time_s`, `lvid_mm` (arrays, NaN = gap) and `flagged_spans_s` ([(start, stop)]), or `error`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shade = tuple(channel / 255 for channel in FLAGGED_SHADE_COLOUR)
    height_in = 2 * OVERVIEW_MARGIN_IN + OVERVIEW_HEADER_IN + OVERVIEW_ROW_IN * len(rows)
    figure, axes = plt.subplots(len(rows), 1, figsize=(OVERVIEW_WIDTH_IN, height_in), dpi=OVERVIEW_DPI,
                                squeeze=False)
    # fixed room per row rather than a layout engine: long titles and error lines cannot squeeze the plots away
    figure.subplots_adjust(left=0.06, right=0.99, top=1 - (OVERVIEW_MARGIN_IN + OVERVIEW_HEADER_IN) / height_in,
                           bottom=OVERVIEW_MARGIN_IN / height_in, hspace=0.9)
    for row, axis in zip(rows, axes[:, 0]):
        axis.set_title(textwrap.shorten(row["title"], OVERVIEW_TITLE_CHARS), loc="left", fontsize="small")
        if "error" in row:
            axis.axis("off")
            axis.text(0.0, 0.5, textwrap.shorten(row["error"], OVERVIEW_TITLE_CHARS), transform=axis.transAxes,
                      fontsize="small", color="tab:red", verticalalignment="center")
            continue
        for start_s, stop_s in row["flagged_spans_s"]:
            axis.axvspan(start_s, stop_s, color=shade, linewidth=0, zorder=0)
        axis.plot(row["time_s"], row["lvid_mm"], color="black", linewidth=0.7)
        if len(row["time_s"]):
            axis.set_xlim(row["time_s"][0], row["time_s"][-1])
        axis.set_ylabel("LVID (mm)", fontsize="x-small")
        axis.tick_params(labelsize="x-small")
    figure.text(0.06, 1 - 0.5 * OVERVIEW_HEADER_IN / height_in, "LVID (mm) over time (s), a row per recording; "
                "shaded: flagged beats, left out of the medians", fontsize="small", verticalalignment="center")
    return _save(figure, path)


def bland_altman_figure(rows):
    """A matplotlib figure of Bland-Altman panels, a row per entry of `rows` (dicts with `title` and `panels`), a
    column per panel (dicts with `label` (quantity and unit), `measured` and `reference` (arrays, NaN pairs left
    out) and `agreement` (`mmode.agreement.bland_altman` of them)): each pair's difference (measured - reference)
    against its mean, the bias (solid), the limits of agreement (dashed) and zero (dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(len(row["panels"]) for row in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(3.2 * columns, 3.0 * len(rows)), dpi=100,
                                squeeze=False, layout="constrained")
    for row, row_axes in zip(rows, axes):
        for axis in row_axes[len(row["panels"]):]:
            axis.axis("off")
        for panel, axis in zip(row["panels"], row_axes):
            measured, reference = (np.asarray(panel[key], dtype=float) for key in ("measured", "reference"))
            kept = np.isfinite(measured) & np.isfinite(reference)
            axis.plot((measured[kept] + reference[kept]) / 2, measured[kept] - reference[kept], "o", color="black",
                      markersize=4, alpha=0.7)
            axis.axhline(0.0, color="0.6", linestyle=":", linewidth=0.8)
            agreement = panel["agreement"]
            if agreement["bias"] is not None:
                axis.axhline(agreement["bias"], color=BIAS_COLOUR, linewidth=1.2,
                             label=f"bias {agreement['bias']:+.3g}")
            if agreement["loa_low"] is not None:
                for limit in (agreement["loa_low"], agreement["loa_high"]):
                    axis.axhline(limit, color=LIMITS_COLOUR, linestyle="--", linewidth=1.0)
                axis.plot([], [], color=LIMITS_COLOUR, linestyle="--",
                          label=f"limits {agreement['loa_low']:+.3g} to {agreement['loa_high']:+.3g}")
                axis.legend(loc="best", fontsize="x-small")
            axis.set_title(f"{row['title']}: {panel['label']}, n {agreement['n']}", fontsize="small")
            axis.set_xlabel("mean of tool and reference", fontsize="small")
            axis.set_ylabel("tool - reference", fontsize="small")
            axis.tick_params(labelsize="x-small")
            axis.grid(alpha=0.3)
    return figure


def plot_bland_altman(path, rows):
    """Save `bland_altman_figure(rows)` as PNG `path`."""
    return _save(bland_altman_figure(rows), path)
