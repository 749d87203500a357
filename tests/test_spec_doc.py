"""docs/spec.md keeps up with the spec: every table and field of the shipped spec and every
field grader/spec/__init__.py reads is documented, the validation messages are quoted as spec.py
words them, and the TOML examples parse (the complete ones load with load_spec).
Fast: reads files, starts no worker."""

import ast
import re
import tomllib
from pathlib import Path

import pytest

from grader import spec as spec_module
from grader.shared.resources import DEFAULT_SPEC
from grader.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "spec.md").read_text()
COMPLETE_MARK = "<!-- complete-spec -->"


def _documented(name: str) -> bool:
    """Named as code in the doc: `name` or `"name"` (a value), a table header naming it
    ([name], [name.x], [x.name], [[name]]), or `name = ...` in a TOML example."""
    quoted = (f"`{name}`", f'`"{name}"`', f"[{name}]", f"[{name}.", f".{name}]", f"[[{name}]]")
    return any(q in DOC for q in quoted) or re.search(rf"^\s*{re.escape(name)}\s*=", DOC, re.M) is not None


def _default_names() -> set[str]:
    """Every table name and field name of the shipped spec (not the values: the
    [contract.classes] keys are class names, not fields)."""
    data = tomllib.loads(DEFAULT_SPEC.read_text())
    names = set(data)
    names |= set(data["assignment"]) | set(data["dataset"]) | set(data["dataset"]["synthetic"])
    names |= {key for family in data["families"].values() for key in family}
    names |= set(data["contract"])
    for array in ("variants", "rubric", "comparisons"):
        names |= {key for entry in data[array] for key in entry}
    names |= {key for variant in data["variants"] for key in variant.get("traits", {})}
    names |= {key for variant in data["variants"] for key in variant.get("architecture", {})}
    names |= {key for profile in data["profiles"].values() for key in profile}
    names |= set(data["policy"])
    return names


def _fields_spec_py_reads() -> set[str]:
    """String keys grader/spec/__init__.py reads from the TOML data: `d["key"]` and `d.get("key", ...)`
    in load_spec and the _parse functions, plus the profile fields and accepted values."""
    tree = ast.parse(Path(spec_module.__file__).read_text())
    names: set[str] = set()
    for func in ast.walk(tree):
        if not (isinstance(func, ast.FunctionDef) and (func.name.startswith("_parse") or func.name == "load_spec")):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                    and isinstance(node.slice.value, str):
                names.add(node.slice.value)
            elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) \
                    and isinstance(node.left.value, str):
                names.add(node.left.value)       # "test_seed" in synthetic
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    known = {key for table in spec_module.SPEC_KEYS.values() for key in table}
    return names | known | set(spec_module.PROFILE_FIELDS) | set(spec_module.DATASET_KINDS) | set(spec_module.OPTIMIZERS)


def _toml_blocks() -> list[tuple[bool, str]]:
    """(marked complete, text) for every ```toml block of the doc."""
    blocks = []
    for match in re.finditer(r"(?:^(<!-- complete-spec -->)\n)?^```toml\n(.*?)^```", DOC, re.M | re.S):
        blocks.append((match.group(1) is not None, match.group(2)))
    return blocks


def test_default_spec_tables_are_documented():
    data = tomllib.loads(DEFAULT_SPEC.read_text())
    # A table: its header, or a sub-table's ([families.fcn]); an array of tables: [[name]].
    headers = [f"[{name}" if isinstance(value, dict) else f"[[{name}]]" for name, value in data.items()]
    headers += ["[dataset]", "[dataset.synthetic]", "[dataset.options]", "[contract]", "[contract.classes]",
                "[families.", "[profiles.", "[assignment]", "[policy]"]
    missing = [h for h in headers if h not in DOC]
    assert not missing, f"docs/spec.md does not mention {missing}"


def test_default_spec_fields_are_documented():
    missing = sorted(name for name in _default_names() if not _documented(name))
    assert not missing, f"fields of {DEFAULT_SPEC.name} missing from docs/spec.md: {missing}"


def test_fields_spec_py_reads_are_documented():
    names = _fields_spec_py_reads()
    # The AST walk must see the fields; if spec.py changes shape, this says so rather than passing on nothing.
    assert {"class_names", "root", "options", "performance_share", "pairs", "grid_images", "test_seed"} <= names
    missing = sorted(name for name in names if not _documented(name))
    assert not missing, f"fields grader/spec/__init__.py reads but docs/spec.md does not mention: {missing}"


def test_validation_messages_are_quoted():
    """The literal text of every message spec.py raises appears in the doc, so the doc's
    quotes change when the messages do."""
    tree = ast.parse(Path(spec_module.__file__).read_text())
    fragments = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                and getattr(node.exc.func, "id", "") in ("SpecError", "KeyError"):
            for arg in node.exc.args:
                for sub in ast.walk(arg):
                    if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                        text = sub.value.strip(" :;,")
                        if len(text) >= 10:
                            fragments.append(text)
    assert len(fragments) >= 15
    missing = [f for f in fragments if f not in DOC]
    assert not missing, f"messages of grader/spec/__init__.py not quoted in docs/spec.md: {missing}"


def test_toml_examples_parse():
    blocks = _toml_blocks()
    assert len(blocks) >= 8
    for _, text in blocks:
        tomllib.loads(text)


@pytest.mark.parametrize("text", [text for complete, text in _toml_blocks() if complete])
def test_complete_examples_load(tmp_path, text):
    path = tmp_path / "example.toml"
    path.write_text(text)
    assignment = load_spec(path)
    assert assignment.variants and assignment.rubric and assignment.profiles


def test_minimal_example_has_the_documented_defaults(tmp_path):
    complete = [text for complete, text in _toml_blocks() if complete]
    assert complete, f"docs/spec.md has no TOML block marked {COMPLETE_MARK}"
    path = tmp_path / "minimal.toml"
    path.write_text(complete[0])
    a = load_spec(path)
    smoke = a.profile("smoke")
    # What the doc says the left-out fields default to.
    assert (smoke.title, smoke.grid_images, smoke.seed, smoke.pretrained) == ("smoke", 4, 0, False)
    assert (a.dataset.train_seed, a.dataset.val_seed) == (1, 2)
    assert a.families["unet"].title == "unet" and a.families["unet"].pretrained_kwarg is None
    assert a.contract.num_classes_kwarg == "num_classes"
    assert [item.id for item in a.rubric if item.manual] == ["skips_discussion"]
    assert a.total_marks == 100 and a.automatic_marks == 80
