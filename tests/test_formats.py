"""grader.submission.formats and its steps (archive, notebooks, toplevel, imports): folders, zips,
notebooks and scripts turned into an importable folder."""

import json
import os
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import nbformat
import pytest

from grader.submission.formats import (
    Module,
    SubmissionError,
    ZipLimits,
    prepare_submission,
)
from grader.submission.toplevel import filter_source


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def _zip(path: Path, entries: dict, method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in entries.items():
            if isinstance(data, zipfile.ZipInfo):
                zf.writestr(data, b"/etc")
            else:
                zf.writestr(name, data)
    return path


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _run(prepared, code: str) -> str:
    """Run `code` in a fresh interpreter with the prepared sys_path in front; return stdout."""
    paths = [str(prepared.root / d) for d in prepared.sys_path]
    # Like the worker: its own imports first, then the submission's folders in front of sys.path
    # (a student's `types.py` shadows the standard module for anything imported later).
    script = f"import sys, importlib, importlib.util, json\nsys.path[:0] = {paths!r}\n" + textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-I", "-c", script], cwd=prepared.root, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _import_all(prepared) -> dict[str, list[str]]:
    """Import every module the way the worker does (by name, or by path when name is "")."""
    mods = [(m.path, m.name) for m in prepared.modules]
    out = _run(prepared, f"""
        import importlib, importlib.util, json
        found = {{}}
        for path, name in {mods!r}:
            if name:
                mod = importlib.import_module(name)
            else:
                spec = importlib.util.spec_from_file_location(f"by_path_{{len(found)}}", path)
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
            found[path] = sorted(k for k in vars(mod) if not k.startswith("__"))
        print(json.dumps(found))
    """)
    return json.loads(out.splitlines()[-1])


# --------------------------------------------------------------------------- folders


def test_folder_copy_skips_links_caches_and_environments(tmp_path):
    outside = _write(tmp_path / "outside", {"secret.py": "KEY = 1\n", "data/x.txt": "x"})
    src = _write(tmp_path / "hw3", {
        "model.py": "class Net: pass\n",
        "nested/venv_like/pyvenv.cfg": "home = /usr\n",
        "nested/venv_like/lib/site.py": "raise SystemExit\n",
        "venv/lib/x.py": "",
        ".venv/lib/y.py": "",
        "conda_env/conda-meta/history": "",
        "__pycache__/model.cpython-311.pyc": "",
        ".git/config": "",
        "node_modules/a/index.js": "",
        ".ipynb_checkpoints/model-checkpoint.py": "",
        "wandb/run-20240101/files/code.py": "",
        "README.md": "hi",
    })
    (src / "linked.py").symlink_to(outside / "secret.py")
    (src / "linked_dir").symlink_to(outside / "data")
    (src / ".DS_Store").write_bytes(b"\0")

    p = prepare_submission(src, tmp_path / "out")
    assert _files(p.root) == {"model.py", "README.md"}
    assert not (p.root / "linked.py").exists() and not (p.root / "linked_dir").exists()
    notes = "\n".join(p.notes)
    assert "symbolic link" in notes and "linked.py" in notes and "linked_dir" in notes
    assert "nested/venv_like/ (virtual environment)" in notes and "wandb/ (wandb run logs)" in notes
    assert p.modules == (Module("model.py", "model"),) and p.sys_path == (".",)


def test_folder_size_limits(tmp_path, monkeypatch):
    from grader.submission import staging

    monkeypatch.setattr(staging, "MAX_FILE_BYTES", 100)
    monkeypatch.setattr(staging, "MAX_CHECKPOINT_BYTES", 1000)
    src = _write(tmp_path / "s", {"model.py": "X = 1\n", "big.csv": "x" * 200, "w.pt": "x" * 500,
                                  "huge.pth": "x" * 2000})
    p = prepare_submission(src, tmp_path / "out")
    assert _files(p.root) == {"model.py", "w.pt"}
    assert any("big.csv" in n and "huge.pth" in n and "size limit" in n for n in p.notes)

    many = _write(tmp_path / "many", {f"f{i}.py": "" for i in range(6)})
    with pytest.raises(SubmissionError, match="more than 5 files"):
        prepare_submission(many, tmp_path / "out2", ZipLimits(max_files=5))
    assert not any((tmp_path / "out2").iterdir())  # emptied again on failure


def test_folder_holding_only_a_zip_or_only_a_notebook(tmp_path):
    one_zip = tmp_path / "inbox1"
    one_zip.mkdir()
    _zip(one_zip / "hw3.zip", {"hw3/model.py": "class Net: pass\n"})
    (one_zip / "README.txt").write_text("my submission")
    p = prepare_submission(one_zip, tmp_path / "o1")
    assert [m.path for m in p.modules] == ["model.py"]
    assert any("using it" in n for n in p.notes) and any("extracted hw3.zip (1 files)" in n for n in p.notes)

    one_nb = tmp_path / "inbox2"
    one_nb.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("class Net:\n    pass")])
    nbformat.write(nb, one_nb / "hw3.ipynb")
    (one_nb / "README.md").write_text("readme")
    p = prepare_submission(one_nb, tmp_path / "o2")
    assert p.modules == (Module("hw3.py", "hw3"),)

    two = tmp_path / "inbox3"
    two.mkdir()
    _zip(two / "a.zip", {"a.py": ""})
    _zip(two / "b.zip", {"b.py": ""})
    with pytest.raises(SubmissionError, match="2 zip files"):
        prepare_submission(two, tmp_path / "o3")
    with pytest.raises(SubmissionError, match="no .py, .ipynb or .zip"):
        prepare_submission(_write(tmp_path / "empty", {"README.md": "x"}), tmp_path / "o4")


def test_caller_errors(tmp_path):
    with pytest.raises(SubmissionError, match="no such file"):
        prepare_submission(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "hw.rar").write_bytes(b"Rar!")
    with pytest.raises(SubmissionError, match=r"\.rar"):
        prepare_submission(tmp_path / "hw.rar", tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ValueError, match="empty"):
        prepare_submission(_write(tmp_path / "s", {"a.py": ""}), tmp_path / "full")


# --------------------------------------------------------------------------- zips


def test_zip_single_top_folder_is_the_root(tmp_path):
    z = _zip(tmp_path / "hw3.zip", {
        "hw3/model.py": "class Net: pass\n",
        "hw3/utils/helpers.py": "def f(): pass\n",
        "hw3/.DS_Store": b"\0",
        "__MACOSX/hw3/._model.py": b"\0",
        "hw3/__pycache__/model.cpython-311.pyc": b"\0",
    })
    p = prepare_submission(z, tmp_path / "out")
    assert _files(p.root) == {"model.py", "utils/helpers.py"}
    assert [m.name for m in p.modules] == ["model", "utils.helpers"]
    assert any("single top-level folder hw3/" in n for n in p.notes)


def _patch_zip(path: Path, local_offset: int, central_offset: int, value: bytes) -> None:
    data = bytearray(path.read_bytes())
    loc, cen = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    if local_offset is not None:
        data[loc + local_offset: loc + local_offset + len(value)] = value
    data[cen + central_offset: cen + central_offset + len(value)] = value
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case, pattern", [
    ("dotdot", r"entry '\.\./evil\.py' contains '\.\.'"),
    ("absolute", r"entry '/abs\.py' has an absolute path"),
    ("drive", r"entry 'C:/x\.py' has an absolute path"),
    ("encrypted", r"entry 'model\.py' is encrypted"),
    ("too_many", r"has 5 entries, more than the limit of 3"),
    ("too_big", r"expands to 2000 bytes, more than the limit of 1000"),
    ("bomb", r"entry 'zeros\.bin' expands \d+ times.*zip bomb"),
    ("corrupt", r"hw\.zip is not a valid zip file"),
    ("lying_header", r"hw\.zip is not a valid zip file: entry 'model\.py'"),
])
def test_zip_rejections(tmp_path, case, pattern):
    z, limits = tmp_path / "hw.zip", ZipLimits(max_files=3, max_total_bytes=1000)
    if case == "dotdot":
        _zip(z, {"model.py": "", "../evil.py": "import os"})
    elif case == "absolute":
        _zip(z, {"/abs.py": ""})
    elif case == "drive":
        _zip(z, {"C:/x.py": ""})
    elif case == "encrypted":
        _zip(z, {"model.py": "X = 1\n"}, zipfile.ZIP_STORED)
        _patch_zip(z, 6, 8, b"\x01\x00")  # general-purpose flag bit 0: encrypted
    elif case == "too_many":
        _zip(z, {f"f{i}.py": "" for i in range(5)})
    elif case == "too_big":
        _zip(z, {"model.py": "", "data.bin": os.urandom(2000)})
    elif case == "bomb":
        limits = ZipLimits()
        _zip(z, {"model.py": "", "zeros.bin": bytes(2 * 1024**2)})
    elif case == "corrupt":
        z.write_bytes(b"PK\x03\x04 this is not really a zip")
    elif case == "lying_header":
        _zip(z, {"model.py": os.urandom(500)}, zipfile.ZIP_STORED)
        _patch_zip(z, None, 24, (10).to_bytes(4, "little"))  # central directory: "10 bytes"
    with pytest.raises(SubmissionError, match=pattern):
        prepare_submission(z, tmp_path / "out", limits)
    assert not any((tmp_path / "out").iterdir())


def test_zip_symlink_entries_are_skipped_with_a_note(tmp_path):
    link = zipfile.ZipInfo("hw/data")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = _zip(tmp_path / "hw.zip", {"hw/model.py": "class Net: pass\n", "hw/data": link})
    p = prepare_submission(z, tmp_path / "out")
    assert _files(p.root) == {"model.py"} and not (p.root / "data").is_symlink()
    assert any("symbolic link" in n and "hw/data" in n for n in p.notes)


def test_zip_inside_a_zip_is_explained(tmp_path):
    inner = _zip(tmp_path / "inner.zip", {"model.py": ""})
    outer = _zip(tmp_path / "outer.zip", {"inner.zip": inner.read_bytes()})
    with pytest.raises(SubmissionError, match="zip inside a zip"):
        prepare_submission(outer, tmp_path / "out")


# --------------------------------------------------------------------------- notebooks


def _notebook(path: Path, cells: list) -> Path:
    nb = nbformat.v4.new_notebook()
    for kind, source in cells:
        maker = {"md": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell,
                 "raw": nbformat.v4.new_raw_cell}[kind]
        nb.cells.append(maker(textwrap.dedent(source)))
    nbformat.write(nb, path)
    return path


def test_notebook_becomes_a_filtered_module(tmp_path):
    nb = _notebook(tmp_path / "hw3.ipynb", [
        ("md", "# HW3: segmentation"),
        ("code", "%matplotlib inline\n!pip install wandb\nimport math\nimport os\n"),
        ("code", "class UNet:\n    def __init__(self, n_classes=13):\n        self.n = n_classes\n"),
        ("code", "%%time\ntrain(UNet(), epochs=50)\n"),
        ("code", "model = UNet()\nopen('trained.txt', 'w').write('trained')\n"),
        ("code", "for epoch in range(3):\n    print(epoch)\n"),
        ("code", "IN_COLAB = False\nif IN_COLAB:\n    !pip install segmentation-models\nfiles = !ls\nUNet?\n"),
        ("raw", "not code"),
    ])
    p = prepare_submission(nb, tmp_path / "out")
    text = (p.root / "hw3.py").read_text()
    lines = text.splitlines()
    for n in (2, 3, 4, 5, 6, 7):  # numbered among all cells, markdown included
        assert f"# --- cell {n} ---" in lines
    assert "# --- cell 1 ---" not in lines and "# --- cell 8 ---" not in lines
    assert not [ln for ln in lines if ln.lstrip().startswith(("%", "!"))]
    assert "class UNet:" in lines and "import math" in lines
    assert "    pass  # removed: !pip install segmentation-models" in lines  # inside `if IN_COLAB:`
    assert "train(UNet(), epochs=50)" not in text  # the %%time cell is gone

    skipped = p.skipped["hw3.py"]
    assert [s.split(": ", 1)[1] for s in skipped] == [
        "model = UNet()", "open('trained.txt', 'w').write('trained')", "for epoch in range(3):"]
    original = nb.with_suffix(".py")  # line numbers refer to the generated file
    assert not original.exists()
    skipped_lines = [int(s.split()[1].rstrip(":")) for s in skipped]
    assert skipped_lines == [lines.index("# --- cell 5 ---") + 2, lines.index("# --- cell 5 ---") + 3,
                             lines.index("# --- cell 6 ---") + 2]
    assert all(lines[n - 1] == "" for n in skipped_lines)  # blanked in place
    assert any(n.startswith("notebook hw3.ipynb -> hw3.py (6 code cells of 8") for n in p.notes)

    found = _import_all(p)
    assert "UNet" in found["hw3.py"] and "IN_COLAB" in found["hw3.py"] and "model" not in found["hw3.py"]
    assert not (p.root / "trained.txt").exists()


def test_notebook_magic_detection_only_at_statement_starts(tmp_path):
    nb = _notebook(tmp_path / "fmt.ipynb", [
        ("code", ('MSG = ("epoch %d"\n       % 3)\nDOC = """\n!not a shell line\n%not a magic\n"""\n'
                  "TOTAL = 1 + \\\n    2\n!echo this one is\n")),
    ])
    p = prepare_submission(nb, tmp_path / "out")
    text = (p.root / "fmt.py").read_text()
    assert "       % 3)" in text and "!not a shell line" in text and "%not a magic" in text
    assert "# removed: !echo this one is" in text and p.skipped == {}
    assert any("1 magic/shell line(s)" in n for n in p.notes)


def test_notebook_writefile_cells_become_files(tmp_path):
    nb = _notebook(tmp_path / "hw.ipynb", [
        ("code", "%%writefile blocks.py\nclass Block:\n    pass\n"),
        ("code", "%%writefile /content/abs.py\nX = 1\n"),
        ("code", "from blocks import Block\nclass Net(Block):\n    pass\n"),
    ])
    p = prepare_submission(nb, tmp_path / "out")
    assert (p.root / "blocks.py").read_text() == "class Block:\n    pass\n"
    assert not (p.root / "content").exists()
    assert {m.path for m in p.modules} == {"blocks.py", "hw.py"}
    assert "Net" in _import_all(p)["hw.py"]


def test_invalid_notebook(tmp_path):
    bad = tmp_path / "hw3.ipynb"
    bad.write_text('{"cells": [ this is not json')
    with pytest.raises(SubmissionError, match=r"hw3\.ipynb is not a valid Jupyter notebook"):
        prepare_submission(bad, tmp_path / "out")
    # next to .py files, a broken notebook is skipped with a note
    src = _write(tmp_path / "s", {"model.py": "class Net: pass\n"})
    (src / "scratch.ipynb").write_text("not json")
    p = prepare_submission(src, tmp_path / "out2")
    assert [m.path for m in p.modules] == ["model.py"]
    assert any("scratch.ipynb is not a valid Jupyter notebook" in n for n in p.notes)


# --------------------------------------------------------------------------- the top-level filter


def _script(made: Path) -> str:
    lines = [
        '"""A student\'s script that trains at the top level."""',          # 1
        "import os",
        "import torch",
        "import torch.nn as nn",
        "from pathlib import Path",                                          # 5
        "try:",
        "    import wandb",
        "except ImportError:",
        "    wandb = None",
        "",                                                                  # 10
        'DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")',
        "NUM_CLASSES = 13",
        "ACT = nn.ReLU()",
        "ROOT = Path(__file__).resolve().parent",
        'CLASSES = [f"class_{i}" for i in range(NUM_CLASSES)]',             # 15
        f'os.makedirs("{made}")',
        'wandb.init(project="seg")',
        "for epoch in range(3):",
        "    open('epochs.txt', 'a').write('epoch')",
        "with open('log.txt', 'w') as f:",                                  # 20
        "    f.write('x')",
        "",
    ]
    lines += ["# padding"] * (29 - len(lines))
    lines += [
        "class UNet(nn.Module):",                                            # 30
        "    def __init__(self, num_classes=NUM_CLASSES):",
        "        super().__init__()",
        "        self.conv = nn.Conv2d(3, num_classes, 1)",
        "        self.act = ACT",
        "",
        "    def forward(self, x):",
        "        return self.act(self.conv(x))",
        "",
        "model = UNet(); train(model)",
        "params = model.parameters",                                         # 40
        'print("done")',
        'if __name__ == "__main__":',
        "    open('main.txt', 'w').write('main')",
    ]
    return "\n".join(lines) + "\n"


def test_script_filter_keeps_definitions_and_constants(tmp_path):
    made = tmp_path / "made_by_student"
    src = tmp_path / "s"
    src.mkdir()
    (src / "student.py").write_text(_script(made))
    p = prepare_submission(src / "student.py", tmp_path / "out")
    out = (p.root / "student.py").read_text().splitlines()
    assert out[29] == "class UNet(nn.Module):"  # line numbers preserved
    assert out[10].startswith("DEVICE = ") and out[12] == "ACT = nn.ReLU()" and out[11] == "NUM_CLASSES = 13"
    assert [s.split(":")[0] for s in p.skipped["student.py"]] == [
        "line 16", "line 17", "line 18", "line 20", "line 39", "line 39", "line 40", "line 41", "line 42"]
    assert p.skipped["student.py"][4:6] == ["line 39: model = UNet()", "line 39: train(model)"]
    assert not any("classes refer" in n for n in p.notes)  # UNet uses only kept names

    result = _run(p, """
        import json, torch, student
        net = student.UNet()
        print(json.dumps({"shape": list(net(torch.zeros(1, 3, 4, 4)).shape), "classes": student.NUM_CLASSES,
                          "relu": type(student.ACT).__name__, "device": str(student.DEVICE),
                          "root": str(student.ROOT), "n": len(student.CLASSES),
                          "model": hasattr(student, "model"), "params": hasattr(student, "params")}))
    """)
    got = json.loads(result.splitlines()[-1])
    assert got == {"shape": [1, 13, 4, 4], "classes": 13, "relu": "ReLU", "device": "cpu",
                   "root": str(p.root.resolve()), "n": 13, "model": False, "params": False}
    assert not made.exists()
    assert not any((p.root / n).exists() for n in ("epochs.txt", "log.txt", "main.txt"))


def test_filter_rules():
    text = textwrap.dedent('''\
        """Docstring."""
        from __future__ import annotations
        import os
        import torch.nn as nn
        from typing import TYPE_CHECKING
        from functools import partial
        __all__ = ["Net"]
        if TYPE_CHECKING:
            from torch import Tensor
        try:
            from google.colab import drive
            IN_COLAB = True
        except ImportError:
            IN_COLAB = False
        if IN_COLAB:
            drive.mount("/content/drive")
        DATA = os.environ.get("DATA", "/data")
        Conv = partial(nn.Conv2d, kernel_size=3)
        BATCH: int = 8
        BATCH += 1
        NAMES = {i: name for i, name in enumerate(["road", "car"])}
        ds = load_dataset(DATA)
        N = len(ds)
        act = lambda x: train(x)
        requests_get = os.system("echo hi")
        del DATA
        global OTHER
        assert BATCH > 0
        import math; x = math.pi
    ''')
    new, skipped, notes = filter_source(text)
    assert [s.split(": ", 1)[1] for s in skipped] == [
        "if IN_COLAB:", "ds = load_dataset(DATA)", "N = len(ds)", 'requests_get = os.system("echo hi")',
        "del DATA", "global OTHER", "assert BATCH > 0"]
    kept = new.splitlines()
    for line in ("if TYPE_CHECKING:", "try:", "DATA = os.environ.get(\"DATA\", \"/data\")", "BATCH += 1",
                 "act = lambda x: train(x)", 'NAMES = {i: name for i, name in enumerate(["road", "car"])}',
                 'Conv = partial(nn.Conv2d, kernel_size=3)', "import math; x = math.pi"):
        assert line in kept, line
    assert len(kept) == len(text.splitlines()) and notes == []


def test_names_only_skipped_code_sets_hold_a_placeholder_that_says_so():
    """A notebook computes NUM_CLASSES from its data and uses it as a default: the file still
    imports (the name is bound on the left-out line, line numbers kept), a default segrade
    overrides costs nothing, and code that uses the value is told why it is missing."""
    import pytest

    from grader.worker.left_out import LeftOut, LeftOutName

    text = ("import torch\ndevice = pick_device()\nNUM_CLASSES = len(os.listdir(LABELS))\n"
            "class Net:\n    def __init__(self, n_classes=NUM_CLASSES):\n        self.n = n_classes\n"
            "    def forward(self, x):\n        y = 1\n        return x.to(device) + y\n"
            "for DEPTH in range(3): pass\n"
            "def build(depth=DEPTH):\n    return Net()\n")
    new, skipped, notes = filter_source(text)
    assert skipped == ["line 2: device = pick_device()", "line 3: NUM_CLASSES = len(os.listdir(LABELS))",
                       "line 10: for DEPTH in range(3): pass"]
    assert notes == [("kept code uses names that only left-out statements set; they hold a placeholder that says so "
                      "if the code uses them (a default argument segrade overrides costs nothing): "
                      "device (line 2), NUM_CLASSES (line 3), DEPTH (line 10)")]
    assert len(new.splitlines()) == len(text.splitlines())
    assert new.splitlines()[2].startswith("NUM_CLASSES = __import__('grader.worker.left_out'")
    module: dict = {}
    exec(compile(new, "net.py", "exec"), module)
    assert module["Net"](13).n == 13
    assert isinstance(module["DEPTH"], LeftOut) and "DEPTH" in repr(module["DEPTH"])
    with pytest.raises(LeftOutName, match=r"NUM_CLASSES is set by top-level code that grading does not run \(line 3: "
                                          r"`NUM_CLASSES = len\(os.listdir\(LABELS\)\)`: it reads data"):
        module["Net"]().n + 1
    with pytest.raises(LeftOutName, match=r"device.type \(from device\) is set by top-level code"):
        bool(module["device"].type == "cuda" or module["device"].type)
    # An attribute or an item of it in a default is evaluated when the class is defined: a placeholder too.
    new, _, _ = filter_source("import argparse\nargs = argparse.ArgumentParser().parse_args()\n"
                              "CFG = yaml.safe_load(open('c.yaml'))\n"
                              "class B:\n    def __init__(self, n=args.num_classes, k=CFG['model'].get('k', 3)):\n"
                              "        self.n = n\n")
    module = {}
    exec(compile(new, "b.py", "exec"), module)
    assert module["B"](13).n == 13
    with pytest.raises(LeftOutName, match=r"args.num_classes \(from args\) is set by top-level code that grading does "
                                          r"not run \(line 2: `args = argparse"):
        module["B"]().n + 1
    # Shared with a kept statement on one line (`;`): the file is rewritten, the placeholder first.
    new, _, _ = filter_source("import os; N = len(os.listdir('x'))\nclass A:\n    def f(self, n=N):\n        pass\n")
    module = {}
    exec(compile(new, "a.py", "exec"), module)
    assert isinstance(module["N"], LeftOut)


def test_semicolon_with_a_skipped_statement_rewrites_the_file():
    new, skipped, notes = filter_source("import os; os.makedirs('x')\nclass A:\n    pass\n")
    assert skipped == ["line 1: os.makedirs('x')"]
    assert new == "import os\n\nclass A:\n    pass\n"
    assert any("line numbers" in n for n in notes)


def test_syntax_error_file_is_left_intact(tmp_path):
    src = _write(tmp_path / "s", {"model.py": "class Net: pass\n", "broken.py": "def f(:\n    train()\n"})
    p = prepare_submission(src, tmp_path / "out")
    assert (p.root / "broken.py").read_text() == "def f(:\n    train()\n"
    assert any(n.startswith("broken.py: SyntaxError on line 1") for n in p.notes)
    assert Module("broken.py", "broken") in p.modules


# --------------------------------------------------------------------------- import roots and names


def test_package_with_relative_imports_and_src_layout(tmp_path):
    src = _write(tmp_path / "s", {
        "segpkg/__init__.py": "from .model import UNet\n",
        "segpkg/blocks.py": "class Block: pass\n",
        "segpkg/model.py": "from .blocks import Block\nclass UNet(Block): pass\nUNet().fit()\n",
        "src/lib/__init__.py": "",
        "src/lib/nets/__init__.py": "",
        "src/lib/nets/fcn.py": "from ..util import helper\nclass FCN: pass\n",
        "src/lib/util.py": "def helper(): pass\n",
        "train.py": "from lib.nets.fcn import FCN\nfrom segpkg import UNet\nFCN().train()\n",
        "tests/test_model.py": "from segpkg import UNet\n",
        "setup.py": "from setuptools import setup\nsetup()\n",
    })
    p = prepare_submission(src, tmp_path / "out")
    assert p.sys_path == (".", "src")
    assert [(m.path, m.name) for m in p.modules] == [
        ("segpkg/__init__.py", "segpkg"), ("segpkg/blocks.py", "segpkg.blocks"), ("segpkg/model.py", "segpkg.model"),
        ("src/lib/__init__.py", "lib"), ("src/lib/nets/__init__.py", "lib.nets"),
        ("src/lib/nets/fcn.py", "lib.nets.fcn"), ("src/lib/util.py", "lib.util"), ("train.py", "train")]
    assert any("not imported" in n and "tests/test_model.py" in n and "setup.py" in n for n in p.notes)
    found = _import_all(p)
    assert "UNet" in found["segpkg/model.py"] and "FCN" in found["train.py"]


def test_plain_folders_work_both_as_namespace_and_for_sibling_imports(tmp_path):
    src = _write(tmp_path / "s", {
        "models/unet.py": "from blocks import Block\nclass UNet(Block): pass\n",
        "models/blocks.py": "class Block: pass\n",
        "code/fcn.py": "class FCN: pass\n",  # `code` is a standard module: a namespace would lose
        "train.py": "from models.unet import UNet\nfrom fcn import FCN\n",
        "hw3-final.py": "class Final: pass\n",
        "types.py": "class Mine: pass\n",
    })
    p = prepare_submission(src, tmp_path / "out")
    assert p.sys_path == (".", "models", "code")
    names = {m.path: m.name for m in p.modules}
    assert names == {"code/fcn.py": "fcn", "hw3-final.py": "", "models/blocks.py": "blocks",
                     "models/unet.py": "unet", "train.py": "train", "types.py": ""}
    found = _import_all(p)
    assert "UNet" in found["models/unet.py"] and "Final" in found["hw3-final.py"] and "Mine" in found["types.py"]
    _run(p, "from models.unet import UNet\nimport models.blocks\n")  # the student's own import style works too

    only_namespace = _write(tmp_path / "n", {"nets/fcn.py": "class FCN: pass\n", "nets/unet.py": "class UNet: pass\n"})
    p = prepare_submission(only_namespace, tmp_path / "out2")
    assert p.sys_path == (".",) and [m.name for m in p.modules] == ["nets.fcn", "nets.unet"]
    assert _import_all(p)["nets/unet.py"] == ["UNet"]


def test_submission_folder_that_is_a_package_is_nested(tmp_path):
    src = _write(tmp_path / "hw3", {
        "__init__.py": "",
        "blocks.py": "class Block: pass\n",
        "model.py": "from .blocks import Block\nfrom utils import helper\nclass UNet(Block): pass\n",
        "utils.py": "def helper(): pass\n",
    })
    p = prepare_submission(src, tmp_path / "out")
    assert p.sys_path == (".", "hw3")
    assert [(m.path, m.name) for m in p.modules] == [
        ("hw3/__init__.py", "hw3"), ("hw3/blocks.py", "hw3.blocks"), ("hw3/model.py", "hw3.model"),
        ("hw3/utils.py", "hw3.utils")]
    assert "UNet" in _import_all(p)["hw3/model.py"]
