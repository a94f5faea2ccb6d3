"""requirements.lock (what scripts/setup.sh installs) is complete, exact, hashed and consistent with
pyproject.toml and envs/pytorch.yaml. Installing it is checked by hand (docs/getting-started.md):
minutes and GBs."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib

import yaml
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ \\]+) \\$", re.MULTILINE)


def lock_pins() -> dict[str, str]:
    return {
        canonicalize_name(name): version
        for name, version in PIN.findall((ROOT / "requirements.lock").read_text())
    }


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_every_requirement_is_pinned_exactly_with_hashes():
    text = (ROOT / "requirements.lock").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text.split("\n", 2)[2])
    assert len(entries) == len(lock_pins()) > 50
    for entry in entries:
        assert "--hash=sha256:" in entry, entry[:200]
    assert "torch" in lock_pins() and "snakemake-executor-plugin-slurm" in lock_pins()


def test_the_lock_satisfies_pyproject_and_holds_every_dependency():
    pins = lock_pins()
    deps = project()["dependencies"] + [
        d
        for d in project()["optional-dependencies"]["test"]
        + project()["optional-dependencies"]["export"]
        if not d.startswith("heritage")
    ]
    for dep in map(Requirement, deps):
        name = canonicalize_name(dep.name)
        assert name in pins, dep
        assert dep.specifier.contains(pins[name], prereleases=True), (dep, pins[name])
    assert "pygments" in pins  # snakemake --report needs it: snakemake[reports] brings it


def test_python_and_plugin_bounds_are_honest():
    assert project()["requires-python"] == ">=3.11"  # Snakemake 9
    deps = {
        canonicalize_name(Requirement(d).name): Requirement(d) for d in project()["dependencies"]
    }
    assert "pygments" not in deps and "reports" in deps["snakemake"].extras
    assert deps["snakemake-executor-plugin-slurm"].specifier.contains("2.0.1")
    assert not deps["snakemake-executor-plugin-slurm"].specifier.contains("1.9")


def test_the_conda_environment_has_the_lock_s_pins():
    env = yaml.safe_load((ROOT / "envs" / "pytorch.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pinned = dict(line.split("==") for line in pip if "==" in line)
    assert {canonicalize_name(k): v for k, v in pinned.items()} == lock_pins()
    assert "python =3.11" in env["dependencies"] and "-e ../" in pip


def test_setup_refuses_to_switch_a_venv_to_another_lock(tmp_path):
    """A V100 site's .venv (requirements-sm70.lock) is kept by scripts/test.sh and demo.sh, which
    call setup.sh without --lock; asking for the other lock in it is refused before pip runs."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "heritage-lock").write_text("requirements-sm70.lock\n")
    run = subprocess.run(
        ["bash", "scripts/setup.sh", "test", "--lock", "default"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "installed from requirements-sm70.lock, not requirements.lock" in run.stderr
    assert "rm -rf .venv" in run.stderr
