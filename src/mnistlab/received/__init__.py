"""The one boundary for files a user may have received from someone else: checkpoints, run folders (their saved
config, overrides, metrics and records), sweep folders and pictures.

Each module reads one kind of file into plain, typed, validated values, and every tool reads such files only
through it: nothing in a file decides what code runs, which paths are written or removed, or how much memory is
taken. Any failure while reading becomes a ReceivedFileError naming the file (one `error:` line on the console).
docs/security.md describes the guarantees and their limits.
"""
