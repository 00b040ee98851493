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
