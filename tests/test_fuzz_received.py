"""A mutation fuzzer for received files (issue #21): mutants of a real checkpoint, run folder and sweep folder
(values of other types, huge numbers, NaN, strings, lists, dicts, interpolations, URLs and `../` paths, code
`_target_`s, symlinks, truncation, flipped bytes), each given to one tool (resume, ckpt_path=, eval, predict,
export, report, compare, summary) and held to the contract of tests/helpers/attack.py.

30 mutants in the default run (fixed seed), 500 more with `pytest -m slow`. The counts of mutants and outcomes
are printed at the end of the module and written to <pytest basetemp>/attack-fuzz-summary.json.
"""

import json
import random
from pathlib import Path

import pytest
import torch
import yaml
from helpers import attack
from helpers.attack import COMPARE, EVAL, EXPORT, NEW_RUN, PREDICT, REPORT, RESUME, SUMMARY, Case
from helpers.attack_payloads import load_ckpt, symlink

SEED = 21
DEFAULT_MUTANTS, SLOW_MUTANTS = 30, 500

# ---------------------------------------------------------------------------------------------------
# Values a mutation puts in place of another ({canary} etc.: the scene's paths)

PLAIN = [
    10**18,
    -(10**18),
    2**63,
    -1,
    0,
    float("nan"),
    float("inf"),
    -1e308,
    "abc",
    "",
    None,
    True,
    [],
    {},
    [1, "x", None],
    {"a": {"b": [1]}},
    [100_000, 100_000],
    "x" * 100_000,
]
CRAFTED = [
    "${oc.env:ATTACK_DIR}",
    "${new_dir:{canary}}",
    "${oc.create:{_target_: builtins.open, file: '{canary}', mode: w}}",
    "{outside}/${now:%Y}",
    "local://{outside}",
    "file://{outside}",
    "s3://attacker-bucket/x.ckpt",
    "{ckpt_dir}/../../outside",
    "../outside",
    "{outside}",
    "{outside}/precious.txt",
    {"_target_": "os.system", "_args_": ["touch {canary}"]},
    {"_target_": "builtins.open", "file": "{canary}", "mode": "w"},
    {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "dirpath": "{outside}"},
]
TENSORS = [
    lambda: torch.zeros(3),
    lambda: torch.tensor(float("nan")),
    lambda: torch.zeros(0),
    lambda: torch.ones(2, 2, dtype=torch.int64),
    lambda: torch.tensor(-1.0),
]


def a_value(rng: random.Random, scene, tensors: bool = False):
    pool = PLAIN + CRAFTED + (TENSORS if tensors else [])
    value = rng.choice(pool)
    return fill(scene, value() if callable(value) else value)


def fill(scene, value):
    if isinstance(value, str):
        return scene.fill(value)
    if isinstance(value, dict):
        return {fill(scene, key): fill(scene, item) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(scene, item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------------
# Mutations of a nested value (a checkpoint's dict, a YAML or JSON document)


def paths_in(node, prefix=(), depth=0) -> list:
    """Key paths of every node below `node` (lists: their first few items), down to depth 7."""
    found = []
    if depth >= 7:
        return found
    items = node.items() if isinstance(node, dict) else enumerate(node[:4]) if isinstance(node, list) else ()
    for key, value in items:
        found.append((*prefix, key))
        found += paths_in(value, (*prefix, key), depth + 1)
    return found


def mutate_tree(document, rng: random.Random, scene, tensors: bool = False) -> str:
    """One mutation of `document` in place (its top-level key picked first, so that big subtrees do not
    dominate); returns what it did."""
    if not isinstance(document, (dict, list)) or not document:
        return "nothing to mutate (not a container)"
    tops = list(document) if isinstance(document, dict) else list(range(len(document)))
    top = rng.choice(tops)
    under = [path for path in paths_in(document) if path[0] == top]
    path = rng.choice(under)
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    key, old = path[-1], parent[path[-1]]
    operation = rng.choice(["replace", "replace", "replace", "delete", "wrap", "stringify", "add key"])
    if operation == "replace":
        parent[key] = a_value(rng, scene, tensors)
    elif operation == "delete":
        del parent[key]
    elif operation == "wrap":
        parent[key] = rng.choice([[old], {"value": old}])
    elif operation == "stringify":
        parent[key] = str(old)[:200]
    elif isinstance(old, dict):
        old[rng.choice(["_target_", "_args_", "_partial_", "extra", "dirpath"])] = a_value(rng, scene, tensors)
    else:
        parent[key] = {"_target_": "os.system", "_args_": [f"touch {scene.canary}"], "value": old}
    shown = "" if operation == "delete" else repr(parent[key])[:80]
    return f"{operation} {'.'.join(map(str, path))} {shown}".strip()


# ---------------------------------------------------------------------------------------------------
# Mutations of the scene's files, by what each tool reads


def mutate_checkpoints(paths, rng, scene) -> str:
    """The same mutation in each checkpoint (resume takes the newest, eval the best)."""
    state = rng.getstate()
    done = ""
    for path in paths:
        rng.setstate(state)
        checkpoint = load_ckpt(path)
        done = mutate_tree(checkpoint, rng, scene, tensors=True)
        torch.save(checkpoint, path)
    return f"{Path(paths[0]).name}: {done}"


def run_checkpoints(scene) -> list:
    return sorted((scene.run / "checkpoints").glob("*.ckpt"))


def mutate_yaml(path: Path, rng, scene) -> str:
    document = yaml.safe_load(path.read_text())
    done = mutate_tree(document, rng, scene)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return f"{path.name}: {done}"


def mutate_json(path: Path, rng, scene) -> str:
    document = json.loads(path.read_text())
    done = mutate_tree(document, rng, scene)
    path.write_text(json.dumps(document))
    return f"{path.name}: {done}"


def damage_bytes(path: Path, rng, scene) -> str:
    data = path.read_bytes()
    how = rng.choice(["truncate", "flip", "empty", "garbage"])
    if how == "truncate":
        data = data[: rng.randrange(max(1, len(data)))]
    elif how == "flip":
        data = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            if data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        data = bytes(data)
    elif how == "empty":
        data = b""
    else:
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096)))
    path.write_bytes(data)
    return f"{path.name}: {how} ({len(data)} bytes)"


def make_symlink(path: Path, rng, scene) -> str:
    target = rng.choice(["{outside}/precious.txt", "{outside}", "{outside}/new-file", "{outside}/notes"])
    symlink(path, Path(scene.fill(target)))
    return f"{path.name}: symlink to {target}"


def png_size(path: Path, rng, scene) -> str:
    data = bytearray(path.read_bytes())
    side = rng.choice([0, 1, 30_000, 2**31 - 1])
    data[16:24] = side.to_bytes(4, "big") + side.to_bytes(4, "big")  # IHDR width, height (the CRC left stale)
    path.write_bytes(bytes(data))
    return f"{path.name}: IHDR {side}x{side}"


def structured(path_of, kind):
    """A mutation of one file (path_of(scene)), by its content's structure."""
    mutate = {"yaml": mutate_yaml, "json": mutate_json}[kind]
    return lambda rng, scene: mutate(path_of(scene), rng, scene)


def of_file(path_of, how):
    return lambda rng, scene: how(path_of(scene), rng, scene)


CONFIG = lambda scene: scene.run / ".hydra" / "config.yaml"  # noqa: E731
OVERRIDES = lambda scene: scene.run / ".hydra" / "overrides.yaml"  # noqa: E731
METRICS = lambda scene: scene.run / "metrics.json"  # noqa: E731
ENV = lambda scene: scene.run / "env.json"  # noqa: E731
JOB = lambda scene: scene.sweep / "0" / "job.json"  # noqa: E731

RUN_CKPTS = lambda rng, scene: mutate_checkpoints(run_checkpoints(scene), rng, scene)  # noqa: E731
LOOSE_CKPT = lambda rng, scene: mutate_checkpoints([scene.loose], rng, scene)  # noqa: E731
CKPT_BYTES = lambda rng, scene: damage_bytes(rng.choice(run_checkpoints(scene)), rng, scene)  # noqa: E731
LOOSE_BYTES = of_file(lambda scene: scene.loose, damage_bytes)
RUN_FILE_LINK = lambda rng, scene: make_symlink(  # noqa: E731
    scene.run / rng.choice(["metrics.json", "metrics.csv", "env.json", "train.log", "report.md", "eval", "export"]),
    rng,
    scene,
)
SWEEP_LINK = lambda rng, scene: make_symlink(scene.sweep / rng.choice(["summary.csv", "summary.md"]), rng, scene)  # noqa: E731

# tool: (command, its mutations: each (rng, scene) -> what it did)
TOOLS = {
    "resume": (RESUME, [RUN_CKPTS, RUN_CKPTS, structured(CONFIG, "yaml"), CKPT_BYTES, RUN_FILE_LINK]),
    "ckpt_path": (NEW_RUN, [LOOSE_CKPT, LOOSE_CKPT, LOOSE_BYTES]),
    "eval": (EVAL, [RUN_CKPTS, RUN_CKPTS, structured(CONFIG, "yaml"), CKPT_BYTES, RUN_FILE_LINK]),
    "predict": (
        PREDICT,
        [
            RUN_CKPTS,
            RUN_CKPTS,
            CKPT_BYTES,
            of_file(lambda s: s.image, png_size),
            of_file(lambda s: s.image, damage_bytes),
        ],
    ),
    "export": (EXPORT, [RUN_CKPTS, RUN_CKPTS, structured(CONFIG, "yaml"), CKPT_BYTES, RUN_FILE_LINK]),
    "report": (
        REPORT,
        [
            RUN_CKPTS,
            structured(CONFIG, "yaml"),
            structured(OVERRIDES, "yaml"),
            structured(METRICS, "json"),
            RUN_FILE_LINK,
        ],
    ),
    "compare": (
        COMPARE,
        [
            structured(OVERRIDES, "yaml"),
            structured(METRICS, "json"),
            structured(ENV, "json"),
            structured(JOB, "json"),
            of_file(METRICS, damage_bytes),
            RUN_FILE_LINK,
        ],
    ),
    "summary": (
        SUMMARY,
        [structured(JOB, "json"), structured(JOB, "json"), of_file(JOB, damage_bytes), SWEEP_LINK],
    ),
}


def mutant(index: int) -> Case:
    """Mutant `index`: its tool and 1 to 3 mutations, drawn from a generator seeded by SEED and the index."""
    rng = random.Random(f"{SEED}-{index}")
    tool = rng.choice(sorted(TOOLS))
    command, mutations = TOOLS[tool]
    picked = [rng.randrange(len(mutations)) for _ in range(rng.randint(1, 3))]
    seed = rng.randrange(2**32)

    def craft(scene):
        local = random.Random(seed)
        for choice in picked:
            try:
                scene.notes.append(mutations[choice](local, scene))
            except Exception as err:  # noqa: BLE001 (an earlier mutation broke the file: this one is skipped)
                scene.notes.append(f"mutation skipped: {type(err).__name__}")

    return Case(f"mutant-{index:04d}-{tool}", "mutant", command, craft, env=(("ATTACK_DIR", "{outside}/env"),))


DEFAULT = [mutant(index) for index in range(DEFAULT_MUTANTS)]
SLOW = [mutant(index) for index in range(DEFAULT_MUTANTS, DEFAULT_MUTANTS + SLOW_MUTANTS)]


@pytest.fixture(scope="module")
def outcomes(request, mnist_dir, tmp_path_factory):
    cases = attack.selected(request, "test_mutant", "case") + attack.selected(request, "test_mutant_slow", "case")

    def details(results: dict) -> dict:
        failing = [
            {
                "id": case.id,
                "mutations": results[case.id].get("notes"),
                "violations": attack.violations(case, results[case.id]),
            }
            for case in cases
            if attack.violations(case, results[case.id])
        ]
        return {"seed": SEED, "mutants": len(cases), "failing": failing}

    return attack.run_and_summarise(request, tmp_path_factory, mnist_dir, cases, "fuzz", "fuzz", "mutants", details)


def check(case, outcomes):
    result = outcomes[case.id]
    found = attack.violations(case, result)
    assert not found, attack.describe(case, result, found)


@pytest.mark.parametrize("case", DEFAULT, ids=[case.id for case in DEFAULT])
def test_mutant(case, outcomes):
    check(case, outcomes)


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW, ids=[case.id for case in SLOW])
def test_mutant_slow(case, outcomes):
    check(case, outcomes)


def test_mutants_are_reproducible_and_cover_every_tool():
    assert [case.id for case in DEFAULT] == [mutant(index).id for index in range(DEFAULT_MUTANTS)]
    assert {case.id.split("-", 2)[2] for case in DEFAULT + SLOW} == set(TOOLS)
    assert len(SLOW) >= 500
