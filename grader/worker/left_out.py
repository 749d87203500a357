"""The value of a name that only left-out top-level code sets.

Notebooks compute constants from their data (`NUM_CLASSES = len(os.listdir(LABELS))`) and use
them in what segrade keeps (`def __init__(self, n_classes=NUM_CLASSES)`). The top-level filter
(grader.submission.toplevel) leaves that computation out, so importing the file would fail with a
NameError and every class in it would be lost, although segrade passes the class count itself.
The filter binds such a name to a `LeftOut` instead, on the left-out statement's own line: a
default that is never used costs nothing, and code that does use it stops with what happened and
what to do, instead of a bare NameError.
"""

from __future__ import annotations


class LeftOutName(NameError):
    """A name bound by top-level code segrade does not run was used."""


class LeftOut:
    def __init__(self, name: str, where: str) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_where", where)

    def _fail(self, *_args, **_kwargs):
        name, where = object.__getattribute__(self, "_name"), object.__getattribute__(self, "_where")
        raise LeftOutName(f"{name} is set by top-level code that grading does not run ({where}: it reads data, "
                          f"trains or logs); give {name} a constant value (NUM_CLASSES = 13), or compute it inside "
                          "the class from its arguments")

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):   # what Python and inspect look up: absent, as on any object
            raise AttributeError(attribute)
        self._fail()

    def __repr__(self) -> str:
        return f"<{object.__getattribute__(self, '_name')}: left out with the top-level code>"

    __setattr__ = __index__ = __int__ = __float__ = __bool__ = __len__ = __iter__ = __getitem__ = _fail
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _fail
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __rpow__ = __neg__ = _fail
    __lt__ = __le__ = __gt__ = __ge__ = __contains__ = __call__ = _fail


def left_out(name: str, where: str) -> LeftOut:
    """What the filter binds `name` to (see the module's docstring)."""
    return LeftOut(name, where)
