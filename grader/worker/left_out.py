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
    """The placeholder: a default argument holding it costs nothing; reading an attribute, an item
    or calling it gives another (`args.num_classes`, `config["classes"]`, `cfg.get("n", 13)`
    in a default are evaluated when the class is defined); using its value raises LeftOutName."""

    def __init__(self, name: str, where: str, expression: str | None = None) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_where", where)
        object.__setattr__(self, "_expression", expression or name)

    def _derived(self, expression: str) -> LeftOut:
        return LeftOut(object.__getattribute__(self, "_name"), object.__getattribute__(self, "_where"), expression)

    def _fail(self, *_args, **_kwargs):
        name, where = object.__getattribute__(self, "_name"), object.__getattribute__(self, "_where")
        expression = object.__getattribute__(self, "_expression")
        used = name if expression == name else f"{expression} (from {name})"
        raise LeftOutName(f"{used} is set by top-level code that grading does not run ({where}: it reads data, "
                          f"trains or logs); give {name} a constant value (NUM_CLASSES = 13), or compute it inside "
                          "the class from its arguments")

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):   # what Python and inspect look up: absent, as on any object
            raise AttributeError(attribute)
        return self._derived(f"{object.__getattribute__(self, '_expression')}.{attribute}")

    def __getitem__(self, key):
        return self._derived(f"{object.__getattribute__(self, '_expression')}[{key!r}]")

    def __call__(self, *args, **kwargs):
        return self._derived(f"{object.__getattribute__(self, '_expression')}(...)")

    def __repr__(self) -> str:
        return f"<{object.__getattribute__(self, '_expression')}: left out with the top-level code>"

    __setattr__ = __index__ = __int__ = __float__ = __bool__ = __len__ = __iter__ = _fail
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _fail
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __rpow__ = __neg__ = _fail
    __lt__ = __le__ = __gt__ = __ge__ = __contains__ = _fail


def left_out(name: str, where: str) -> LeftOut:
    """What the filter binds `name` to (see the module's docstring)."""
    return LeftOut(name, where)
