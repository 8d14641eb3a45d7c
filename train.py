"""Train, validate and test an MNIST classifier: python train.py model=cnn [key=value ...]."""

import hydra

from mnistlab.cli import run, task_errors
from mnistlab.schema import register_schemas

register_schemas()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg):
    from mnistlab.train import train  # torch and Lightning load here, not for --help or --cfg

    with task_errors():
        return train(cfg)


if __name__ == "__main__":
    run(main)
