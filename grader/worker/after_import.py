"""`when_imported(name, then)`: call `then(module)` right after module `name` has run, whoever
imports it, or at once if it is imported already.

The worker wraps torchvision's VGG constructor before any student code builds one
(grader.measure.probes.install_vgg_recorder). Importing torchvision for that costs every
worker start about a second on 2 cores, measured, also for the submissions that never import
it (a U-Net course); with this hook the wrapper is installed when torchvision's VGG module is
first imported, by the student's code or by segrade's, before that import returns."""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Callable
from types import ModuleType


def when_imported(name: str, then: Callable[[ModuleType], object]) -> None:
    module = sys.modules.get(name)
    if module is not None:
        then(module)
        return
    sys.meta_path.insert(0, _AfterImport(name, then))


class _AfterImport(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, then: Callable[[ModuleType], object]) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ThenLoader(spec.loader, self)
        return spec


class _ThenLoader(importlib.abc.Loader):
    """The module's own loader, then the call; other loader methods (get_source for
    tracebacks) are the wrapped loader's."""

    def __init__(self, loader, hook: _AfterImport) -> None:
        self._loader, self._hook = loader, hook

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        if self._hook in sys.meta_path:
            sys.meta_path.remove(self._hook)
        self._hook.then(module)

    def __getattr__(self, attr: str):
        return getattr(self._loader, attr)
