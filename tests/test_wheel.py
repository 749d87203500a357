"""A plain, non-editable install works from any directory: build the wheel, install it into
a fresh virtual environment (reusing this environment's torch through a .pth file rather
than downloading it again), and run segrade from outside the source tree.

The installed segrade checks the bundled reference's FCN-8s (frozen) and U-Net at 64 px
inputs, one variant from each of its files: what is tested here is the package (its files,
its worker, its commands); the assignment's own 224/256 px are the reference self-check's
(test_reference_grade.py, three variants; benchmarks/bench_check.py, all ten)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]



def run(*command, cwd):
    proc = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{command} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation", "-w", tmp / "dist", cwd=tmp)
    (wheel,) = (tmp / "dist").glob("segrade-*.whl")

    venv = tmp / "venv"
    run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", venv, cwd=tmp)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp).strip())
    # Reuse the installed dependencies (torch is several GB) without the editable segrade:
    # a .pth line adds the directory, it does not process the .pth files inside it.
    (site / "reuse_deps.pth").write_text(str(Path(torch.__file__).resolve().parents[1]) + "\n")
    run(python, "-m", "pip", "install", "--no-deps", "--ignore-installed", "--no-index", wheel, cwd=tmp)
    return venv, tmp


@pytest.mark.slow  # builds and installs a wheel
def test_installed_package_is_self_contained(installed):
    venv, tmp = installed
    assert run(venv / "bin" / "segrade", "--version", cwd=tmp).strip() == "segrade 0.1.0"
    where = json.loads(run(venv / "bin" / "python", "-c", (
        "import json, grader, grader.shared.resources as r;"
        "print(json.dumps([grader.__file__, str(r.reference_dir()), str(r.templates_dir()), str(r.DEFAULT_SPEC)]))"
    ), cwd=tmp))
    for path in where:
        assert path.startswith(str(venv)), f"{path} is not inside the installed package"
    reference = Path(where[1])
    assert {"fcn.py", "unet.py", "README.md"} <= {p.name for p in reference.iterdir()}
    assert Path(where[3]).is_file()
    variants = run(venv / "bin" / "python", "-c", "from grader.spec import load_spec; "
                   "print(' '.join(v.id for v in load_spec().variants))", cwd=tmp).split()
    assert len(variants) == 10 and variants[0] == "fcn32s_frozen"   # the bundled default spec parses
    # the second shipped assignment parses and finds its reference inside the installed package
    course = run(venv / "bin" / "python", "-c", "from grader.spec import load_spec; from grader.shared.resources "
                 "import DEFAULT_SPEC; a = load_spec(DEFAULT_SPEC.parent / 'cityscapes_unet.toml'); "
                 "print(a.reference_dir())", cwd=tmp).strip()
    assert course.startswith(str(venv)) and (Path(course) / "unet.py").is_file()


@pytest.mark.slow  # builds and installs a wheel, runs the installed worker
def test_installed_segrade_checks_the_bundled_reference(installed):
    from tiny_submission import spec_with

    venv, tmp = installed
    reference = run(venv / "bin" / "python", "-c", "import grader.shared.resources as r; print(r.reference_dir())", cwd=tmp).strip()
    spec = spec_with(["fcn8s_frozen", "unet"], tmp / "spec.toml", input_size=64)
    run(venv / "bin" / "segrade", "check", reference, "--checks-only", "--spec", spec, "--out", tmp / "out", cwd=tmp)
    results = json.loads((tmp / "out" / "results.json").read_text())
    assert {v["variant_id"]: v["status"] for v in results["variants"]} == {"fcn8s_frozen": "passed", "unet": "passed"}
