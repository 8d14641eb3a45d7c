"""Every use of a private Lightning, Hydra or torch name, each with the version it was checked against."""
