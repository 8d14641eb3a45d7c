"""Every use of a private Lightning, Hydra or torch name, behind a public one, each with the version it was checked
against and what happens on another: lightning.py (and fast_loop.py, Lightning's training loop with a shorter
step), hydra.py, hydra_help.py (a faster --help), torch.py. tests/test_internals.py fails on a private name
used anywhere else."""
