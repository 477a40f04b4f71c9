"""Reading printed labels back with a real decoder: ZBar's ``zbarimg`` (Debian zbar-tools).

The SVGs are drawn to pixels from their own geometry (the Code 128 bars of
python-barcode are ``<rect>`` elements, the QR code of segno one path of
horizontal runs), the PDF is rasterised with poppler's ``pdftoppm``, and
``zbarimg`` decodes the pixels: nothing of the encoders is reused to decode.
Tests that need the tools skip when they are absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ZBARIMG = shutil.which("zbarimg")
PDFTOPPM = shutil.which("pdftoppm")
needs_zbar = pytest.mark.skipif(ZBARIMG is None, reason="zbarimg (zbar-tools) is not installed")
needs_poppler = pytest.mark.skipif(
    PDFTOPPM is None, reason="pdftoppm (poppler-utils) is not installed"
)


def decode(image: Path) -> list[str]:
    """Every symbol ZBar finds in ``image``, as ``TYPE:data`` (e.g. ``CODE-128:BB0000001N``)."""
    assert ZBARIMG is not None
    out = subprocess.run(
        [ZBARIMG, "-q", str(image)], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.returncode in (0, 4), out.stderr  # 4: no symbol found
    return sorted(line for line in out.stdout.splitlines() if line)


def code128_svg_png(svg: str, path: Path, *, px_per_mm: int = 15) -> Path:
    """Draw the black ``<rect>`` bars of a python-barcode SVG to a PNG."""
    from PIL import Image, ImageDraw

    bars = [
        (float(x), float(w))
        for x, w in re.findall(
            r'<rect x="([\d.]+)mm" y="[\d.]+mm" width="([\d.]+)mm" height="[\d.]+mm" '
            r'style="fill:black;"',
            svg,
        )
    ]
    assert bars, "no bars in the SVG"
    width = int((max(x + w for x, w in bars) + 4) * px_per_mm)
    img = Image.new("L", (width, 20 * px_per_mm), 255)
    draw = ImageDraw.Draw(img)
    for x, w in bars:
        x0 = round((x + 2) * px_per_mm)
        draw.rectangle([x0, 2 * px_per_mm, round((x + 2 + w) * px_per_mm) - 1, 16 * px_per_mm], 0)
    img.save(path)
    return path


def qr_svg_png(svg: str, path: Path, *, px: int = 8) -> Path:
    """Draw the dark modules of a segno SVG (``M``/``m`` moves, ``h`` runs) to a PNG."""
    from PIL import Image, ImageDraw

    size = re.search(r'width="(\d+)" height="(\d+)"', svg)
    d = re.search(r' d="([^"]+)"', svg)
    scale = re.search(r'transform="scale\((\d+)\)"', svg)
    assert size, svg[:200]
    assert d, svg[:200]
    unit = int(scale.group(1)) if scale else 1
    n = int(size.group(1)) // unit
    img = Image.new("L", (n * px, n * px), 255)
    draw = ImageDraw.Draw(img)
    x = y = 0.0
    for cmd, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", d.group(1)):
        if cmd == "M":
            x, y = float(a), float(b)
        elif cmd == "m":
            x, y = x + float(a), y + float(b)
        else:
            run = float(a)
            row = int(y - 0.5)
            draw.rectangle([int(x) * px, row * px, int(x + run) * px - 1, (row + 1) * px - 1], 0)
            x += run
    img.save(path)
    return path


def pdf_pages_png(pdf: bytes, folder: Path, *, dpi: int = 200) -> list[Path]:
    """Rasterise every page of a PDF with ``pdftoppm``; refuses a file poppler cannot read."""
    assert PDFTOPPM is not None
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "sheet.pdf"
    src.write_bytes(pdf)
    out = subprocess.run(
        [PDFTOPPM, "-r", str(dpi), "-gray", "-png", str(src), str(folder / "page")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return sorted(folder.glob("page*.png"))


def sheet_cells(page: Path, grid: tuple[int, int, float, float], *, dpi: int = 200) -> list[Path]:
    """Cut a rasterised A4 label sheet into its label cells (one PNG each, row by row)."""
    from PIL import Image

    cols, rows, mx, my = grid
    img = Image.open(page)
    px = dpi / 72
    w = (595.2756 - 2 * mx) / cols
    h = (841.8898 - 2 * my) / rows
    out = []
    for r in range(rows):
        for c in range(cols):
            box = (
                round((mx + c * w) * px),
                round((my + r * h) * px),
                round((mx + (c + 1) * w) * px),
                round((my + (r + 1) * h) * px),
            )
            path = page.with_name(f"{page.stem}-{r}-{c}.png")
            img.crop(box).save(path)
            out.append(path)
    return out
