"""Export a checkpoint to one TorchScript or ONNX file: python export.py ckpt_path=<file or run dir> format=onnx."""

import hydra

from mnistlab.cli import exit_on_bad_input, run
from mnistlab.settings.tool_schema import register_tool_schemas

register_tool_schemas()


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg):
    from mnistlab.tasks.export import export  # start-up: torch loads here, not for --help or --cfg

    with exit_on_bad_input():
        return export(cfg)


if __name__ == "__main__":
    run(main)
