"""Speed of recording analysis, measured side by side in one run.

1. Measuring LVID from a mask: the vectorised `mmode.measure.lvid_px` against a plain per-column Python
   loop that takes each column's longest run (the straightforward way), on the same mask.
2. Whole-recording inference with the default model: tile widths (network px) and batch sizes, on the
   CPU and, where present, on CUDA; seconds of compute per second of recording, and ratios to 8 tiles
   of the default width per pass (the default before session 19; now, with no `-b`, a CPU pass holds
   what fits in `mmode.inference.CPU_PASS_PIXELS`, a GPU pass 8 tiles).
3. The whole analysis of `test.py` (segmentation, borders, beats), without and with the border refiner,
   and with the refiner at 8 tiles per pass (2 for the refiner), as before session 19; then on the CPU with
   the networks in the plain NCHW memory layout (before session 23) against channels-last (`load_model`'s),
   and a training step in both layouts (the trainer uses channels-last on a CPU too).
4. Writing the overlay PNG at PIL's default zlib level (6) and at `mmode.plots.OVERLAY_PNG_COMPRESSION`.

    python bench/speed.py -m checkpoints/heart-seg-net.pt --refiner checkpoints/heart-seg-refine.pt --duration 10
"""
import argparse
import functools
import io
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmode.analysis import DEFAULT_CHECKPOINT, DEFAULT_REFINER  # noqa: E402
from mmode.cli import run_main  # noqa: E402


def longest_run_loop(mask):
    """Reference: each column's longest run of 1s, one Python loop per column and row."""
    lengths = np.full(mask.shape[1], np.nan)
    for column in range(mask.shape[1]):
        best = current = 0
        for value in mask[:, column]:
            current = current + 1 if value else 0
            best = max(best, current)
        if best:
            lengths[column] = best
    return lengths


def best_of(repeats, function, *args, **kwargs):
    """Smallest wall time (s) of `repeats` calls, and the last result."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        times.append(time.perf_counter() - started)
    return min(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--refiner", type=Path, default=DEFAULT_REFINER)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of simulated recording (default 10)")
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    from mmode.analysis import analyse_recording
    from mmode.calibration import Calibration
    from mmode.checkpoint import input_shape, load_model
    from mmode.io import Recording
    from mmode.refine import check_refiner
    from mmode.inference import default_batch_size, default_tile_width, predict_probability
    from mmode.measure import lvid_px
    from mmode.plots import OVERLAY_PNG_COMPRESSION, draw_overlay
    from PIL import Image
    from preprocess.masks import traces_to_mask
    from preprocess.simulate import simulate_recording

    recording = simulate_recording(args.seed, duration_s=args.duration)
    recorded_s = recording.image.shape[1] * recording.s_per_px
    print(f"recording: {recording.image.shape[0]} x {recording.image.shape[1]} px, {recorded_s:.1f} s; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

    mask = traces_to_mask(recording.upper_px, recording.lower_px, recording.image.shape[0])
    loop_s, loop_lvid = best_of(1, longest_run_loop, mask)
    vector_s, vector_lvid = best_of(args.repeats, lvid_px, mask)
    assert np.allclose(loop_lvid, vector_lvid, equal_nan=True), "the two LVID measurements disagree"
    print("\n| LVID from the mask | seconds | ratio |\n| --- | --- | --- |")
    print(f"| per-column Python loop | {loop_s:.3f} | 1 |")
    print(f"| mmode.measure.lvid_px (vectorised) | {vector_s:.4f} | {loop_s / vector_s:.0f}x faster |")

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print("\n| inference | device | tile width (net px) | batch | s per recorded s | ratio to 8 default tiles |")
    print("| --- | --- | --- | --- | --- | --- |")
    for device in devices:
        reference_s = None
        net, checkpoint = load_model(args.model, device)
        img_size = input_shape(checkpoint)
        default_width = default_tile_width(img_size[1])
        default_batch = default_batch_size(device, img_size[0] * default_width)
        settings = [(default_width, 8), (default_width, 1), (default_width, 2), (4 * default_width, 1),
                    (4 * default_width, 2), (4 * default_width, 8)]
        for tile_width, batch_size in settings:
            predict_probability(net, recording.image[:, :2000], img_size, device, tile_width=tile_width,
                                batch_size=batch_size)  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            seconds, _ = best_of(args.repeats, predict_probability, net, recording.image, img_size, device,
                                 tile_width=tile_width, batch_size=batch_size)
            reference_s = seconds if reference_s is None else reference_s
            label = "default" if tile_width == default_width and batch_size == default_batch else ""
            print(f"| {label} | {device} | {tile_width} | {batch_size} | {seconds / recorded_s:.3f} | "
                  f"{reference_s / seconds:.2f}x |")

    print("\n| analysis (test.py) | device | s per recorded s | ratio to segmentation alone |")
    print("| --- | --- | --- | --- |")
    as_recording = Recording(image=recording.image, path=Path("speed.png"),
                             calibration=Calibration(recording.mm_per_px, recording.s_per_px, "user"))
    for device in devices:
        net, checkpoint = load_model(args.model, device)
        refiner_net, refiner_checkpoint = load_model(args.refiner, device)
        refiner = refiner_net, check_refiner(refiner_checkpoint, args.refiner)
        alone_s = None
        runs = (("segmentation alone (--no-refine)", None, None), ("with the border refiner", refiner, None),
                ("with the border refiner, -b 8", refiner, 8))
        for label, chosen, batch_size in runs:
            seconds, _ = best_of(args.repeats, analyse_recording, as_recording, net, input_shape(checkpoint), device,
                                 batch_size, refiner=chosen)
            alone_s = seconds if alone_s is None else alone_s
            print(f"| {label} | {device} | {seconds / recorded_s:.3f} | {seconds / alone_s:.2f}x |")

    print("\n| memory layout (CPU, 1 tile per pass) | analysis | s per recorded s | ratio to plain |")
    print("| --- | --- | --- | --- |")
    layouts = (("plain (NCHW)", functools.partial(load_model, channels_last=False)),
               ("channels-last (the default on a CPU)", load_model))
    for label, refine in (("segmentation alone", False), ("with the border refiner", True)):
        plain_s = None
        for layout, load in layouts:
            net, checkpoint = load(args.model, "cpu")
            refiner_net, refiner_checkpoint = load(args.refiner, "cpu")
            chosen = (refiner_net, check_refiner(refiner_checkpoint, args.refiner)) if refine else None
            seconds, _ = best_of(args.repeats, analyse_recording, as_recording, net, input_shape(checkpoint), "cpu",
                                 None, refiner=chosen)
            plain_s = seconds if plain_s is None else plain_s
            print(f"| {layout} | {label} | {seconds / recorded_s:.3f} | {plain_s / seconds:.2f}x faster |")

    print("\n| memory layout (CPU) | training step (batch 8 of 256 x 96, as the default model's fine-tuning) | "
          "seconds | ratio to plain |")
    print("| --- | --- | --- | --- |")
    plain_s = None
    for layout, load in layouts:
        net, _ = load(args.model, "cpu")
        step = training_step(net.train())
        step()  # the optimiser's state is made on the first step
        seconds = best_of(args.repeats, step)[0]
        plain_s = seconds if plain_s is None else plain_s
        print(f"| {layout} | forward, backward and an Adam step | {seconds:.3f} | {plain_s / seconds:.2f}x faster |")

    print("\n| overlay PNG | zlib level | seconds | MB | ratio to level 6 |")
    print("| --- | --- | --- | --- | --- |")
    overlay = Image.fromarray(draw_overlay(recording.image, recording.upper_px, recording.lower_px))
    level6_s = None
    for level in (6, OVERLAY_PNG_COMPRESSION):
        seconds, size = best_of(args.repeats, png_bytes, overlay, level)
        level6_s = seconds if level6_s is None else level6_s
        label = "default" if level == OVERLAY_PNG_COMPRESSION else "PIL's default"
        print(f"| {label} | {level} | {seconds:.3f} | {size / 1e6:.2f} | {level6_s / seconds:.2f}x |")
    return 0


def training_step(net, seed=0):
    """A function that makes one training step of `net` (BCE, Adam) on a fixed random batch of 8 windows of
    256 x 96 (the default model's fine-tuning crop)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(8, 1, 256, 96, generator=generator)
    masks = (torch.rand(8, 1, 256, 96, generator=generator) > 0.5).float()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(net(images), masks).backward()
        optimizer.step()

    return step


def png_bytes(image, level):
    """Size in bytes of `image` written as PNG at zlib `level`."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=level)
    return buffer.tell()


if __name__ == "__main__":
    sys.exit(run_main(main))
