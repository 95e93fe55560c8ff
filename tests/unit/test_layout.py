"""Guards on the repository's layout."""

from __future__ import annotations

import subprocess
import sys

import harness
from tests.conftest import REPO_ROOT


def test_platform_folder_is_not_a_package_so_stdlib_platform_still_imports() -> None:
    assert not (REPO_ROOT / "platform" / "__init__.py").exists()
    out = subprocess.run(
        [sys.executable, "-c", "import platform; print(platform.__file__); platform.system()"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "site-packages" not in out.stdout
    assert str(REPO_ROOT / "platform") not in out.stdout


def test_public_surface_is_a_sorted_all() -> None:
    assert sorted(harness.__all__) == harness.__all__
    for name in harness.__all__:
        assert hasattr(harness, name), name
