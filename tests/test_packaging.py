"""The installable distribution contains every package (Dataflow workers install it non-editable)."""

import os
import tomllib

from .conftest import repo_root

MAPPING = {"pipelines": "touchline.pipelines", "transforms": "touchline.transforms", "schemas": "touchline.schemas"}


def test_every_package_folder_is_listed_in_pyproject():
    root = repo_root()
    with open(os.path.join(root, "pyproject.toml"), "rb") as fh:
        listed = set(tomllib.load(fh)["tool"]["setuptools"]["packages"])
    found = set()
    for folder, package in MAPPING.items():
        for dirpath, _dirs, files in os.walk(os.path.join(root, folder)):
            if "__init__.py" in files and "__pycache__" not in dirpath:
                rel = os.path.relpath(dirpath, os.path.join(root, folder))
                found.add(package if rel == "." else package + "." + rel.replace(os.sep, "."))
    assert found == listed, f"missing from pyproject: {sorted(found - listed)}; stale: {sorted(listed - found)}"


def test_data_files_are_shipped():
    root = repo_root()
    with open(os.path.join(root, "pyproject.toml"), "rb") as fh:
        data = tomllib.load(fh)["tool"]["setuptools"]["package-data"]
    assert "*.avsc" in data["touchline.schemas"]
