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

Not stubbable on purpose: packages models may really use (opencv `cv2`, `albumentations`,
`lightning`/`pytorch_lightning`, `timm`, `segmentation_models_pytorch`, `sklearn`): a missing
one stays an ImportError that the worker reports.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import site
import sys
import sysconfig
import types
from functools import lru_cache

__all__ = ["STUBBABLE", "install_stub_finder", "is_stub"]

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

# Stubbed although the module exists, when the package it needs is missing.
_NEEDS = {"torch.utils.tensorboard": "tensorboard"}

_VERSION = "0.0.0+segrade.stub"


def is_stub(obj: object) -> bool:
    """Whether obj is a stub module or stub object made here."""
    return isinstance(obj, _Stub) or getattr(obj, "__segrade_stub__", False) is True


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
    def __init__(self, full: bool):
        self.full = full

    def create_module(self, spec):
        return _make_module(spec.name, full=self.full)

    def exec_module(self, module):
        pass


class _StubFinder(importlib.abc.MetaPathFinder):
    """Appended to sys.meta_path: asked only when no real finder found the module."""

    def __init__(self, names):
        self.names: tuple[str, ...] = tuple(names)
        self.stubbed: list[str] = []

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
