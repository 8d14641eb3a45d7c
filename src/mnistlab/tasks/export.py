"""The task behind export.py: one self-contained TorchScript or ONNX file, checked against its checkpoint.

The exported network is the checkpoint's inference network (the EMA weights when the run used EMA)
with the normalisation as its first layer: it takes float32 images (N, 1, 28, 28) in [0, 1], any N,
and returns the 10 logits.
"""

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from mnistlab.errors import DataError, UserError
from mnistlab.received.files import refuse_links
from mnistlab.runs.checkpoints import load_classifier, resolve_checkpoint
from mnistlab.runs.run_dir import data_config, run_dir_of
from mnistlab.settings.schema import validate

SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}
INPUT, OUTPUT = "images", "logits"


class ExportError(UserError):
    """The exported file does not reproduce the checkpoint."""


def test_images(run_dir, data_dir, count: int, trusted_modules=()) -> tuple:
    """The first `count` test images as the model takes them, from the run's data module (float (N, 1, 28, 28)
    in [0, 1] for MNIST), and what they are; random images where its data is not at hand."""
    from hydra.utils import instantiate

    overrides = {"download": False, "eval_batch_size": count, **({"data_dir": data_dir} if data_dir else {})}
    data = data_config(run_dir, trusted_modules, **overrides)  # the run's data module, checked
    datamodule = instantiate(data, _convert_="all")
    try:
        datamodule.prepare_data()
        datamodule.setup("test")
        images, _ = datamodule.on_after_batch_transfer(next(iter(datamodule.test_dataloader())), 0)
    except (DataError, FileNotFoundError):
        generator = torch.Generator().manual_seed(0)
        where = data.get("data_dir", "the data module's folder")
        return torch.rand(count, 1, 28, 28, generator=generator), f"{count} random images (no test set in {where})"
    return images[:count], f"the first {min(count, len(images))} test images"


def export_torchscript(net: nn.Module, example: torch.Tensor, path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch >= 2.10 marks TorchScript deprecated; it still works
        frozen = torch.jit.freeze(torch.jit.trace(net, example))  # weights become constants
        torch.jit.save(frozen, str(path))
        loaded = torch.jit.load(str(path))
    return lambda images: loaded(images).detach().numpy()


def export_onnx(net: nn.Module, example: torch.Tensor, path: Path):
    import onnxruntime

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            verbose=False,
        )
    program.save(str(path), external_data=False)  # one file, weights inside
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda images: session.run([OUTPUT], {INPUT: images.numpy()})[0]


def export(cfg: DictConfig) -> dict:
    """export.py: write the file, then compare its logits with the checkpoint's on test images."""
    validate(cfg)

    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    ckpt_path = resolve_checkpoint(cfg.ckpt_path)
    model, _ = load_classifier(ckpt_path, cfg.trusted_modules, cfg.max_parameters)
    net = model.inference_net.eval()
    run_dir = run_dir_of(ckpt_path)
    if run_dir is not None and not cfg.output:
        refuse_links(run_dir)  # the export goes to <run>/export/
    images, described = test_images(run_dir, cfg.data.data_dir, cfg.check_images, cfg.trusted_modules)
    if cfg.output:
        output = Path(cfg.output)
    else:
        folder = run_dir / "export" if run_dir is not None else ckpt_path.parent
        output = folder / f"{ckpt_path.stem}{SUFFIX[cfg.format]}"
    output.parent.mkdir(parents=True, exist_ok=True)

    exporter = export_torchscript if cfg.format == "torchscript" else export_onnx
    run_exported = exporter(net, images[:2], output)
    with torch.no_grad():
        expected = net(images).numpy()
        single = net(images[:1]).numpy()
    difference = max(
        float(np.abs(run_exported(images) - expected).max()), float(np.abs(run_exported(images[:1]) - single).max())
    )  # another batch size too
    if not difference <= cfg.tolerance:
        output.unlink(missing_ok=True)
        raise ExportError(
            f"the {cfg.format} export differs from {ckpt_path} by {difference:.3g} in the logits "
            f"(tolerance {cfg.tolerance:g}): not saved"
        )
    size = output.stat().st_size / 2**20
    print(f"exported {os.path.relpath(output)} ({cfg.format}, {size:.1f} MiB) from {os.path.relpath(ckpt_path)}")
    print(f"max |logit difference| {difference:.2e} on {described} (tolerance {cfg.tolerance:g})")
    print("input: float32 (N, 1, 28, 28), pixels in [0, 1], normalisation included; output: 10 logits")
    return {"output": str(output), "max_abs_diff": difference}
