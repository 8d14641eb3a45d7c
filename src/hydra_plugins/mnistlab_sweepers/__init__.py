"""mnistlab's Hydra sweepers: a grid that survives failing jobs, and Optuna on its ask/tell API."""
