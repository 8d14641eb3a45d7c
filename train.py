"""Train, validate and test an MNIST classifier: python train.py model=cnn [key=value ...]."""

import sys

import hydra

from mnistlab.cli import exit_on_bad_input, run, task_errors
from mnistlab.data.datasets import training_files
from mnistlab.data.unpack import read_ahead
from mnistlab.perf.garbage import collections_paused
from mnistlab.runs.distributed import launch_arguments
from mnistlab.runs.resume import continue_in_run_dir
from mnistlab.runs.run_dir import claim_named_dir, register_resolvers
from mnistlab.settings.schema import register_schemas, validate

register_schemas()
register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg):
    with task_errors():
        if cfg.get("resume") is None:  # a resumed run's config is the saved one: train() checks that
            validate(cfg)  # a value out of range is refused at once, before torch loads
            if cfg.get("ckpt_path") is None:  # a continued run may read its own saved data folder
                read_ahead(training_files(cfg.data))  # gunzipped on the other core while torch and Lightning load
    with collections_paused():  # torch's and Lightning's objects all live on: no collection while they load
        from mnistlab.tasks.train import train  # start-up: torch and Lightning load here, not for --help or --cfg

    with task_errors():
        return train(cfg)


if __name__ == "__main__":
    with exit_on_bad_input():
        sys.argv = continue_in_run_dir(sys.argv)  # resume=<run dir>: Hydra runs in that directory again
        sys.argv = launch_arguments(sys.argv)  # torchrun, srun: one run of several processes
        claim_named_dir(sys.argv)  # hydra.run.dir=<new folder>: gone again if the run is refused
    run(main)
