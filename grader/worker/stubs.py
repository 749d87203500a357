"""Stand-ins for missing logging/notebook-only packages, installed in the WORKER.

Real submissions import `wandb`, `icecream`, `google.colab`, `tqdm`, `seaborn`, ... at the top
of the file that also defines the model. When such a package is not installed, the whole file
fails to import although the model never needs it. `install_stub_finder()` adds an import
finder at the END of `sys.meta_path`, so it is asked only after every real finder failed: an
installed package always wins. For a missing module named in `names` (or a submodule of one)
it returns a stub module; for a missing parent of such a name (`google` for `google.colab`)
a bare package.

One exception needs a finder at the FRONT: `torch.utils.tensorboard` exists in every torch, but
importing it raises ImportError when the separate `tensorboard` package is missing. That name
is stubbed only when `tensorboard` cannot be found on sys.path.

Only imports made by student code are served: when the module doing the import lives in the
standard library or in an installed package (torch's `try: from tqdm import tqdm`, numpy
probing its optional submodules), the finders step aside and the library gets its usual
ImportError, so installed code never changes behaviour because of a stub.

A stub (module or object) behaves like "logging switched off":
- any attribute is a stub (`wandb.init`, `wandb.config.lr`, `from wandb import init`);
  dunder attributes raise AttributeError, so protocol probes (`__torch_function__`,
  `__file__`, `__all__`) behave as for an ordinary object;
- calling a stub with exactly one positional argument and no keywords returns that argument
  (decorators `@wandb.something`, `ic(x)`, `tqdm(loader)`, `wandb.watch(model)`), unless the
  stub looks like a class (capitalised: `SummaryWriter("runs")`, `wandb.Image(x)`) or the
  argument is a str/bytes/path (`SummaryWriter(log_dir)`-like calls then keep returning an
  object whose methods work); any other call returns a stub;
- it is an empty iterable, a context manager (`with wandb.init(): ...`; exceptions are not
  swallowed), subscriptable, accepts attribute and item assignment, and can be a base class
  (`class Cb(wandb.Callback)` subclasses `object`);
- it is FALSY (and has length 0), so `if wandb.run:` / `if writer:` take the "no logger" branch.

Third-party packages that real model files import at the top for data loading, augmentation,
metrics or configuration (`cv2`, `albumentations`, `sklearn`, `scipy`, `timm`, `lightning`...,
listed in STAND_IN) are STOOD IN when missing: the import succeeds and gives a stand-in whose
attributes are stand-ins too, but calling one (`cv2.imread(...)`, `A.Compose(...)`), iterating
it or building a class derived from one (`class Net(pl.LightningModule)`) raises
`MissingPackageError`, naming the package and the student's file and line. So a file that only
loads data with OpenCV still imports and its models build, and a model that really needs the
package fails where it uses it, with a message that says why. `install_stub_finder()` returns
what was stubbed; `stood_in()` what was stood in and by which files.

Deep-learning frameworks other than PyTorch (`tensorflow`, `keras`, `jax`...) are never stood
in: a missing one stays an ImportError, which the grading process reports as a non-PyTorch
submission. Neither are the submission's own modules: a forgotten `utils.py` stays an
ImportError naming it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import inspect
import os
import site
import sys
import sysconfig
import types
from functools import lru_cache

__all__ = ["STAND_IN", "STUBBABLE", "MissingPackageError", "install_stub_finder", "is_stub", "stood_in"]

# Packages used for experiment tracking, progress display, plotting or notebook plumbing only.
STUBBABLE: tuple[str, ...] = (
    # experiment tracking
    "wandb", "comet_ml", "mlflow", "neptune", "neptune_client", "clearml", "dvclive", "aim",
    "tensorboardX", "tensorboard", "torch.utils.tensorboard", "visdom", "livelossplot",
    # debugging / printing / progress
    "icecream", "tqdm", "termcolor", "colorama", "prettytable", "tabulate",
    # model summaries and graph drawing (display only)
    "torchinfo", "torchsummary", "torchviz", "hiddenlayer", "pytorch_model_summary",
    # notebooks and hosted notebooks
    "IPython", "ipywidgets", "google.colab", "kaggle_secrets", "dotenv",
    # plotting libraries that are not segrade dependencies
    "seaborn", "plotly",
)

# Packages a model file may import for data, augmentation, metrics, configuration or a
# backbone zoo; stood in when missing (their PyPI name where it differs from the module's).
STAND_IN: dict[str, str] = {
    "cv2": "opencv-python", "albumentations": "albumentations", "sklearn": "scikit-learn",
    "skimage": "scikit-image", "scipy": "scipy", "imageio": "imageio", "imgaug": "imgaug", "PIL": "Pillow",
    "kornia": "kornia", "torchmetrics": "torchmetrics", "segmentation_models_pytorch": "segmentation-models-pytorch",
    "timm": "timm", "lightning": "lightning", "pytorch_lightning": "pytorch-lightning", "transformers": "transformers",
    "huggingface_hub": "huggingface-hub", "monai": "monai", "einops": "einops", "yaml": "PyYAML",
    "omegaconf": "omegaconf", "hydra": "hydra-core", "gdown": "gdown", "kagglehub": "kagglehub", "kaggle": "kaggle",
    "requests": "requests", "h5py": "h5py", "pandas": "pandas", "matplotlib": "matplotlib", "natsort": "natsort",
    "patchify": "patchify", "thop": "thop", "fvcore": "fvcore", "ptflops": "ptflops", "torchview": "torchview",
    "rich": "rich", "torchvision_models": "torchvision-models", "piq": "piq", "lpips": "lpips",
}


class MissingPackageError(ModuleNotFoundError):
    """A stood-in package was really used."""


def _student_frame():
    """The innermost frame running a file of the submission (the worker's cwd), or None."""
    cwd = os.path.realpath(os.getcwd()) + os.sep
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith("<") and os.path.realpath(filename).startswith(cwd):
            return frame
        frame = frame.f_back
    return None


def _student_place() -> str | None:
    """`file.py line N` of the innermost frame in the submission."""
    frame = _student_frame()
    if frame is None:
        return None
    cwd = os.path.realpath(os.getcwd())
    return f"{os.path.relpath(os.path.realpath(frame.f_code.co_filename), cwd)} line {frame.f_lineno}"


def _at_import_time() -> bool:
    """Whether the student code running is a module's or a class's body (import time: default
    arguments, class attributes), not a function: a call there is deferred, not a use."""
    frame = _student_frame()
    return frame is not None and not frame.f_code.co_flags & inspect.CO_NEWLOCALS


def _missing_package(name: str, what: str) -> MissingPackageError:
    top = name.split(".")[0]
    place = _student_place()
    where = f" at {place}" if place else ""
    pypi = STAND_IN.get(top, top)
    return MissingPackageError(
        f"{what}{where} needs the package `{top}` ({pypi}), which is not installed where segrade runs "
        f"submissions: segrade stood it in so that the file could import, and it fails only where it is "
        f"really used. A model needs only torch, torchvision, numpy, einops and the standard library: keep "
        f"`{top}` to data loading, training and plotting code.", name=top)


class _StandIn:
    """A missing third-party package (or anything taken from it): attributes work, use fails."""

    __slots__ = ("_stand_in_name",)

    def __init__(self, name: str):
        object.__setattr__(self, "_stand_in_name", name)

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return _StandIn(f"{self._stand_in_name}.{attr}")

    def __call__(self, *args, **kwargs):
        if _at_import_time():   # `transform = A.Compose([...])` in a class body, a default argument
            return _StandIn(f"{self._stand_in_name}(...)")
        raise _missing_package(self._stand_in_name, f"`{self._stand_in_name}(...)`")

    def __iter__(self):
        raise _missing_package(self._stand_in_name, f"iterating over `{self._stand_in_name}`")

    def __getitem__(self, key):
        raise _missing_package(self._stand_in_name, f"`{self._stand_in_name}[...]`")

    def __mro_entries__(self, bases):
        name = self._stand_in_name
        from torch import nn

        # A torch module, so that a model class built on the package (`class UNet(smp.Unet)`) is
        # still found as the model and fails where it is built, saying which package it needs
        # (not "nothing in the submission builds UNet").
        class _MissingBase(nn.Module):
            def __init__(self, *args, **kwargs):
                raise _missing_package(name, f"building {type(self).__name__} (derived from `{name}`)")

        _MissingBase.__qualname__ = _MissingBase.__name__ = name.rsplit(".", 1)[-1]
        return (_MissingBase,)

    def __repr__(self):
        return f"<segrade stand-in for {self._stand_in_name} (not installed)>"

    __str__ = __repr__


def _make_stand_in(name: str) -> types.ModuleType:
    module = types.ModuleType(name, f"segrade stand-in for the missing package {name!r}")
    module.__segrade_stub__ = True
    module.__version__ = _VERSION
    module.__all__ = []

    def __getattr__(attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(f"stand-in module {name!r} has no attribute {attr!r}")
        return _StandIn(f"{name}.{attr}")

    module.__getattr__ = __getattr__
    return module


# Stubbed although the module exists, when the package it needs is missing.
_NEEDS = {"torch.utils.tensorboard": "tensorboard"}

_VERSION = "0.0.0+segrade.stub"


def is_stub(obj: object) -> bool:
    """Whether obj is a stub or stand-in (module or object) made here."""
    return isinstance(obj, (_Stub, _StandIn)) or getattr(obj, "__segrade_stub__", False) is True


class _Stub:
    """An object that accepts everything a logger or display helper is used for, and does nothing."""

    __slots__ = ("_stub_name",)

    def __init__(self, name: str):
        object.__setattr__(self, "_stub_name", name)

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return _Stub(f"{self._stub_name}.{attr}")

    def __call__(self, *args, **kwargs):
        last = self._stub_name.rsplit(".", 1)[-1]
        if (len(args) == 1 and not kwargs and not last[:1].isupper()
                and not isinstance(args[0], (str, bytes, os.PathLike))):
            return args[0]
        return _Stub(f"{self._stub_name}()")

    def __setattr__(self, attr, value):
        pass

    def __delattr__(self, attr):
        pass

    def __getitem__(self, key):
        return _Stub(f"{self._stub_name}[]")

    def __setitem__(self, key, value):
        pass

    def __delitem__(self, key):
        pass

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def __bool__(self):
        return False

    def __contains__(self, item):
        return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    def __mro_entries__(self, bases):
        return (object,)

    def __repr__(self):
        return f"<segrade stub {self._stub_name}>"

    __str__ = __repr__


def _make_module(name: str, *, full: bool) -> types.ModuleType:
    module = types.ModuleType(name, f"segrade stub for the missing module {name!r}")
    module.__segrade_stub__ = True
    module.__version__ = _VERSION
    module.__all__ = []  # `from wandb import *` imports nothing

    if full:
        def __getattr__(attr: str):
            if attr.startswith("__") and attr.endswith("__"):
                raise AttributeError(f"stub module {name!r} has no attribute {attr!r}")
            return _Stub(f"{name}.{attr}")

        module.__getattr__ = __getattr__
    return module


@lru_cache(maxsize=1)
def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except AttributeError:  # site without these functions (old virtualenv)
        pass
    # site-packages reached through a .pth file (a virtual environment layered on another)
    dirs.update(p for p in sys.path if os.path.basename(p.rstrip(os.sep)) in ("site-packages", "dist-packages"))
    return tuple(os.path.realpath(d) + os.sep for d in dirs if d)


_SKIP_FRAMES = (os.path.dirname(importlib.__file__) + os.sep, __file__)


@lru_cache(maxsize=4096)
def _is_library_file(filename: str) -> bool:
    return os.path.realpath(filename).startswith(_library_dirs())


def _imported_by_library() -> bool:
    """Whether the code running this import (the first frame outside the import machinery)
    belongs to the standard library or an installed package."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith("<frozen importlib") or filename.startswith(_SKIP_FRAMES):
            frame = frame.f_back
            continue
        return not filename.startswith("<") and _is_library_file(filename)
    return False


class _StubLoader(importlib.abc.Loader):
    def __init__(self, full: bool, stand_in: bool = False):
        self.full = full
        self.stand_in = stand_in

    def create_module(self, spec):
        if self.stand_in:
            return _make_stand_in(spec.name)
        return _make_module(spec.name, full=self.full)

    def exec_module(self, module):
        pass


class _StubFinder(importlib.abc.MetaPathFinder):
    """Appended to sys.meta_path: asked only when no real finder found the module."""

    def __init__(self, names, stand_in=STAND_IN):
        self.names: tuple[str, ...] = tuple(names)
        self.stand_in: tuple[str, ...] = tuple(stand_in)
        self.stubbed: list[str] = []
        self.stood_in: dict[str, list[str]] = {}   # top-level package -> student files that imported it

    def _kind(self, fullname: str) -> str | None:
        for name in self.names:
            if fullname == name or fullname.startswith(name + "."):
                return "full"
        for name in self.names:
            if name.startswith(fullname + "."):
                return "parent"
        return None

    def find_spec(self, fullname, path=None, target=None):
        kind = self._kind(fullname)
        if kind is None and fullname.split(".")[0] in self.stand_in:
            if _imported_by_library():
                return None
            top = fullname.split(".")[0]
            place = _student_place()
            files = self.stood_in.setdefault(top, [])
            if place and place.rsplit(" line ", 1)[0] not in files:
                files.append(place.rsplit(" line ", 1)[0])
            spec = importlib.machinery.ModuleSpec(fullname, _StubLoader(True, stand_in=True), is_package=True)
            spec.submodule_search_locations = []
            return spec
        if kind is None or _imported_by_library():
            return None
        return self._spec(fullname, full=kind == "full")

    def _spec(self, fullname: str, *, full: bool):
        spec = importlib.machinery.ModuleSpec(fullname, _StubLoader(full), is_package=True)
        spec.submodule_search_locations = []  # a package, so submodules (google.colab.drive) import
        if fullname not in self.stubbed:
            self.stubbed.append(fullname)
        return spec


class _NeedsFinder(importlib.abc.MetaPathFinder):
    """At the front of sys.meta_path: stubs a module that exists but cannot work without a
    missing package (torch.utils.tensorboard without tensorboard)."""

    def __init__(self, owner: _StubFinder):
        self.owner = owner
        self._missing: dict[str, bool] = {}

    def find_spec(self, fullname, path=None, target=None):
        for name, needed in _NEEDS.items():
            if name not in self.owner.names or not (fullname == name or fullname.startswith(name + ".")):
                continue
            if needed not in self._missing:
                try:
                    self._missing[needed] = importlib.machinery.PathFinder.find_spec(needed) is None
                except (ImportError, ValueError):
                    self._missing[needed] = True
            if self._missing[needed] and not _imported_by_library():
                return self.owner._spec(fullname, full=True)
        return None


def install_stub_finder(names=STUBBABLE) -> list[str]:
    """Install the stub finders (once; a second call replaces the names). Returns the live
    list of module names stubbed so far, in import order (parents such as `google` included)."""
    finder = next((f for f in sys.meta_path if isinstance(f, _StubFinder)), None)
    if finder is None:
        finder = _StubFinder(names)
        sys.meta_path.append(finder)
        sys.meta_path.insert(0, _NeedsFinder(finder))  # inert for names not in finder.names
    else:
        finder.names = tuple(names)
    return finder.stubbed


def stood_in() -> dict[str, list[str]]:
    """Missing packages stood in so far: {package: [student files that import it]}."""
    finder = next((f for f in sys.meta_path if isinstance(f, _StubFinder)), None)
    return {} if finder is None else {k: list(v) for k, v in finder.stood_in.items()}
