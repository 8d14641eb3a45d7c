"""Where an Optuna study lives (hydra.sweeper.storage): any Optuna storage URL (sqlite:///..., postgresql://...,
mysql://...), or journal:///<path> for Optuna's journal file, for a cluster with a shared disk but no database."""

import re
from pathlib import Path

JOURNAL = "journal://"


def open_storage(url: str):
    """What optuna.create_study and load_study take as storage for this URL."""
    if not url.startswith(JOURNAL):
        return url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(url[len(JOURNAL) :])  # journal:///abs/file or journal://relative/file
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def shown(url: str) -> str:
    """The URL as printed and saved: without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
