"""Every picture the README and the notebooks' markdown cells show exists and decodes (PIL ``load()``)."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
#: ``![alt](target "title")`` and ``<img src="target">``.
LINK = re.compile(r"!\[[^\]]*\]\(\s*(?:<([^>]+)>|([^)\s]+))(?:\s+\"[^\"]*\")?\s*\)|<img\s[^>]*src=[\"']([^\"']+)[\"']")


def image_links(markdown: str) -> list[str]:
    return ["".join(groups) for groups in LINK.findall(markdown)]


def documents() -> list[tuple[str, Path, str, dict]]:
    """``(label, folder links are relative to, markdown, attachments)`` for the README and each markdown cell."""
    found = [("README.md", REPO, (REPO / "README.md").read_text(), {})]
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        for k, cell in enumerate(cells):
            if cell["cell_type"] == "markdown":
                text = "".join(cell["source"])
                found.append((f"{notebook.name} cell {k}", notebook.parent, text, cell.get("attachments", {})))
    return found


def linked_images() -> list[tuple[str, str, Path, dict]]:
    return [
        (label, link, folder, attachments)
        for label, folder, text, attachments in documents()
        for link in image_links(text)
    ]


def test_the_link_pattern_reads_markdown_and_html_images() -> None:
    text = '![a](docs/x.png) text ![b](<y z.jpg>) ![c](w.png "title") <img alt="d" src="v.gif"> [not](n.png)'
    assert image_links(text) == ["docs/x.png", "y z.jpg", "w.png", "v.gif"]
    assert len(linked_images()) >= 6  # the README's diagnostics pictures at least


@pytest.mark.parametrize(("label", "link", "folder", "attachments"), linked_images())
def test_every_linked_picture_opens(label: str, link: str, folder: Path, attachments: dict) -> None:
    if link.startswith(("http://", "https://")):
        pytest.fail(f"{label} links the remote picture {link}: pictures must be in the repository")
    if link.startswith("attachment:"):
        (encoded,) = attachments[link.removeprefix("attachment:")].values()
        data = base64.b64decode(encoded)
    else:
        path = folder / link
        assert path.is_file(), f"{label} links {link}, which does not exist"
        data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as picture:
        picture.load()  # decodes every chunk: a corrupt IDAT (bad CRC) raises here
        assert min(picture.size) > 0
