"""A run at a glance: <run>/report.png (learning curves, learning rate, confusion matrix, per-class accuracy,
the most confident mistakes) and <run>/report.md (final metrics, overrides, per-class accuracy, the most
confused pairs), classes by their data set's names; and <run>/test_predictions.csv, the true and predicted class
of every test image (python compare.py A B: McNemar's test).

train.py writes them when it ends (report=false: not); `python -m mnistlab.tasks.report <run dir>` remakes them.
"""

import csv
import os
import shlex
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from mnistlab.data.datasets import DATASETS
from mnistlab.errors import ReceivedFileError
from mnistlab.received.predictions import HEADER
from mnistlab.received.records import read_curves as read_received_curves
from mnistlab.received.yaml_file import read_yaml

PICTURE, MARKDOWN, PREDICTIONS = "report.png", "report.md", "test_predictions.csv"
SHOWN_MISTAKES = 25  # a 5 x 5 grid
FINAL_METRICS = ("test/acc", "test/loss", "val/acc", "val/loss", "train/acc", "train/loss", "step")
CURVES = {
    "loss": ("train/loss_step", "train/loss_epoch", "val/loss"),
    "accuracy": ("train/acc_step", "train/acc_epoch", "val/acc"),
}


def read_curves(run_dir: Path) -> Dict[str, Tuple[List[int], List[float]]]:
    """Each column of metrics.csv as (steps, values), its empty cells left out."""
    return read_received_curves(run_dir / "metrics.csv")


def plot_curves(ax, curves: dict, names: tuple, ylabel: str) -> None:
    for name in names:
        if name in curves:
            steps, values = curves[name]
            style = "-" if name.endswith("_step") else "o-"  # epoch and validation values are few: marked
            ax.plot(steps, values, style, lw=1.2, ms=4, label=name)
    ax.set(xlabel="step", ylabel=ylabel)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "nothing logged", ha="center", transform=ax.transAxes)


def plot_learning_rate(ax, curves: dict) -> None:
    for name in sorted(name for name in curves if name.startswith("lr-")):  # LearningRateMonitor's names
        ax.plot(*curves[name], lw=1.2, label=name)
    ax.set(xlabel="step", ylabel="learning rate")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))


def class_names(run_dir: Path, classes: int) -> List[str]:
    """The names of the run's data set's classes (data.dataset in its saved config), else their numbers."""
    numbers = [str(c) for c in range(classes)]
    path = run_dir / ".hydra" / "config.yaml"
    try:
        data = read_yaml(path, dict).get("data") if path.exists() else None
    except ReceivedFileError:
        return numbers  # the report is still worth having
    dataset = DATASETS.get(data.get("dataset", "mnist")) if isinstance(data, dict) else None
    return list(dataset.classes) if dataset is not None and len(dataset.classes) == classes else numbers


def tick_labels(ax, axis: str, names: List[str]) -> None:
    """Class names on an axis; turned when they are words."""
    words = max(map(len, names)) > 2
    if axis == "x":
        ax.set_xticks(range(len(names)), names, rotation=40 if words else 0, ha="right" if words else "center")
    else:
        ax.set_yticks(range(len(names)), names)


def plot_confusion(ax, predictions, names: List[str]) -> None:
    """Counts in every non-empty cell; colour on a log scale, so that a few mistakes still show."""
    import numpy as np

    confusion = predictions.confusion().numpy()
    shade = np.log1p(confusion)
    ax.imshow(shade, cmap="Blues")
    for (true, predicted), count in np.ndenumerate(confusion):
        if count:
            ax.text(
                predicted,
                true,
                str(count),
                ha="center",
                va="center",
                fontsize=7.5,
                color="white" if shade[true, predicted] > 0.6 * shade.max() else "black",
            )
    tick_labels(ax, "x", names)
    tick_labels(ax, "y", names)
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion matrix ({len(predictions.labels)} images)")


def plot_per_class(ax, predictions, names: List[str]) -> None:
    classes, accuracies = zip(*((c, correct / max(total, 1)) for c, correct, total in predictions.per_class()))
    ax.bar(classes, accuracies, color="tab:blue")
    ax.axhline(predictions.accuracy(), color="tab:red", lw=1)
    low = min(accuracies)
    bottom = max(0.0, low - (1 - low) * 0.5 - 0.005)  # zoomed on the differences
    ax.set_ylim(bottom, 1 + (1 - bottom) * 0.08)  # room for the labels over the bars
    for c, accuracy in zip(classes, accuracies):
        ax.text(c, accuracy, f"{100 * accuracy:.1f}", ha="center", va="bottom", fontsize=7.5)
    tick_labels(ax, "x", names)
    ax.set(
        xlabel="class",
        ylabel="accuracy",
        title=f"per-class accuracy (red: all classes, {predictions.accuracy():.4f})",
    )


def plot_mistakes(ax, predictions) -> None:
    """The most confident mistakes in a 5 x 5 sheet, each labelled true→predicted probability: one image,
    not 25 axes (a third of the report's time)."""
    import numpy as np

    mistakes = predictions.mistakes(SHOWN_MISTAKES)
    width, height = 46, 42  # a 28 x 28 digit and its label above it
    sheet = np.zeros((5 * height, 5 * width), dtype=np.uint8)
    for n, (index, true, predicted, probability) in enumerate(mistakes):
        top, left = (n // 5) * height + height - 29, (n % 5) * width + 9
        sheet[top : top + 28, left : left + 28] = predictions.images[index].numpy()
        ax.text(left + 14, top - 1, f"{true}→{predicted} {probability:.2f}", ha="center", va="bottom", fontsize=9)
    ax.imshow(sheet, cmap="gray_r", vmin=0, vmax=255)
    ax.set_axis_off()
    ax.set_title("most confident mistakes: true→predicted probability" if mistakes else "no mistakes")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def save_report_picture(path: Path, title: str, curves: dict, predictions, names: List[str]) -> None:
    plt = pyplot()
    words = max(map(len, names)) > 2  # turned class names need room below and beside the matrix
    fig = plt.figure(figsize=(15, 10 if words else 9))
    grid = fig.add_gridspec(
        2, 3, left=0.08 if words else 0.05, right=0.98, top=0.92, bottom=0.13 if words else 0.06, wspace=0.3, hspace=0.3
    )
    plot_curves(fig.add_subplot(grid[0, 0]), curves, CURVES["loss"], "loss")
    plot_curves(fig.add_subplot(grid[0, 1]), curves, CURVES["accuracy"], "accuracy")
    plot_learning_rate(fig.add_subplot(grid[0, 2]), curves)
    plot_confusion(fig.add_subplot(grid[1, 0]), predictions, names)
    plot_per_class(fig.add_subplot(grid[1, 1]), predictions, names)
    plot_mistakes(fig.add_subplot(grid[1, 2]), predictions)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_predictions_picture(path: Path, title: str, predictions) -> None:
    """eval.py's picture: the bottom row of the report."""
    plt = pyplot()
    fig = plt.figure(figsize=(15, 4.8))
    grid = fig.add_gridspec(1, 3, left=0.05, right=0.98, top=0.85, bottom=0.1, wspace=0.25)
    names = [str(c) for c in range(predictions.classes)]
    plot_confusion(fig.add_subplot(grid[0]), predictions, names)
    plot_per_class(fig.add_subplot(grid[1]), predictions, names)
    plot_mistakes(fig.add_subplot(grid[2]), predictions)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def markdown_table(header: list, rows: list) -> List[str]:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows]


def overrides_of(run_dir: Path) -> Optional[List[str]]:
    path = run_dir / ".hydra" / "overrides.yaml"
    return [str(item) for item in read_yaml(path, list)] if path.exists() else None


def report_markdown(run_dir: Path, metrics: dict, predictions, names: List[str], memory: Optional[dict] = None) -> str:
    shown = [(name, metrics[name]) for name in FINAL_METRICS if isinstance(metrics.get(name), (int, float))]
    lines = [f"# Run {os.path.relpath(run_dir)}", "", f"![report]({PICTURE})", "", "## Final metrics", ""]
    lines += markdown_table(
        ["metric", "value"], [(name, int(value) if name == "step" else f"{value:.4f}") for name, value in shown]
    )
    overrides = overrides_of(run_dir)
    command = " ".join(["python train.py", *map(shlex.quote, overrides)]) if overrides is not None else None
    lines += ["", "## Overrides", "", "```", command or "(no .hydra/overrides.yaml)", "```"]
    per_class = predictions.per_class()
    lines += ["", f"## Per-class accuracy (test set, {len(predictions.labels)} images)", ""]
    lines += markdown_table(
        ["class", *(names[c] for c, _, _ in per_class)],
        [
            ["accuracy", *(f"{correct / max(total, 1):.4f}" for _, correct, total in per_class)],
            ["images", *(total for _, _, total in per_class)],
        ],
    )
    totals = {c: total for c, _, total in per_class}
    confused = [
        (names[true], names[predicted], count, f"{100 * count / totals[true]:.1f}%")
        for true, predicted, count in predictions.most_confused()
    ]
    lines += ["", "## Most confused pairs", ""]
    lines += markdown_table(["true", "predicted", "images", "of the true class"], confused) if confused else ["none"]
    if memory:  # train.py's own process (a report remade later has none)
        lines += ["", "## Memory (train.py's process, MiB)", ""]
        lines += markdown_table(["part", "MiB"], [(part, f"{mib:.2f}") for part, mib in memory.items()])
        lines += ["", "The rest of the peak is the work of a step and of an evaluation batch (data.eval_batch_size)."]
    return "\n".join(lines) + "\n"


def write_report(
    run_dir: Path, predictions, metrics: dict, tested_step: Optional[int] = None, memory: Optional[dict] = None
) -> None:
    """report.png and report.md in the run directory, from the tested model's test-set predictions; the title
    names the tested checkpoint's step (the run may have trained on past its best)."""
    run_dir = Path(run_dir)
    step = tested_step if tested_step is not None else metrics.get("step", "?")
    title = f"{os.path.relpath(run_dir)}: test/acc {predictions.accuracy():.4f}, tested checkpoint of step {step}"
    names = class_names(run_dir, predictions.classes)
    save_report_picture(run_dir / PICTURE, title, read_curves(run_dir), predictions, names)
    (run_dir / MARKDOWN).write_text(report_markdown(run_dir, metrics, predictions, names, memory))
    write_predictions(predictions, run_dir / PREDICTIONS)


def write_predictions(predictions, path: Path) -> None:
    """label,predicted of every test image, in the test set's order (mnistlab.received.predictions reads it)."""
    pairs = zip(predictions.labels.tolist(), predictions.predicted.tolist())
    path.write_text("\n".join([HEADER, *(f"{label},{predicted}" for label, predicted in pairs)]) + "\n")


def write_eval_details(predictions, output: Path, title: str) -> List[Path]:
    """eval.py: <output stem>-confusion.csv, -mistakes.csv and .png beside its JSON output."""
    paths = [output.with_name(f"{output.stem}{suffix}") for suffix in ("-confusion.csv", "-mistakes.csv", ".png")]
    write_tables(predictions, paths[0], paths[1], SHOWN_MISTAKES)
    save_predictions_picture(paths[2], title, predictions)
    return paths


def write_tables(predictions, confusion_path: Path, mistakes_path: Path, k: int = 25) -> None:
    """The confusion matrix (rows true, columns predicted) and the k most confident mistakes as CSV."""
    with open(confusion_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *range(predictions.classes)])
        writer.writerows([label, *row] for label, row in enumerate(predictions.confusion().tolist()))
    with open(mistakes_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "true", "predicted", "probability"])
        writer.writerows((i, true, predicted, f"{p:.4f}") for i, true, predicted, p in predictions.mistakes(k))
