"""predict.py on pictures of digits: any size, grayscale or colour, either polarity, bad files reported."""

import numpy as np
import pytest
from helpers.drawn_digits import draw_digit, write_drawn_mnist
from helpers.tool_config import compose_tool, train_run
from PIL import Image

from mnistlab.data.pictures import to_mnist
from mnistlab.errors import CheckpointError, ImageError
from mnistlab.tasks.export import export
from mnistlab.tasks.predict import load_digit, predict

# digit, canvas side, dark digit on a light background, colour, file type
PICTURES = [
    (0, 28, False, False, "png"),
    (1, 300, True, False, "png"),
    (2, 64, True, True, "jpg"),
    (3, 200, False, True, "png"),
    (4, 45, True, False, "png"),
    (5, 150, False, False, "jpg"),
    (6, 90, True, False, "png"),
    (7, 120, False, False, "png"),
    (8, 77, True, True, "png"),
    (9, 500, True, False, "jpg"),
    (3, 60, True, False, "transparent"),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small MLP trained on drawn digits prepared as predict.py prepares pictures."""
    data_dir = write_drawn_mnist(tmp_path_factory.mktemp("drawn"))
    run_dir = tmp_path_factory.mktemp("run")
    metrics = train_run(
        data_dir,
        run_dir,
        [
            "model=mlp",
            "model.net.hidden=[64]",
            "trainer.max_epochs=5",
            "optimizer.lr=5e-3",
            "data.val_size=200",
            "seed=0",
        ],
    )
    assert metrics["test/acc"] > 0.95
    return run_dir


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(123)  # not the training set's seed: new drawings
    paths = []
    for index, (digit, side, dark_on_light, colour, kind) in enumerate(PICTURES):
        image = draw_digit(digit, rng, side, dark_on_light, colour)
        path = folder / f"{index:02d}-digit{digit}.{'png' if kind == 'transparent' else kind}"
        if kind == "transparent":  # a dark digit drawn on nothing: what drawing programs save
            ink = np.asarray(image.convert("L")) < 128
            rgba = np.zeros((side, side, 4), dtype=np.uint8)
            rgba[..., 3] = ink * 255
            image = Image.fromarray(rgba)
        image.save(path)
        paths.append(path)
    (folder / "notes.txt").write_text("not a picture")
    (folder / "broken.png").write_bytes(paths[0].read_bytes()[:60])  # a truncated PNG
    return folder, paths


def test_predict_gets_every_digit_and_reports_bad_files(model_dir, pictures, in_process):
    folder, paths = pictures
    result = in_process("predict.py", f"ckpt_path={model_dir}", f"images={folder}/*", "top_k=3", "threads=1")
    assert result.returncode == 2, result.stderr[-3000:]  # bad files among them
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    assert len(lines) == len(PICTURES)
    for path, (digit, *_) in zip(paths, PICTURES):
        top3 = lines[str(path)].split("  ")
        assert len(top3) == 3 and top3[0].startswith(f"{digit} ("), (path, lines[str(path)])
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and errors[1] == f"error: {folder}/notes.txt: not an image (PNG, JPG, ... expected)"
    assert errors[0].startswith(f"error: {folder}/broken.png: unreadable image"), errors


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_predict_with_an_exported_model(fmt, model_dir, pictures):
    folder, paths = pictures
    exported = export(compose_tool("export", [f"ckpt_path={model_dir}", f"format={fmt}"]))["output"]
    arguments = [f"ckpt_path={exported}", f"images=[{paths[1]},{paths[2]}]"]
    if fmt == "torchscript":  # a program: run only when the command line says so
        with pytest.raises(CheckpointError, match="is a TorchScript program.*torchscript=true"):
            predict(compose_tool("predict", arguments))
        arguments.append("torchscript=true")
    results = predict(compose_tool("predict", arguments))
    assert [r["digit"] for r in results] == [PICTURES[1][0], PICTURES[2][0]]


def test_polarity_is_detected_and_can_be_forced(pictures):
    _, paths = pictures
    light_background = paths[1]
    detected = load_digit(light_background)
    assert np.array_equal(detected, load_digit(light_background, invert=True))
    with pytest.raises(ImageError, match="no digit found"):  # read as a light digit, all is background
        load_digit(light_background, invert=False)
    dark_background = paths[0]
    assert np.array_equal(load_digit(dark_background), load_digit(dark_background, invert=False))


def test_mnist_framing():
    """A digit anywhere on a canvas ends up 20 pixels tall, its centre of mass in the middle."""
    canvas = np.zeros((200, 300), dtype=np.float32)
    canvas[20:120, 200:240] = 1.0  # a bar far off-centre, 100 high
    framed = to_mnist(canvas)
    rows, cols = np.nonzero(framed > 0.5)
    assert framed.shape == (28, 28) and rows.max() - rows.min() + 1 == 20
    centre = (np.arange(28) @ framed.sum(axis=1)) / framed.sum()
    assert abs(centre - 13.5) <= 0.5
    with pytest.raises(ImageError, match="no digit found"):
        to_mnist(np.full((50, 50), 0.8, dtype=np.float32), name="blank.png")


def test_an_mnist_style_digit_comes_back_unchanged():
    """The preparation is MNIST's own: a digit already prepared that way is left as it is."""
    rng = np.random.default_rng(7)
    for digit in range(10):
        prepared = to_mnist(np.asarray(draw_digit(digit, rng, side=100).convert("L"), dtype=np.float32) / 255)
        assert np.abs(to_mnist(prepared) - prepared).max() <= 0.06
