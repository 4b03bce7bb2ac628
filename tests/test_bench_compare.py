"""bench/compare.py: two models' accuracy JSONs of the same recordings, paired by recording."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.compare import compare_set

ROOT = Path(__file__).resolve().parents[1]


def _recordings(column_mae, lvid_s=None, columns=None):
    n = len(column_mae)
    lvid_s = [0.05] * n if lvid_s is None else lvid_s
    columns = [1000] * n if columns is None else columns
    return [dict(name=f"bench_clean_{i:03d}", condition="x", lvid_column_mae_mm=float(column_mae[i]),
                 measured_columns=int(columns[i]), lvid_d_mm_error=0.02, lvid_s_mm_error=lvid_s[i],
                 ef_pct_error=1.0, hr_pct_error=None) for i in range(n)]


def _accuracy_json(path, recordings, seed=9600, model="m.pt"):
    path.write_text(json.dumps(dict(model=model, generator="alt", seed=seed, n=len(recordings), duration_s=3.0,
                                    figures=dict(clean=dict(per_recording=recordings)))))
    return path


def test_a_model_better_on_every_recording_by_the_same_amount_is_better_by_exactly_that():
    first = np.random.default_rng(0).uniform(0.02, 0.06, 20)
    rows = compare_set(_recordings(first), _recordings(first - 0.005))
    row = rows["lvid_column_mae_mm"]
    assert row["difference"] == pytest.approx(-0.005)
    assert row["difference_ci95"] == pytest.approx([-0.005, -0.005])
    assert row["second_better"] == 20 and row["recordings"] == 20
    assert rows["hr_pct_error"] is None  # not measured in either


def test_a_difference_that_is_only_the_draw_of_recordings_has_an_interval_holding_zero():
    rng = np.random.default_rng(3)
    first = rng.uniform(0.02, 0.06, 20)
    shuffled = first + rng.choice([-0.01, 0.01], 20)  # as often better as worse
    row = compare_set(_recordings(first), _recordings(shuffled))["lvid_column_mae_mm"]
    low, high = row["difference_ci95"]
    assert low < 0 < high
    assert high - low > 0.005


def test_the_per_column_mae_is_pooled_over_measured_columns():
    first = _recordings([0.0, 0.1], columns=[300, 100])
    second = _recordings([0.0, 0.0], columns=[300, 100])
    row = compare_set(first, second)["lvid_column_mae_mm"]
    assert row["first"] == pytest.approx(0.025) and row["second"] == 0.0


def test_the_budget_classes_say_which_way_a_model_moved_its_error():
    # the second model trades posterior-inward error for as much posterior-outward error: the per-column MAE stays,
    # and the two classes move by the same amount in opposite directions, pooled over columns as the MAE is
    first, second = _recordings([0.04, 0.02], columns=[300, 100]), _recordings([0.04, 0.02], columns=[300, 100])
    for row, inward, outward in zip(first, (0.02, 0.01), (0.01, 0.0)):
        row["error_budget_mm"] = dict(within_target=0.01, septal_inward=0.0, septal_outward=0.0,
                                      posterior_inward=inward, posterior_outward=outward)
    for row, inward, outward in zip(second, (0.005, 0.0), (0.025, 0.01)):
        row["error_budget_mm"] = dict(within_target=0.01, septal_inward=0.0, septal_outward=0.0,
                                      posterior_inward=inward, posterior_outward=outward)
    rows = compare_set(first, second)
    assert rows["lvid_column_mae_mm"]["difference"] == pytest.approx(0.0)
    assert rows["error_budget_mm.posterior_inward"]["first"] == pytest.approx((300 * 0.02 + 100 * 0.01) / 400)
    assert rows["error_budget_mm.posterior_inward"]["difference"] == pytest.approx(-(300 * 0.015 + 100 * 0.01) / 400)
    assert rows["error_budget_mm.posterior_outward"]["difference"] == pytest.approx((300 * 0.015 + 100 * 0.01) / 400)
    assert rows["error_budget_mm.posterior_outward"]["second_better"] == 0
    assert rows["error_budget_mm.within_target"]["difference"] == 0.0
    # JSONs written before the budget existed pair as before, the budget rows empty
    assert compare_set(_recordings([0.03, 0.04]), _recordings([0.02, 0.03]))["error_budget_mm.septal_inward"] is None


def _run(*args):
    return subprocess.run([sys.executable, "bench/compare.py", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True)


def test_the_command_prints_and_writes_the_comparison(tmp_path):
    a = _accuracy_json(tmp_path / "a.json", _recordings([0.03, 0.04, 0.05], lvid_s=[0.05, 0.1, None]))
    b = _accuracy_json(tmp_path / "b.json", _recordings([0.02, 0.03, 0.04], lvid_s=[0.04, 0.05, 0.02]), model="b.pt")
    result = _run(a, b, "--out", tmp_path / "out" / "c.json")
    assert result.returncode == 0, result.stderr
    assert "| LVID per column MAE (mm) | 0.0400 | 0.0300 | -0.0100 (-0.0100 to -0.0100) | 3 of 3 |" in result.stdout
    assert "| of which: posterior border read outward (mm) | n/a | n/a | n/a | n/a |" in result.stdout
    written = json.loads((tmp_path / "out" / "c.json").read_text())
    # the recording without an LVIDs in the first model is left out of that figure
    assert written["sets"]["clean"]["lvid_s_mm_error"]["recordings"] == 2


def test_models_measured_on_different_recordings_are_refused(tmp_path):
    a = _accuracy_json(tmp_path / "a.json", _recordings([0.03, 0.04]))
    b = _accuracy_json(tmp_path / "b.json", _recordings([0.03, 0.04]), seed=9400)
    result = _run(a, b, "--out", tmp_path / "c.json")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {b}: seed 9400 differs from {a}'s 9600; compare models "
                                                  "on the same recordings"]
    assert not (tmp_path / "c.json").exists()


def test_models_measured_on_different_recording_folders_are_refused(tmp_path):
    def folder_json(path, folder):  # as accuracy.py --recordings writes it: no generator, no seed
        path.write_text(json.dumps(dict(model="m.pt", recordings=folder, n=2,
                                        figures=dict(lab=dict(per_recording=_recordings([0.03, 0.04]))))))
        return path

    a, b = folder_json(tmp_path / "a.json", "lab"), folder_json(tmp_path / "b.json", "other")
    result = _run(a, b)
    assert result.returncode == 2 and "recordings 'other' differs from" in result.stderr
    same = _run(a, folder_json(tmp_path / "c.json", "lab"))
    assert same.returncode == 0, same.stderr
    assert "recordings from lab" in same.stdout.splitlines()[0]


@pytest.mark.parametrize("content, problem", [(None, "no such file"), ("{", "not a JSON file"),
                                              ("[]", "not written by bench/accuracy.py")])
def test_a_file_that_is_not_an_accuracy_json_is_named(tmp_path, content, problem):
    a = _accuracy_json(tmp_path / "a.json", _recordings([0.03, 0.04]))
    b = tmp_path / "b.json"
    if content is not None:
        b.write_text(content)
    result = _run(a, b)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {b}: {problem}")


def test_the_header_names_each_pair_with_its_refiner():
    from bench.compare import describe

    assert describe(dict(model="m.pt", refiner="r.pt")) == "m.pt with refiner r.pt"
    assert describe(dict(model="m.pt", refiner=None)) == "m.pt without refiner"
    assert describe(dict(model="m.pt")) == "m.pt"  # written before the refiner was recorded
    # runs with fixed pixel sizes (same seeds, other pixel size) say so
    assert describe(dict(model="m.pt", refiner=None, mm_per_px=0.02, height_px=300)) == \
        "m.pt without refiner, mm_per_px 0.02, height_px 300"


def test_the_same_seeds_at_another_pixel_size_pair(tmp_path):
    a = _accuracy_json(tmp_path / "a.json", _recordings([0.03, 0.04]))
    b = tmp_path / "b.json"
    b.write_text(json.dumps(dict(json.loads(a.read_text()), mm_per_px=0.02,
                                 figures=dict(clean=dict(per_recording=_recordings([0.05, 0.06]))))))
    result = _run(a, b)
    assert result.returncode == 0, result.stderr
    assert "second: m.pt, mm_per_px 0.02" in result.stdout
    assert "| LVID per column MAE (mm) | 0.0350 | 0.0550 | +0.0200 (0.0200 to 0.0200) | 0 of 2 |" in result.stdout
