"""The README's worked examples run as written."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


@pytest.mark.slow
def test_add_a_baseline_example_is_discovered_and_trains(tmp_path):
    block = re.search(r"```python\n(# baselines/tiny_unet.py\n.*?)```", README.read_text(), re.S)
    assert block, "README lost its 'Add a baseline' example"
    (tmp_path / "tiny_unet.py").write_text(block.group(1))
    script = textwrap.dedent(f"""
        import torch
        import baselines
        baselines.__path__.append({str(tmp_path)!r})
        from models import create_model, list_models, model_info
        assert "tiny_unet" in list_models()
        model = create_model("tiny_unet")
        out = model(torch.randn(2, 3, 32, 48))
        assert out.shape == (2, 1, 32, 48), out.shape
        out.mean().backward()
        print(model_info("tiny_unet").family)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "CNN"


def test_ph2_image_sizes_are_the_real_ones():
    """PH2's dermoscopic images are 761-769 x 553-577 pixels, not all 768 x 560."""
    text = README.read_text()
    line = next(line for line in text.splitlines() if "IMD<nnn>_Dermoscopic_Image/IMD<nnn>.bmp" in line)
    assert "761-769 x 553-577" in line and "768 x 560" not in text


def test_licence_table_is_the_sources_table():
    """README "Licences and citations" shows each dataset's licence, its source and citation as datasets/catalog.py."""
    from datasets.catalog import SOURCES

    text = README.read_text()
    for s in SOURCES.values():
        if s.citation:
            assert f"| {s.title} (`{s.name}`) | {s.licence} | {s.licence_source} | {s.citation} |" in text, s.name
        for archive in s.archives:
            if archive.url:
                assert archive.url.rsplit("/", 1)[0] in text, archive.url
            if archive.hash:
                digest = archive.hash.split(":")[1]
                assert f"{digest[:8]}…{digest[-4:]}" in text or digest in text, archive.name
