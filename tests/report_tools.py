"""Looking at reports as a person would: PDF pages as PNG (poppler's pdftoppm) and a
screenshot of the HTML in headless Chromium. Both programs are installed by .ci/setup;
on a machine without them the tests that need them skip, except in CI, where they fail."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SUBMISSION_BLUE = (0x1F, 0x5F, 0xA8)  # grader.report.figures.SUBMISSION


def need(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        message = f"{program} is not installed (.ci/setup installs it with apt-get when run as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def pdf_pages(pdf: Path, out: Path, dpi: int = 40) -> list[np.ndarray]:
    subprocess.run([need("pdftoppm"), "-r", str(dpi), "-png", str(pdf), str(out / "page")], check=True,
                   capture_output=True, timeout=120)
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(out.glob("page*.png"))]


def screenshot(html: Path, png: Path, width: int = 1200, height: int = 1600) -> np.ndarray:
    chromium = need("chromium")
    # --host-resolver-rules makes every name lookup fail: a report that needed the network would
    # show broken images, and the static checks below would have caught the URL first anyway.
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--host-resolver-rules=MAP * ~NOTFOUND", f"--window-size={width},{height}",
                    f"--screenshot={png}", html.resolve().as_uri()], check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(png).convert("RGB"))


def has_colour(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 12, min_pixels: int = 20) -> bool:
    return int((np.abs(image.astype(int) - colour).max(axis=-1) <= tolerance).sum()) >= min_pixels


def external_references(html: str) -> list[str]:
    """Every src/href/url() in the HTML that is not a data: URI or an in-page/relative link."""
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html) + re.findall(r"url\(([^)]*)\)", html)
    return [r for r in refs if re.match(r"^\s*['\"]?(https?:|//|file:|ftp:)", r)]
