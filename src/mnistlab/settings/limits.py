"""Bounds on what a received file may make a tool read or allocate (docs/security.md)."""

MAX_TEXT_BYTES = 1 << 20  # a saved config, overrides list, metrics.json, job.json or env.json
MAX_CSV_BYTES = 16 << 20  # metrics.csv: a long run logs many rows
MAX_YAML_DEPTH = 32  # nesting of a saved config: today's are 5 deep
MAX_IMAGE_PIXELS = 1 << 24  # 4096 x 4096: a picture of a digit needs far fewer
DEFAULT_MAX_PARAMETERS = 50_000_000  # a network a checkpoint may build (cnn_best: 3.3 M); max_parameters=...
MAX_DECODE_SECONDS = 10  # to decode one picture (some valid JPEGs take minutes per megabyte)
