"""The repository shows the mesh: the design card's folders, one registry of components that matches
them, and boundaries between the parts that import-linter enforces (contracts in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from voicemesh.common.components import COMPONENTS
from voicemesh.v1 import (
    core_pb2,
    gateway_pb2,
    retrieval_pb2,
    speech_to_text_pb2,
    text_to_speech_pb2,
    user_data_pb2,
    voice_pb2,
)

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
# The top level of the design card; services/rag/ joins it with the retrieval service.
CARD = ["protos", "services/stt", "services/tts", "services/core", "gateway", "clients", "k8s", "tests"]
CARD_FILES = ["pyproject.toml", "README.md"]


def test_every_folder_of_the_design_card_is_there() -> None:
    missing = [f for f in CARD if not (ROOT / f).is_dir()] + [
        f for f in CARD_FILES if not (ROOT / f).is_file()
    ]
    assert not missing, f"the design card's {missing} are missing"
    assert not (ROOT / "voicemesh").exists(), "code belongs in its card folder, not a top-level voicemesh/"


def test_each_component_lives_in_its_card_folder_as_engine_servicer_and_server() -> None:
    package_dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]
    for name, component in COMPONENTS.items():
        folder = ROOT / component.folder / "voicemesh" / name
        assert package_dirs[component.package] == f"{component.folder}/voicemesh/{name}"
        for module in ("__main__", "server", "servicer", "config"):
            assert (folder / f"{module}.py").is_file(), f"{component.folder} has no {module}.py"
        assert "voicemesh.common.components import run" in (folder / "__main__.py").read_text()
    for name in ("stt", "tts", "core"):
        assert (ROOT / COMPONENTS[name].folder / "voicemesh" / name / "engine.py").is_file()


def test_the_registry_names_real_proto_services_and_settings() -> None:
    served = {
        service.full_name
        for module in (
            core_pb2,
            gateway_pb2,
            retrieval_pb2,
            speech_to_text_pb2,
            text_to_speech_pb2,
            user_data_pb2,
            voice_pb2,
        )
        for service in module.DESCRIPTOR.services_by_name.values()
    }
    for name, component in COMPONENTS.items():
        assert set(component.services) <= served, component.services
        settings = component.settings_class()
        assert settings.model_config["env_prefix"] == component.env_prefix
        assert settings.model_fields["port"].default == component.port
        assert settings.model_fields["metrics_port"].default == component.metrics_port
        assert settings.section == name


def test_every_package_in_the_tree_is_built() -> None:
    """A package folder that pyproject does not list would be missing from the wheel."""
    package_dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert sorted(package_dirs) == sorted(PYPROJECT["tool"]["setuptools"]["packages"])
    listed = {ROOT / folder for folder in package_dirs.values()}
    for root in ("runtime", "services", "gateway", "clients/python"):
        for init in (ROOT / root).rglob("__init__.py"):
            assert init.parent in listed, f"{init.parent.relative_to(ROOT)} is not in pyproject's packages"
    namespace_inits = [p for p in ROOT.glob("*/**/voicemesh/__init__.py")]
    assert not namespace_inits, f"voicemesh is a namespace package: remove {namespace_inits}"


def lint_imports(config: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS} is missing: install the dev extra (import-linter)"
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(config)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_the_boundaries_between_components_hold() -> None:
    contracts = PYPROJECT["tool"]["importlinter"]["contracts"]
    result = lint_imports(ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts)} kept, 0 broken" in result.stdout


def test_a_broken_boundary_is_caught(tmp_path: Path) -> None:
    """The linter sees the real imports: a contract the code breaks today is reported broken."""
    config = tmp_path / "broken.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["voicemesh.gateway", "voicemesh.rpc"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "the gateway without rpc"\n'
        'type = "forbidden"\n'
        'source_modules = ["voicemesh.gateway"]\n'
        'forbidden_modules = ["voicemesh.rpc"]\n'
    )
    result = lint_imports(config)
    assert result.returncode == 1 and "BROKEN" in result.stdout, result.stdout + result.stderr
    assert "voicemesh.gateway.servicer -> voicemesh.rpc" in result.stdout


def test_the_readme_layout_table_says_what_the_registry_says() -> None:
    rows = (ROOT / "README.md").read_text().splitlines()
    for name, component in COMPONENTS.items():
        (row,) = [line for line in rows if line.startswith(f"| `{component.folder}/` |")]
        assert f"`{name}`, port {component.port}" in row and f"`[{component.extra}]`" in row, row
        for service in component.services:
            assert f"`{service.rpartition('.')[2]}`" in row, row
