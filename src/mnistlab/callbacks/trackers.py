"""Experiment trackers beside the CSV and TensorBoard loggers (conf/logger/mlflow.yaml, wandb.yaml)."""

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger


class WandbLogger(LightningWandbLogger):
    """Lightning's, except that a W&B run still open in this process is finished first: Lightning would log
    a sweep's next job into the previous job's run (it never finishes the runs it starts)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)  # says how to install wandb when it is missing
        import wandb

        if wandb.run is not None:
            wandb.finish()
