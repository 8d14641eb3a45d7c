"""Evaluate a checkpoint, or watch a training run's checkpoints: python eval.py ckpt_path=<file or run dir>."""

import sys

import hydra

from mnistlab.cli import exit_on_bad_input, run
from mnistlab.settings.tool_schema import register_tool_schemas

register_tool_schemas()


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg):
    from mnistlab.tasks.evaluate import evaluate  # start-up: torch and Lightning load here, not for --help or --cfg

    with exit_on_bad_input():
        return evaluate(cfg)


if __name__ == "__main__":
    # `watch=true` / `watch=false` is short for watch.enabled (watch is a group of settings)
    sys.argv = [f"watch.enabled={arg.split('=', 1)[1]}" if arg.split("=", 1)[0] == "watch" else arg for arg in sys.argv]
    run(main)
