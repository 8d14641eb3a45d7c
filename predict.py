"""Predict the digit in pictures: python predict.py ckpt_path=<checkpoint or export> images='digits/*.png'."""

import hydra

from mnistlab.cli import exit_on_bad_input, run
from mnistlab.settings.tool_schema import register_tool_schemas

register_tool_schemas()


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg):
    from mnistlab.tasks.predict import predict  # start-up: torch loads here, not for --help or --cfg

    with exit_on_bad_input():
        return predict(cfg)


if __name__ == "__main__":
    run(main)
