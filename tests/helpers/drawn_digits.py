"""Digits drawn with Pillow's own font: pictures for predict.py, and an MNIST-style set to train on."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from helpers import TEST_FILES, TRAIN_FILES, write_idx
from mnistlab.data.pictures import to_mnist


def draw_digit(
    digit: int, rng: np.random.Generator, side: int = 96, dark_on_light: bool = False, colour: bool = False
) -> Image.Image:
    """A digit of random size, thickness, slant and place on a canvas of `side` pixels."""
    font = ImageFont.load_default(size=int(side * rng.uniform(0.45, 0.8)))
    ink, paper = ((20, 30, 120), (245, 240, 225)) if colour else (255, 0)
    if dark_on_light and not colour:
        ink, paper = 10, 235
    if colour and not dark_on_light:
        ink, paper = paper, ink
    canvas = Image.new("RGB" if colour else "L", (side, side), paper)
    glyph = Image.new("L", (side, side), 0)
    ImageDraw.Draw(glyph).text(
        (side / 2, side / 2),
        str(digit),
        fill=255,
        font=font,
        anchor="mm",
        stroke_width=int(rng.integers(0, max(2, side // 30))),
        stroke_fill=255,
    )
    glyph = glyph.rotate(
        rng.uniform(-12, 12),
        resample=Image.Resampling.BILINEAR,
        translate=tuple(int(t) for t in rng.integers(-side // 8, side // 8 + 1, 2)),
    )
    canvas.paste(Image.new(canvas.mode, canvas.size, ink), mask=glyph)
    return canvas


def mnist_style(image: Image.Image) -> np.ndarray:
    return np.round(to_mnist(np.asarray(image.convert("L"), dtype=np.float32) / 255) * 255).astype(np.uint8)


def write_drawn_mnist(data_dir: Path, n_train: int = 1200, n_test: int = 200, seed: int = 0) -> Path:
    """An MNIST-format data set of drawn digits, prepared as predict.py prepares a picture."""
    rng = np.random.default_rng(seed)
    raw = data_dir / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for files, count in ((TRAIN_FILES, n_train), (TEST_FILES, n_test)):
        labels = rng.integers(0, 10, count)
        images = np.stack([mnist_style(draw_digit(int(d), rng, side=int(rng.integers(40, 120)))) for d in labels])
        write_idx(raw / files[0], images)
        write_idx(raw / files[1], labels)
    return data_dir
