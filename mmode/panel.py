"""Finding the M-mode panel in a scanner's screenshot (`test.py --crop auto`).

A screenshot holds the M-mode panel on a surround of one grey level (the display's backdrop), with labels, scale bars,
tick marks and the ECG drawn on that surround around it. The panel is told from them by shape: it is the one
rectangle whose rows and columns are mostly image. A pixel that differs from the surround by more than
SURROUND_TOLERANCE grey levels is image ("content"). Then, in turns until the box stops moving:

- columns: over the box's rows, the longest run of *dense* columns (content in at least DENSE_SHARE of the 90th
  percentile column's share, and not *flat*: FLAT_SHARE of their content pixels the grey of the one before, as
  along a scale bar's line), widened over the *occupied* columns beside it (one pixel more than CLEAR_TOLERANCE
  from the surround, or content in OCCUPIED_SHARE of them);
- rows: over those columns, from the first to the last run of dense rows at least MIN_RUN_PX long (a cavity can be
  as dark as the surround from one edge of the panel to the other, which splits the panel in two), widened the same
  way.

A label, a scale bar, a tick or an ECG trace separated from the panel by a line of bare surround stays outside; one
that touches the panel is taken in with it. Where the panel's outermost rows are as dark as the surround (a display
floor under the deepest tissue, a dim near field), the box ends at the first such row, and what lies beyond it is
left out: that moves the depth of row 0, not the distance between the borders. An image without a surround (the
M-mode image alone: a DICOM's region, a figure's strip) is its own panel.
"""
import numpy as np

SURROUND_TOLERANCE = 2  # grey levels: a lossless screenshot's backdrop is exact
# The image has a surround when one grey level fills this share of three of its four outermost lines (a title bar
# may run along the fourth)
SURROUND_MIN_SHARE = 0.75
SURROUND_MIN_SIDES = 3
DENSE_SHARE = 0.5
FLAT_SHARE = 0.9
MIN_RUN_PX = 4
# Occupied: a pixel this far from the surround (an echo; the ringing a JPEG of quality 90 leaves 2 px beside a label
# reached 10 grey levels on bench/screenshots.py's screens, and would otherwise bridge the gap), or this share of
# content.
CLEAR_TOLERANCE = 16
OCCUPIED_SHARE = 0.1
MAX_TURNS = 8


def surround_grey(image):
    """The surround's grey level in uint8 `image`: the commonest grey of its outermost rows and columns, when it fills
    SURROUND_MIN_SHARE (within SURROUND_TOLERANCE) of at least SURROUND_MIN_SIDES of the four; else None."""
    sides = (image[0], image[-1], image[:, 0], image[:, -1])
    grey = int(np.bincount(np.concatenate(sides), minlength=256).argmax())
    filled = sum(np.mean(np.abs(side.astype(np.int16) - grey) <= SURROUND_TOLERANCE) >= SURROUND_MIN_SHARE
                 for side in sides)
    return grey if filled >= SURROUND_MIN_SIDES else None


def find_panel(image):
    """The M-mode panel's box (left, top, right, bottom) in uint8 `image` (H, W), right and bottom exclusive; the
    whole image when it has no surround (`surround_grey`); None when nothing on the surround is dense enough in
    both directions to be a panel."""
    image = np.asarray(image)
    height, width = image.shape
    surround = surround_grey(image)
    if surround is None:
        return 0, 0, width, height
    distance = np.abs(image.astype(np.int16) - surround)
    content, clear = distance > SURROUND_TOLERANCE, distance > CLEAR_TOLERANCE
    box = (0, 0, width, height)
    for _ in range(MAX_TURNS):
        left, top, right, bottom = box
        columns = _panel_span(image[top:bottom].T, content[top:bottom].T, clear[top:bottom].T, first_to_last=False)
        if columns is None:
            return None
        within = slice(columns[0], columns[1])
        rows = _panel_span(image[:, within], content[:, within], clear[:, within], first_to_last=True)
        if rows is None:
            return None
        found = (columns[0], rows[0], columns[1], rows[1])
        if found == box:
            break
        box = found
    return box


def _panel_span(lines, content, clear, first_to_last):
    """(start, end) of the panel along the lines of `lines` (N, M) uint8 with bool `content` and `clear` (N, M): the
    longest run of dense lines (with `first_to_last`: from the first run of dense lines to the last), widened over
    the lines next to it that hold a `clear` pixel; None without a run of MIN_RUN_PX dense lines."""
    share = content.mean(axis=1)
    dense = (share >= DENSE_SHARE * np.percentile(share, 90)) & (share > 0) & ~_flat_lines(lines, content)
    runs = [(start, end) for start, end in _runs(dense) if end - start >= MIN_RUN_PX]
    if not runs:
        return None
    start, end = (runs[0][0], runs[-1][1]) if first_to_last else max(runs, key=lambda run: run[1] - run[0])
    occupied = clear.any(axis=1) | (share >= OCCUPIED_SHARE)
    while start > 0 and occupied[start - 1]:
        start -= 1
    while end < len(share) and occupied[end]:
        end += 1
    return int(start), int(end)


def _flat_lines(lines, content):
    """Bool (N,): lines of `lines` (N, M) uint8 along which FLAT_SHARE of the content pixels have the grey of the
    pixel before them (a drawn line or bar, not an echo's speckle)."""
    same = (lines[:, 1:] == lines[:, :-1]) & content[:, 1:] & content[:, :-1]
    total = content.sum(axis=1)
    return (total > 0) & (same.sum(axis=1) >= FLAT_SHARE * total)


def _runs(flags):
    """[(start, end)] of the runs of True in bool `flags` (N,), end exclusive."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))
