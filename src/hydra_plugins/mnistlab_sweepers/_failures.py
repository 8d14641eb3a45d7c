"""What both sweepers do with a job that raised: say so in one line, count it, stop past the cap."""

from typing import Optional

from hydra.core.utils import JobReturn, JobStatus

from mnistlab.compat.hydra import job_outcome
from mnistlab.errors import SweepRefused, UserError
from mnistlab.sweeps.records import describe_error, is_pruned


class SweepStopped(UserError):
    """Too many jobs of a sweep failed."""


class FailureCap:
    """Counts failed jobs; the sweep stops once failures exceed max_failure_rate of its planned jobs.

    Measured against the planned total rather than the jobs so far, so that an early failure or two
    does not stop a sweep that could still end under the cap.
    """

    def __init__(self, max_failure_rate: float, planned: int, failed: int = 0):
        if not 0.0 <= max_failure_rate <= 1.0:
            raise UserError(f"hydra.sweeper.max_failure_rate must be in [0, 1], got {max_failure_rate}")
        self.max_failure_rate, self.planned, self.failed = max_failure_rate, planned, failed
        self.last_error: Optional[str] = None

    def record(self, job: JobReturn, name: str) -> Optional[str]:
        """The job's one-line error if it failed (pruned is not failed), else None; prints the failure."""
        outcome = job_outcome(job)
        if job.status == JobStatus.COMPLETED or is_pruned(outcome):
            return None
        if isinstance(outcome, SweepRefused):  # no other job could run either
            raise outcome
        return self.fail(name, describe_error(outcome))

    def fail(self, name: str, error: str) -> str:
        self.failed += 1
        self.last_error = error
        print(f"[sweep] {name} failed: {error}", flush=True)
        return error

    def exceeded(self) -> bool:
        return self.failed > self.max_failure_rate * self.planned

    def stop_message(self, what: str) -> str:
        return (
            f"sweep stopped: {self.failed} of {self.planned} {what} failed, more than "
            f"max_failure_rate={self.max_failure_rate} allows; last error: {self.last_error}"
        )
