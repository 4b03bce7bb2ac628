"""bench/edges.py: where a generator's truth borders lie against its images' edges, on images whose edges are
known."""
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bench.edges import edge_offsets_mm, half_way_offset_mm, OFFSETS_MM

ROOT = Path(__file__).resolve().parents[1]
MM_PER_PX = 0.02


def band_recording(upper_px, lower_px, image_upper_px, image_lower_px, blur_px=0.0, width=50, height=200):
    """A recording whose truth borders are rows `upper_px`, `lower_px` and whose image is dark (20) between
    `image_upper_px` and `image_lower_px` and bright (200) outside, blurred along depth by a Gaussian of
    `blur_px` (symmetric, so the half-way crossing stays at the image's edge); a row on an edge is grey by the
    share of it inside the band."""
    rows = np.arange(height, dtype=float)
    # each row's share of [row - 0.5, row + 0.5] inside the dark band: edges at sub-pixel positions
    cavity = np.clip(np.minimum(rows + 0.5, image_lower_px) - np.maximum(rows - 0.5, image_upper_px), 0, 1)
    if blur_px > 0:
        taps = np.arange(-int(4 * blur_px), int(4 * blur_px) + 1)
        kernel = np.exp(-0.5 * (taps / blur_px) ** 2)
        cavity = np.convolve(np.pad(cavity, taps.size // 2, mode="edge"), kernel / kernel.sum(), mode="valid")
    image = np.repeat((200 - 180 * cavity)[:, None], width, axis=1)
    return SimpleNamespace(image=image, upper_px=np.full(width, float(upper_px)),
                           lower_px=np.full(width, float(lower_px)), mm_per_px=MM_PER_PX)


@pytest.mark.parametrize("blur_px", [0.0, 1.5, 3.0])
def test_truth_on_the_images_edges_gives_no_offset_whatever_the_symmetric_blur(blur_px):
    upper_mm, lower_mm = edge_offsets_mm(band_recording(60.0, 140.0, 60.0, 140.0, blur_px))
    assert upper_mm == pytest.approx(0.0, abs=0.15 * MM_PER_PX)
    assert lower_mm == pytest.approx(0.0, abs=0.15 * MM_PER_PX)


def test_a_truth_beneath_the_visible_edges_reads_as_negative_offsets_of_that_size():
    # the image's dark band is 3 rows narrower at the top and 5 rows at the bottom than the truth's cavity
    upper_mm, lower_mm = edge_offsets_mm(band_recording(60.0, 140.0, 63.0, 135.0, blur_px=1.0))
    assert upper_mm == pytest.approx(-3 * MM_PER_PX, abs=0.15 * MM_PER_PX)
    assert lower_mm == pytest.approx(-5 * MM_PER_PX, abs=0.15 * MM_PER_PX)
    # and one lying inside the wall (the dark band wider than the truth's cavity) as positive ones
    upper_mm, lower_mm = edge_offsets_mm(band_recording(60.0, 140.0, 58.0, 142.0, blur_px=1.0))
    assert upper_mm == pytest.approx(2 * MM_PER_PX, abs=0.15 * MM_PER_PX)
    assert lower_mm == pytest.approx(2 * MM_PER_PX, abs=0.15 * MM_PER_PX)


def test_no_wall_brighter_than_the_cavity_gives_nan():
    assert np.isnan(half_way_offset_mm(np.full(OFFSETS_MM.size, 100.0)))
    assert np.isnan(half_way_offset_mm(np.linspace(200, 20, OFFSETS_MM.size)))


def test_the_command_prints_and_writes_each_recordings_offsets(tmp_path):
    out = tmp_path / "edges.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "edges.py"), "--generator", "alt", "--n", "2",
                          "--duration", "0.5", "--sets", "clean", "--seed", "3", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    written = json.loads(out.read_text())
    assert written["generator"] == "alt" and [row["name"] for row in written["sets"]["clean"]] == [
        "bench_clean_000", "bench_clean_001"]
    for row in written["sets"]["clean"]:
        # altsim blurs its walls symmetrically in amplitude: its edges lie within a few rows of the truth
        assert abs(row["septum_mm"]) < 5 * row["mm_per_px"] and abs(row["posterior_mm"]) < 0.3
    assert "median" in run.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "edges.py"), "--n", "0"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "--n must be at least 1" in bad.stderr
