"""The dependency pins: lightning's compromised builds (GHSA-w37p-236h-pfx3) are never admitted, and the lock that
CI installs from agrees with pyproject.toml's ranges."""

import tomllib
from helpers import ROOT
from packaging.requirements import Requirement
from packaging.version import Version

COMPROMISED = {"lightning": ("2.6.2", "2.6.3"), "pytorch-lightning": ("2.6.2", "2.6.3")}


def requirements() -> dict:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {Requirement(line).name: Requirement(line) for line in project["dependencies"]}


def locked() -> dict:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {name.lower(): Version(version) for name, version in pins}


def test_the_lightning_pin_excludes_the_compromised_builds():
    specifier = requirements()["lightning"].specifier
    for version in COMPROMISED["lightning"]:
        assert not specifier.contains(version), f"pyproject.toml admits lightning {version}"
    assert specifier.contains("2.6.6")  # the tested one


def test_the_lock_pins_every_dependency_within_its_range_and_no_compromised_build():
    pins = locked()
    for name, requirement in requirements().items():
        assert name.lower() in pins, f"requirements.lock lacks {name}"
        assert requirement.specifier.contains(pins[name.lower()], prereleases=True), (name, pins[name.lower()])
    for name, versions in COMPROMISED.items():
        assert str(pins.get(name, "")) not in versions, f"requirements.lock pins {name} {pins[name]}"
