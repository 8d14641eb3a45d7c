"""Train, validate and test an MNIST classifier: python train.py model=cnn [key=value ...]."""

import sys

import hydra

from mnistlab.cli import exit_on_bad_input, run, task_errors
from mnistlab.config.train import register_schemas
from mnistlab.runs.distributed import launch_arguments
from mnistlab.runs.run_dir import continue_in_run_dir, register_resolvers

register_schemas()
register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg):
    from mnistlab.training.train import train  # torch and Lightning load here, not for --help or --cfg

    with task_errors():
        return train(cfg)


if __name__ == "__main__":
    with exit_on_bad_input():
        sys.argv = continue_in_run_dir(sys.argv)  # resume=<run dir>: Hydra runs in that directory again
        sys.argv = launch_arguments(sys.argv)  # torchrun, srun: one run of several processes
    run(main)
