"""The code fingerprints follow behaviour: comments, docstrings and layout change nothing, code does."""

from __future__ import annotations

import ast

from pipeline.fingerprint import canonical_tree, files_digest, source_digest

BASE = '''"""Module docstring."""

import math


def area(r):
    """Area of a circle."""
    return math.pi * r**2
'''


def _digest(tmp_path, text: str, name: str = "m.py") -> bytes:
    path = tmp_path / name
    path.write_text(text)
    return source_digest(path)


def test_comments_docstrings_and_layout_change_nothing(tmp_path):
    base = _digest(tmp_path, BASE)
    reformatted = BASE.replace("math.pi * r**2", "(math.pi *\n            r ** 2)  # pi r squared")
    redocumented = BASE.replace("Area of a circle.", "The area.").replace("Module docstring.", "Other.")
    assert _digest(tmp_path, "# header comment\n" + reformatted + "\n\n# trailing\n") == base
    assert _digest(tmp_path, redocumented) == base


def test_a_docstring_only_body_stays_valid(tmp_path):
    assert _digest(tmp_path, 'def f():\n    """Only a docstring."""\n') == _digest(tmp_path, "def f():\n    pass\n")


def test_rewording_a_params_field_description_changes_nothing(tmp_path):
    """An attribute docstring is the field's description in the generated params reference: text, not code."""
    field = 'class S:\n    lr: float = 1e-3\n    """{}"""\n    epochs: int = 3\n'
    base = _digest(tmp_path, field.format("Peak learning rate."))
    assert _digest(tmp_path, field.format("The largest learning rate of the schedule.")) == base
    assert _digest(tmp_path, "class S:\n    lr: float = 1e-3\n    epochs: int = 3\n") == base
    assert _digest(tmp_path, field.format("x").replace("1e-3", "2e-3")) != base


def test_code_changes_change_the_digest(tmp_path):
    base = _digest(tmp_path, BASE)
    assert _digest(tmp_path, BASE.replace("r**2", "r**3")) != base
    assert _digest(tmp_path, BASE + "\nRADIUS = 1\n") != base
    assert _digest(tmp_path, BASE.replace("import math", "import math as m").replace("math.pi", "m.pi")) != base


def test_other_files_keep_content_hashes(tmp_path):
    assert _digest(tmp_path, "a: 1\n", "x.yaml") == b"a: 1\n"
    assert _digest(tmp_path, "a: 1  # note\n", "x.yaml") != b"a: 1\n"


def test_canonical_tree_leaves_out_empty_fields():
    """ast.dump's text differs between Python versions (empty fields added or dropped); ours omits them."""
    text = canonical_tree(ast.parse("def f(x):\n    return x\n"))
    assert "type_params" not in text and "decorator_list" not in text and "lineno" not in text
    assert text.startswith("Module(body=[FunctionDef(name='f',")


def test_files_digest_depends_on_names_and_code(tmp_path, monkeypatch):
    import pipeline.fingerprint as fp

    monkeypatch.setattr(fp, "REPO_ROOT", tmp_path)
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("x = 1  # same code\n")
    assert files_digest(["a.py"]) != files_digest(["b.py"])  # the name counts
    first = files_digest(["a.py"])
    (tmp_path / "a.py").write_text('"""Doc."""\nx = 1\n')
    assert files_digest(["a.py"]) == first
