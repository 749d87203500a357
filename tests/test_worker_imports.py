"""What the worker imports before student code, and when (each case in a subprocess, so this
test process's sys.meta_path and sys.modules stay clean)."""

import json
import subprocess
import sys
import textwrap

import pytest


def _run(code: str, tmp_path) -> dict:
    proc = subprocess.run([sys.executable, "-c", "import json, sys\n" + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_a_hook_runs_when_its_module_is_first_imported_and_before_the_import_returns(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "vgg.py").write_text("class VGG:\n    built = 'original'\n")
    out = _run("""
        sys.path.insert(0, ".")
        from grader.worker.after_import import when_imported
        seen = []
        when_imported("pkg.vgg", lambda module: (seen.append(module.__name__), setattr(module.VGG, "built", "wrapped")))
        before = list(seen)
        from pkg.vgg import VGG                 # what a student's `from torchvision.models import vgg16` does
        import pkg.vgg                          # a second import: no second call
        hooks_left = sum(type(f).__name__ == "_AfterImport" for f in sys.meta_path)
        when_imported("pkg.vgg", lambda module: seen.append("at once"))   # imported already
        print(json.dumps({"before": before, "seen": seen, "built": VGG.built, "hooks_left": hooks_left}))
    """, tmp_path)
    assert out == {"before": [], "seen": ["pkg.vgg", "at once"], "built": "wrapped", "hooks_left": 0}


@pytest.mark.slow  # imports torch and exports a model in a subprocess (~6 s)
def test_the_worker_imports_torchs_export_machinery_without_triton_and_leaves_triton_importable(tmp_path):
    """triton, a GPU compiler segrade never uses, costs each sandboxed process's start ~0.4 s;
    torch.export's modules take it for absent, and code that imports it afterwards gets it."""
    out = _run("""
        import importlib.util
        import torch
        from grader.shared.processes import import_export_machinery
        import_export_machinery(hide_triton=True, saving=True)
        hidden = "triton" in sys.modules
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4))
        program = torch.export.export(model, (torch.randn(2, 3, 16, 16),), strict=False)
        torch.export.save(program, "p.pt2")
        loaded = torch.export.load("p.pt2").module()
        same = torch.allclose(loaded(torch.ones(2, 3, 16, 16)), model(torch.ones(2, 3, 16, 16)))
        after = "triton" in sys.modules
        installed = importlib.util.find_spec("triton") is not None
        if installed:
            import triton   # noqa: F401
        print(json.dumps({"hidden": hidden, "after": after, "same": same, "importable": not installed or "triton" in sys.modules}))
    """, tmp_path)
    assert out == {"hidden": False, "after": False, "same": True, "importable": True}
