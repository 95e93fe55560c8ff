"""The HTML page as a browser draws it: real headless Chromium, a screenshot and the DOM."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from matplotlib.image import imread

from harness.model import Verdict
from harness.report import write_html
from tests.unit.test_report_html import make_run, write_series

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WIDTH, HEIGHT = 1280, 2000
TIMEOUT_S = 60


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with no network side trips and a profile of its own."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed; install Debian's chromium package")
    profile = tmp_path / "chromium-profile"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", *args,
    ]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT_S, check=True, cwd=tmp_path
    )


@pytest.fixture(params=[Verdict.PASS, Verdict.FAIL], ids=["pass", "fail"])
def verdict(request: pytest.FixtureRequest) -> Verdict:
    result: Verdict = request.param
    return result


@pytest.fixture
def page(verdict: Verdict, tmp_path: Path) -> Path:
    """The page of a passing run, or of a failing one whose fault never recovered."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    series = write_series(run_dir / "series.json")
    passed = verdict == Verdict.PASS
    run = make_run(passed=passed, recovered=passed)
    return write_html(run, series_path=series, out=run_dir / "report.html")


def png_size(path: Path) -> tuple[int, int]:
    """Return (width, height) from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert b"\x89PNG\r\n\x1a\n" == header[:8]
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_chromium_draws_the_page_full_width_and_not_blank(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri())
    assert (WIDTH, HEIGHT) == png_size(shot)
    pixels = imread(shot)
    colours = {tuple(pixel) for pixel in pixels[::8, ::8].reshape(-1, pixels.shape[-1]).tolist()}
    assert len(colours) > 20


def test_the_dom_has_the_badge_and_one_row_per_slo(
    page: Path, verdict: Verdict, tmp_path: Path
) -> None:
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert f'<div id="verdict" class="badge {verdict}">{verdict}' in dom
    assert 2 == dom.count('<tr class="slo">')
    assert 4 == dom.count('src="data:image/png;base64,')
    assert '<table id="load">' in dom
