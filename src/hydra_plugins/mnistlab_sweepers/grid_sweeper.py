"""Hydra's basic grid sweeper, except that a failing job is recorded and the other jobs still run, and that a
sweep run again in its old folder continues it (mnistlab.sweeps.continuation)."""

from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from mnistlab.compat.hydra import swept_params
from mnistlab.compat.hydra_sweeper import BasicSweeper
from mnistlab.sweeps import continuation

from ._failures import FailureCap, SweepStopped


class GridSweeper(BasicSweeper):
    """The basic sweeper raises the first failed job's error once its batch is done, which skips the
    remaining batches and the end-of-sweep callbacks (the summary); this one goes on and reports."""

    def __init__(
        self,
        max_batch_size: Optional[int] = None,
        params: Optional[Dict[str, str]] = None,
        max_failure_rate: float = 1.0,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.max_failure_rate = max_failure_rate

    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(swept_params(self) + list(arguments))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        jobs = [job for batch in self.split_arguments(overrides, None) for job in batch]
        planned = continuation.plan(sweep_dir, jobs)  # an old sweep's folder: what is done, what continues
        if any(job.folder is not None for job in planned):
            print(f"[sweep] continuing the sweep in {sweep_dir}: {len(planned)} jobs", flush=True)
            for line in continuation.describe(planned):
                print(line, flush=True)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        cap = FailureCap(self.max_failure_rate, planned=len(planned))
        to_run = [job for job in planned if job.action != continuation.SKIP]
        for job in to_run:
            if job.action == continuation.RERUN:
                continuation.set_aside(sweep_dir, job.folder)
        returns, job_idx = [], 0
        self.overrides = list(self.split_overrides_to_chunks(to_run, self.max_batch_size)) if to_run else []
        while not self.is_done():
            planned_batch = self.get_job_batch()
            batch = [continuation.launch_overrides(job, sweep_dir) for job in planned_batch]
            self.validate_batch_is_legal(batch)  # composition errors stop the sweep before it runs
            results = self.launcher.launch(batch, initial_job_idx=job_idx)
            for offset, (job, result) in enumerate(zip(planned_batch, results)):
                cap.record(result, f"job {job.folder or job_idx + offset}")
            job_idx += len(batch)
            returns.append(results)
            if cap.exceeded():  # the end-of-sweep callbacks (the summary) still see what ran
                self.hydra_context.callbacks.on_multirun_end(config=self.config)
                raise SweepStopped(cap.stop_message("jobs"))
        if cap.failed:
            print(
                f"[sweep] {cap.failed} of {cap.planned} jobs failed (status 'failed' in the summary; "
                f"traceback in <job>/job.json and <job>/train.log)",
                flush=True,
            )
        return returns
