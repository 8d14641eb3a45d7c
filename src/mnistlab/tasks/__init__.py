"""The tasks the entry points run: one module each (train, evaluate, predict, export, report, compare, summary)."""
