"""run.py: help and argument errors without torch, errors as one line, Ctrl-C, and a run end to end."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SIZE_PX = 40


def run_script(*args, cwd=REPO):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(REPO / "run.py"), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def make_dataset(folder, n_recordings=3, n_windows=2):
    """Band images (dark cavity in a bright image) and their 0/255 masks, `<recording>_win<k>.png`."""
    (folder / "img").mkdir(parents=True)
    (folder / "mask").mkdir(parents=True)
    for recording in range(n_recordings):
        for window in range(n_windows):
            top_px = 8 + 2 * recording + window
            image = np.full((SIZE_PX, SIZE_PX), 200, np.uint8)
            image[top_px:30] = 40
            mask = np.zeros((SIZE_PX, SIZE_PX), np.uint8)
            mask[top_px:30] = 255
            Image.fromarray(image).save(folder / "img" / f"rec{recording}_win{window}.png")
            Image.fromarray(mask).save(folder / "mask" / f"rec{recording}_win{window}.png")
    return folder


def test_help_answers_without_importing_torch():
    probe = ("import runpy, sys\n"
             "sys.argv = ['run.py', '--help']\n"
             "try:\n"
             "    runpy.run_path('run.py', run_name='__main__')\n"
             "except SystemExit as exit:\n"
             "    print('exit', exit.code)\n"
             "print('torch loaded:', 'torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "exit 0" in result.stdout
    assert "torch loaded: False" in result.stdout
    for flag in ("--data", "--epochs", "--batch-size", "--img-size", "--lr", "--load", "--val", "--output",
                 "--num-filters", "--kernel", "--se-block", "--dropout", "--augment", "--seed", "--workers",
                 "--device", "--amp", "--resume", "--quiet", "--overwrite"):
        assert flag in result.stdout


def test_missing_data_folder_is_an_argument_error():
    result = run_script("-d", "no_such_folder")
    assert result.returncode == 2
    assert "error:" in result.stderr and "no_such_folder" in result.stderr


def test_bad_flags_are_argument_errors(tmp_path):
    from run import main

    data = make_dataset(tmp_path / "data")
    for args, message in ((["-p", "40"], "multiple of 16"), (["-v", "100"], "percentage"),
                          (["--kernel", "4"], "odd"), (["--device", "gpu"], "cuda"),
                          (["--img-width", "24"], "multiple of 16"), (["--train-crop", "8"], "at least 32"),
                          (["--interior-weight", "0"], "> 0"), (["--column-weight", "-1"], "must lie in")):
        with pytest.raises(SystemExit) as exit_info:
            main(["-d", str(data), *args])
        assert exit_info.value.code == 2, args


def test_defaults_are_the_seeds():
    from run import build_parser, options_from_args

    args = build_parser().parse_args(["-d", "."])
    assert (args.epochs, args.batch_size, args.img_size, args.lr, args.val) == (1, 1, 256, 0.001, 20.0)
    options = options_from_args(args)
    assert options.img_width is None and options.train_crop is None  # square and whole, as the seed
    assert options.interior_weight == 1.0 and options.column_weight == 0.0  # the seed's plain BCE
    assert options.widen is False  # -f loads a network of the same shape
    assert options_from_args(build_parser().parse_args(["-d", ".", "--widen"])).widen is True
    assert options_from_args(build_parser().parse_args(["-d", ".", "--interior-weight", "4"])).interior_weight == 4
    assert options_from_args(build_parser().parse_args(["-d", ".", "--column-weight", "2"])).column_weight == 2
    options = options_from_args(build_parser().parse_args(["-d", ".", "--img-width", "192", "--train-crop", "96"]))
    assert (options.img_width, options.train_crop) == (192, 96)
    assert options.output_dir == Path("checkpoints")
    assert options.model_params == dict(num_filters=64, kernel_h=5, kernel_w=5, se_block="NONE", drop_out=0.2)


def test_resume_writes_beside_its_checkpoint_unless_told(tmp_path):
    from run import build_parser, options_from_args

    checkpoint = tmp_path / "run1" / "INTERRUPTED.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    args = build_parser().parse_args(["-d", ".", "--resume", str(checkpoint), "--se-block", "csse"])
    options = options_from_args(args)
    assert options.output_dir == checkpoint.parent
    assert options.model_params["se_block"] == "CSSE"
    args = build_parser().parse_args(["-d", ".", "--resume", str(checkpoint), "-o", str(tmp_path / "other")])
    assert options_from_args(args).output_dir == tmp_path / "other"


def spoil_mask_missing(data):
    (data / "mask" / "rec1_win0.png").unlink()
    return "rec1_win0.png: missing"


def spoil_mask_as_labels(data):
    labels = (np.array(Image.open(data / "mask" / "rec1_win0.png")) > 0).astype(np.uint8)
    labels[:4] = 2  # a third class: thresholded at 128 this mask would come out empty
    Image.fromarray(labels).save(data / "mask" / "rec1_win0.png")
    return "rec1_win0.png: holds the values 0, 1, 2"


@pytest.mark.parametrize("spoil", [spoil_mask_missing, spoil_mask_as_labels], ids=["missing", "label image"])
def test_a_bad_mask_is_one_error_line_and_nothing_is_trained(tmp_path, capsys, spoil):
    pytest.importorskip("torch")
    from mmode.cli import run_main
    from run import main

    data = make_dataset(tmp_path / "data")
    expected = spoil(data)
    with pytest.raises(SystemExit) as exit_info:
        run_main(main, ["-d", str(data), "-p", "32", "--num-filters", "4", "-o", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: ") and expected in error
    assert not (tmp_path / "out").exists()


def test_ctrl_c_exits_130_and_says_how_to_resume(tmp_path, caplog, monkeypatch):
    torch = pytest.importorskip("torch")
    import trainer
    from run import main

    def interrupted_epoch(self, epoch):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.Trainer, "train_epoch", interrupted_epoch)
    torch.set_num_threads(1)
    data = make_dataset(tmp_path / "data")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["-d", str(data), "-p", "32", "--num-filters", "4", "-o", str(out), "--quiet"])
    assert exit_info.value.code == 130
    assert (out / "INTERRUPTED.pt").is_file()
    assert f"--resume {out / 'INTERRUPTED.pt'}" in caplog.text


def test_training_end_to_end(tmp_path):
    data = make_dataset(tmp_path / "data")
    out = tmp_path / "out"
    result = run_script("-d", data, "-e", "2", "-b", "2", "-p", "32", "--num-filters", "4", "-o", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert len(list(out.glob("CP_best_e*.pt"))) == 1
    assert (out / "CP_last_e2.pt").is_file()
    with open(out / "history.csv", newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2"]

    again = run_script("-d", data, "-p", "32", "--num-filters", "4", "-o", out, "--quiet")
    assert again.returncode == 2
    assert "already holds a training run" in again.stderr and "--overwrite" in again.stderr
