"""grader.stubs: missing logging/notebook packages become harmless stubs (in a subprocess, so
this test process's sys.meta_path stays clean)."""

import json
import subprocess
import sys
import textwrap

import pytest

from grader.worker.stubs import STAND_IN, STUBBABLE


def _run(code: str) -> dict:
    script = "import json, sys\nfrom grader.worker.stubs import install_stub_finder, is_stub\n" + textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def _missing(*names: str) -> None:
    import importlib.util

    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # a missing parent package (google for google.colab)
            found = False
        if found:
            pytest.skip(f"{name} is installed here, so it would not be stubbed")


def test_student_style_usage_of_stubbed_packages():
    _missing("wandb", "icecream", "google.colab", "tqdm")
    got = _run("""
        stubbed = install_stub_finder()
        import wandb
        run = wandb.init(project="x", config={"lr": 1e-3})
        wandb.log({"a": 1})
        wandb.config.lr = 0.1                      # attribute assignment is accepted
        with wandb.init():
            pass
        with wandb.init(project="y") as run:
            run.log({"loss": 0.5})
        from wandb import init, Image              # `from x import name` works
        picture = Image([[0]])                     # constructors return stubs, not their argument

        @wandb.some_decorator                      # decorator passthrough
        def f():
            return 5

        class Callback(wandb.Callback):            # a stub can be a base class
            pass

        from icecream import ic
        assert ic(3) == 3                          # ic(x) returns x
        from google.colab import drive
        drive.mount("/content")
        import google.colab.drive                   # submodules import too
        from tqdm.auto import tqdm
        assert list(tqdm([1, 2])) == [1, 2]        # one positional argument: passed through
        from IPython.display import display, clear_output
        display("x"); clear_output(wait=True)
        from wandb import *                        # imports nothing, fails nothing
        print(json.dumps({
            "f": f(), "truthy": bool(wandb.run), "iter": list(wandb.init()), "len": len(run),
            "picture": is_stub(picture), "module_stub": is_stub(wandb), "mro": [c.__name__ for c in Callback.__mro__],
            "stubbed": stubbed, "last_finder": type(sys.meta_path[-1]).__name__,
            "dunder": hasattr(wandb, "__file__"),
        }))
    """)
    assert got["f"] == 5 and got["truthy"] is False and got["iter"] == [] and got["len"] == 0
    assert got["picture"] and got["module_stub"] and got["mro"] == ["Callback", "object"]
    assert got["stubbed"] == ["wandb", "icecream", "google", "google.colab", "google.colab.drive",
                              "tqdm", "tqdm.auto", "IPython", "IPython.display"]
    assert got["last_finder"] == "_StubFinder" and got["dunder"] is False


def test_installed_packages_win_and_unlisted_ones_still_fail():
    _missing("tensorflow", "keras", "my_own_utils")
    got = _run("""
        stubbed = install_stub_finder(names=("json", "numpy", "wandb"))   # listed, but installed
        import json as j, numpy
        errors = {}
        for name in ("tensorflow", "keras", "my_own_utils"):   # other frameworks; a forgotten own file
            try:
                __import__(name)
            except ImportError as exc:
                errors[name] = type(exc).__name__
        again = install_stub_finder()                 # idempotent: the same live list
        print(json.dumps({"json": is_stub(j), "numpy": is_stub(numpy), "numpy_file": bool(numpy.__file__),
                          "errors": errors, "stubbed": stubbed, "same": again is stubbed,
                          "finders": sum(type(f).__name__ == "_StubFinder" for f in sys.meta_path)}))
    """)
    assert got["json"] is False and got["numpy"] is False and got["numpy_file"]
    assert got["errors"] == {n: "ModuleNotFoundError" for n in ("tensorflow", "keras", "my_own_utils")}
    assert got["stubbed"] == [] and got["same"] and got["finders"] == 1
    assert not {"cv2", "albumentations", "lightning", "pytorch_lightning", "timm"} & set(STUBBABLE)
    assert not {"tensorflow", "keras", "jax"} & set(STAND_IN)


def test_missing_model_packages_are_stood_in_and_fail_where_used(tmp_path):
    _missing("cv2", "albumentations", "lightning")
    (tmp_path / "student.py").write_text(textwrap.dedent("""
        import cv2
        import albumentations as A
        from albumentations.pytorch import ToTensorV2
        import lightning as L

        INTERP = cv2.INTER_NEAREST          # attribute access is fine

        class Net(L.LightningModule):       # deriving is fine; building is a use
            pass

        def load(path):
            return cv2.imread(path)

        class Data:
            transform = A.Compose([A.Resize(256, 256), ToTensorV2()])   # import time: deferred

            def __init__(self, size=A.Resize(64, 64)):
                self.size = size

            def get(self, image):
                return self.transform(image=image)                     # a use
    """))
    got = _run(f"""
        import os
        os.chdir({str(tmp_path)!r})
        sys.path.insert(0, {str(tmp_path)!r})
        install_stub_finder()
        from grader.worker.stubs import MissingPackageError, stood_in
        import student
        out = {{"stub": is_stub(student.cv2), "stood_in": stood_in()}}
        for label, call in (("call", lambda: student.load("x.png")), ("build", lambda: student.Net()),
                            ("deferred", lambda: student.Data().get(None))):
            try:
                call()
            except MissingPackageError as exc:
                out[label] = str(exc)
        print(json.dumps(out))
    """)
    assert got["stub"] is True
    assert got["stood_in"] == {"cv2": ["student.py"], "albumentations": ["student.py"], "lightning": ["student.py"]}
    assert got["call"].startswith("`cv2.imread(...)` at student.py line 13 needs the package `cv2` (opencv-python), "
                                  "which is not installed where segrade runs submissions")
    assert got["deferred"].startswith("`albumentations.Compose(...)(...)` at student.py line 22 needs the package "
                                      "`albumentations`"), got["deferred"]
    assert got["build"].startswith("building Net (derived from `lightning.LightningModule`) needs the package "
                                   "`lightning`")


def test_tensorboard_writer_is_stubbed_when_tensorboard_is_missing():
    _missing("tensorboard")
    got = _run("""
        stubbed = install_stub_finder()
        import torch
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter("runs/exp1")
        writer.add_scalar("loss", 1.0, 0)
        writer.close()
        print(json.dumps({"writer": is_stub(writer), "stubbed": stubbed, "torch_ok": float(torch.ones(1).sum())}))
    """)
    assert got == {"writer": True, "stubbed": ["torch.utils.tensorboard"], "torch_ok": 1.0}
