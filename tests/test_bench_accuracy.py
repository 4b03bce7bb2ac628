"""bench/accuracy.py's truth windows: cut at the model's time scale, as analysis reads a recording."""
import numpy as np

from bench.accuracy import write_truth_windows
from mmode.io import read_image
from preprocess.simulate import simulate_recording


def test_truth_windows_span_the_models_time_scale_at_any_height(tmp_path):
    # 192 network columns at 2.4 ms: 0.4608 s, 461 columns at 1 ms per column, whatever the height
    for height_px in (400, 700):
        recording = simulate_recording(3, duration_s=1.6, s_per_px=0.001, height_px=height_px,
                                       name=f"rec{height_px}")
        for folder in (tmp_path / f"timed{height_px}", tmp_path / f"square{height_px}"):
            (folder / "img").mkdir(parents=True)
            (folder / "mask").mkdir()
        write_truth_windows(recording, tmp_path / f"timed{height_px}", ms_per_column=2.4, img_width=192)
        write_truth_windows(recording, tmp_path / f"square{height_px}")
        timed = read_image(tmp_path / f"timed{height_px}" / "img" / f"rec{height_px}_win0.png")
        square = read_image(tmp_path / f"square{height_px}" / "img" / f"rec{height_px}_win0.png")
        assert timed.shape == (height_px, 461)
        assert square.shape == (height_px, height_px)
        mask = read_image(tmp_path / f"timed{height_px}" / "mask" / f"rec{height_px}_win0.png")
        assert set(np.unique(mask)) == {0, 255}
