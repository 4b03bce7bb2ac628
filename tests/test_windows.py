"""Windows along time: the tiling rule, and a whole data set built in-process (names, crops, split)."""
import json

import numpy as np
import pytest
from PIL import Image

from mmode.errors import InputError
from mmode.io import read_image
from preprocess.build import build_dataset, split_recordings
from preprocess.masks import annotation_mask
from preprocess.windows import cut_windows, window_starts


def test_windows_tile_only_the_span_and_the_last_is_aligned_to_its_end():
    starts = window_starts((100, 1100), side=256, stride=128)
    np.testing.assert_array_equal(starts, [100, 228, 356, 484, 612, 740, 844])
    assert starts[0] == 100 and starts[-1] + 256 == 1100


def test_exact_fit_adds_no_extra_window_and_a_narrow_span_gives_none():
    np.testing.assert_array_equal(window_starts((0, 40), side=20, stride=10), [0, 10, 20])
    np.testing.assert_array_equal(window_starts((5, 25), side=20, stride=10), [5])
    assert window_starts((5, 24), side=20, stride=10).size == 0


def test_cut_windows_are_the_crops_of_image_and_mask():
    image = np.random.default_rng(0).integers(0, 256, size=(16, 70), dtype=np.uint8)
    mask = np.zeros_like(image)
    mask[5:9, 3:65] = 1
    windows = cut_windows(image, mask, (3, 65), stride=None)
    assert [w.start_px for w in windows] == [3, 11, 19, 27, 35, 43, 49]
    assert [w.index for w in windows] == list(range(7))
    for window in windows:
        np.testing.assert_array_equal(window.image, image[:, window.start_px:window.start_px + 16])
        np.testing.assert_array_equal(window.mask, mask[:, window.start_px:window.start_px + 16])


def test_windows_cut_by_time_take_the_whole_height_and_step_by_half_their_width():
    image = np.random.default_rng(1).integers(0, 256, size=(40, 100), dtype=np.uint8)
    mask = np.zeros_like(image)
    mask[24:30, :] = 1
    windows = cut_windows(image, mask, (0, 100), columns=30)
    assert [w.start_px for w in windows] == [0, 15, 30, 45, 60, 70]
    for window in windows:
        assert window.top_px == 0
        np.testing.assert_array_equal(window.image, image[:, window.start_px:window.start_px + 30])
        np.testing.assert_array_equal(window.mask, mask[:, window.start_px:window.start_px + 30])


def test_tall_image_gives_a_width_square_centred_on_the_cavity():
    image = np.arange(40 * 10, dtype=np.uint32).reshape(40, 10).astype(np.uint8)
    mask = np.zeros_like(image)
    mask[24:30, :] = 1
    (window,) = cut_windows(image, mask, (0, 10))
    assert window.image.shape == (10, 10) and window.top_px == 21
    np.testing.assert_array_equal(window.mask, mask[21:31])


def make_recordings(folder, widths, height=24, seed=0):
    """Noise recordings `rec<i>.png` and a CSV whose straight traces cover columns 5..width-6."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, rows = {}, []
    for number, width in enumerate(widths):
        name = f"rec{number}"
        images[name] = rng.integers(0, 256, size=(height, width), dtype=np.uint8)
        Image.fromarray(images[name]).save(folder / f"{name}.png")
        last = width - 6
        rows += [f"{name},upper,5,6", f"{name},upper,{last // 2},7", f"{name},upper,{last},6",
                 f"{name},lower,5,17.5", f"{name},lower,{last},18.5"]
    annotations = folder / "annotations.csv"
    annotations.write_text("image,trace,x,y\n" + "\n".join(rows) + "\n")
    return images, annotations


def test_built_windows_pair_up_and_equal_the_original_crops(tmp_path):
    images, annotations = make_recordings(tmp_path / "in", widths=[100, 60])
    summary = build_dataset(tmp_path / "in", annotations, tmp_path / "data", progress=False)

    img_names = sorted(p.name for p in (tmp_path / "data" / "img").iterdir())
    mask_names = sorted(p.name for p in (tmp_path / "data" / "mask").iterdir())
    assert img_names == mask_names
    # side 24, stride 12; rec0 span 5..94 (90 columns): starts 5,17,...,65 and 71; rec1 span 5..54: 5,17,29,31
    assert summary["windows"] == len(img_names) == 7 + 4
    assert summary["columns_covered"] == 90 + 50
    traces = {"upper": ([5, 47, 94], [6, 7, 6]), "lower": ([5, 94], [17.5, 18.5])}
    mask0, _ = annotation_mask("rec0", traces, (24, 100))
    for k, start in enumerate([5, 17, 29, 41, 53, 65, 71]):
        np.testing.assert_array_equal(read_image(tmp_path / "data" / "img" / f"rec0_win{k}.png"),
                                      images["rec0"][:, start:start + 24])
        np.testing.assert_array_equal(read_image(tmp_path / "data" / "mask" / f"rec0_win{k}.png"),
                                      mask0[:, start:start + 24] * 255)
    recorded = json.loads((tmp_path / "data" / "summary.json").read_text())
    assert recorded["per_recording"]["rec1"]["span"] == [5, 55]


def test_split_is_by_recording_and_seeded(tmp_path):
    _, annotations = make_recordings(tmp_path / "in", widths=[60] * 5)
    summary = build_dataset(tmp_path / "in", annotations, tmp_path / "data", split_pct=40, seed=3, progress=False)
    parts = {}
    for part in ("train", "test"):
        names = {p.name for p in (tmp_path / "data" / part / "img").iterdir()}
        assert names == {p.name for p in (tmp_path / "data" / part / "mask").iterdir()}
        parts[part] = {name.split("_win")[0] for name in names}
    assert len(parts["test"]) == 2 and len(parts["train"]) == 3
    assert not parts["test"] & parts["train"]
    assert split_recordings([f"rec{i}" for i in range(5)], 40, 3)[1] == sorted(parts["test"])
    assert summary["windows"] == 5 * 4


def test_narrow_span_and_unannotated_recordings_are_skipped_with_a_reason(tmp_path):
    _, annotations = make_recordings(tmp_path / "in", widths=[60, 30])
    Image.fromarray(np.zeros((24, 50), dtype=np.uint8)).save(tmp_path / "in" / "extra.png")
    summary = build_dataset(tmp_path / "in", annotations, tmp_path / "data", progress=False)
    assert summary["recordings"] == 1
    assert summary["skipped"] == {"extra": "no annotations",
                                  "rec1": "annotated span 20 columns is narrower than the 24 px window"}


def test_non_empty_output_is_refused_unless_overwrite(tmp_path):
    _, annotations = make_recordings(tmp_path / "in", widths=[60])
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match=r"data: folder exists and is not empty"):
        build_dataset(tmp_path / "in", annotations, out, progress=False)
    build_dataset(tmp_path / "in", annotations, out, overwrite=True, progress=False)
    assert not (out / "keep.txt").exists() and (out / "img" / "rec0_win0.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "in"]


def test_annotation_of_a_missing_recording_is_refused_before_writing(tmp_path):
    _, annotations = make_recordings(tmp_path / "in", widths=[60])
    with annotations.open("a") as file:
        file.write("ghost,upper,0,1\nghost,upper,5,1\n")
    with pytest.raises(InputError, match=r"annotations\.csv: recording\(s\) ghost not found"):
        build_dataset(tmp_path / "in", annotations, tmp_path / "data", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
