"""The top-level filter: what of a student's module may run when the worker imports it.

Imports, definitions, docstrings and simple constants stay; everything else (training, logging,
I/O, `if __name__ == "__main__":`) is blanked out line by line so line numbers stay the same.
Works on the syntax tree only (`ast`): nothing is executed here.
"""

from __future__ import annotations

import ast
import builtins
import io
import re
import tokenize
from pathlib import Path

from grader.submission.freezing import top_level_freezes
from grader.submission.staging import Staging, trim

# Calls allowed in kept top-level assignments, by canonical dotted name (import aliases
# resolved: `nn` from `import torch.nn as nn` is torch.nn). Pure or trivially cheap.
_ALLOWED_CALLS = frozenset({
    "torch.device", "torch.cuda.is_available", "torch.backends.mps.is_available", "torch.cuda.device_count",
    "torch.tensor", "numpy.array", "numpy.asarray",
    "dict", "list", "tuple", "set", "frozenset", "range", "len", "int", "float", "str", "bool", "min", "max",
    "abs", "round", "sum", "any", "all", "enumerate", "zip", "sorted", "reversed",
    "os.path.join", "os.path.dirname", "os.path.basename", "os.path.abspath", "os.path.splitext",
    "os.path.expanduser", "os.environ.get", "os.getenv",
    "Path", "pathlib.Path", "namedtuple", "collections.namedtuple", "OrderedDict", "collections.OrderedDict",
    "TypeVar", "typing.TypeVar", "logging.getLogger", "partial", "functools.partial",
})
# Methods allowed on a receiver that is not a plain name (so never on a module: `requests.get`
# is out), e.g. Path(__file__).resolve().parent, ", ".join(...), torch.tensor([...]).view(...).
_PURE_METHODS = frozenset({
    "resolve", "absolute", "expanduser", "joinpath", "with_suffix", "with_name", "upper", "lower", "title",
    "format", "split", "rsplit", "strip", "rstrip", "lstrip", "replace", "join", "startswith", "endswith",
    "keys", "values", "items", "copy", "view", "reshape", "unsqueeze", "float",
})
_BUILTIN_NAMES = frozenset(dir(builtins))
_MODULE_DUNDERS = frozenset({"__name__", "__file__", "__doc__", "__spec__", "__loader__", "__package__",
                             "__builtins__", "__path__", "__cached__", "__annotations__"})


def filter_source(text: str) -> tuple[str, list[str], list[str]]:
    """Keep only what is safe to run at import; return (new text, skipped entries, notes).

    Raises SyntaxError (and ValueError for null bytes) from ast.parse: the caller decides.
    Skipped statements' lines are blanked, so line numbers stay the same; when a skipped
    statement shares a line with a kept one (`;`), the kept statements are unparsed instead.
    """
    tree = ast.parse(text)
    lines = re.findall(r"[^\n]*\n|[^\n]+$", text)
    flt = _Filter(tree)
    kept, skipped = [], []
    for node in tree.body:
        (kept if flt.keep(node) else skipped).append(node)
    skipped_ids = {id(node) for node in skipped}

    entries, notes = [], []
    keep_lines, skip_lines = set(), set()
    for node in tree.body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        span = range(first, node.end_lineno + 1)
        if id(node) in skipped_ids:
            skip_lines.update(span)
            segment = ast.get_source_segment(text, node) or lines[first - 1]
            entries.append(f"line {first}: {trim(segment.split(chr(10), 1)[0])}")
        else:
            keep_lines.update(span)
    if not skipped:
        return text, [], []

    # Names kept definitions use that only left-out statements set: bound to a placeholder on
    # the left-out statement's first line (grader.worker.left_out), so the file still imports.
    dangling = flt.dangling_names(kept, skipped)
    bindings: dict[int, list[str]] = {}
    for name, ln in dangling:
        where = f"line {ln}: `{trim(lines[ln - 1].strip(), 120)}`"
        bindings.setdefault(ln, []).append(
            f"{name} = __import__('grader.worker.left_out', fromlist=['left_out']).left_out({name!r}, {where!r})")
    placeholders = {ln: "; ".join(statements) for ln, statements in bindings.items()}

    if keep_lines & skip_lines:
        holders = [(ln, ast.parse(line).body) for ln, line in placeholders.items()]
        body = sorted([(node.lineno, [node]) for node in kept] + holders, key=lambda item: item[0])
        new = ast.unparse(ast.Module(body=[node for _, nodes in body for node in nodes], type_ignores=[])) + "\n"
        notes.append("a left-out statement shared a line with kept code (`;`), so the file was rewritten "
                     "from its syntax tree: line numbers in errors no longer match the original")
    else:
        for ln in skip_lines:
            line = lines[ln - 1]
            end = "\r\n" if line.endswith("\r\n") else "\n" if line.endswith("\n") else ""
            lines[ln - 1] = placeholders.get(ln, "") + end
        new = "".join(lines)
        try:
            ast.parse(new)
        except SyntaxError:  # should not happen; be safe rather than clever
            new = ast.unparse(ast.Module(body=kept, type_ignores=[])) + "\n"
            notes.append("the file was rewritten from its syntax tree: line numbers no longer match the original")

    if dangling:
        notes.append("kept code uses names that only left-out statements set; they hold a placeholder that says so "
                     "if the code uses them (a default argument segrade overrides costs nothing): "
                     + ", ".join(f"{name} (line {line})" for name, line in dangling))
    return new, entries, notes


class _Filter:
    def __init__(self, tree: ast.Module):
        self.aliases: dict[str, str] = {}
        self.star = False
        for node in _module_level(tree.body):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.aliases[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for a in node.names:
                    if a.name == "*":
                        self.star = True
                    else:
                        self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
                self.star = True
        self.defined: set[str] = set(_BUILTIN_NAMES | _MODULE_DUNDERS)

    # ---------------------------------------------------------------- statements

    def keep(self, node: ast.stmt) -> bool:
        if _is_main_guard(node):
            return False
        trial = set(self.defined)
        if self._keepable(node, trial):
            self.defined = trial
            return True
        return False

    def _keepable(self, node: ast.stmt, defined: set[str]) -> bool:
        if isinstance(node, ast.Import):
            defined.update(a.asname or a.name.split(".")[0] for a in node.names)
            return True
        if isinstance(node, ast.ImportFrom):
            defined.update(a.asname or a.name for a in node.names if a.name != "*")
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
            return True
        if isinstance(node, ast.Pass):
            return True
        if isinstance(node, ast.Expr):  # docstrings and `...`; not bare names or calls
            return isinstance(node.value, ast.Constant) and (isinstance(node.value.value, str)
                                                             or node.value.value is Ellipsis)
        if isinstance(node, ast.Assign):
            if not all(_name_target(t) for t in node.targets) or not self._simple(node.value, defined):
                return False
            for t in node.targets:
                defined.update(_bound_names(t))
            return True
        if isinstance(node, ast.AnnAssign):
            if not isinstance(node.target, ast.Name) or not self._simple(node.annotation, defined):
                return False
            if node.value is not None:
                if not self._simple(node.value, defined):
                    return False
                defined.add(node.target.id)
            return True
        if isinstance(node, ast.AugAssign):
            return (isinstance(node.target, ast.Name) and (node.target.id in defined or self.star)
                    and self._simple(node.value, defined))
        if isinstance(node, ast.If):
            if _is_main_guard(node) or not self._simple(node.test, defined):
                return False
            return self._branches(defined, node.body, node.orelse)
        if isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            branches = [node.body + node.orelse]
            for handler in node.handlers:
                if handler.type is not None and not self._simple(handler.type, defined):
                    return False
                branches.append(([ast.Assign(targets=[ast.Name(handler.name, ast.Store())],
                                             value=ast.Constant(None))] if handler.name else []) + handler.body)
            return self._branches(defined, *branches, node.finalbody)
        return False

    def _branches(self, defined: set[str], *bodies: list[ast.stmt]) -> bool:
        union = set()
        for body in bodies:
            trial = set(defined)
            if not all(self._keepable(s, trial) for s in body):
                return False
            union |= trial
        defined |= union
        return True

    # ---------------------------------------------------------------- expressions

    def _simple(self, node: ast.AST | None, defined: set[str], bound: frozenset = frozenset()) -> bool:
        if node is None:
            return True
        s = lambda n: self._simple(n, defined, bound)
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.Name):
            return node.id in bound or node.id in defined or self.star
        if isinstance(node, ast.Attribute):
            return s(node.value)
        if isinstance(node, ast.Subscript):
            return s(node.value) and s(node.slice)
        if isinstance(node, ast.Slice):
            return s(node.lower) and s(node.upper) and s(node.step)
        if isinstance(node, ast.UnaryOp):
            return s(node.operand)
        if isinstance(node, ast.BinOp):
            return s(node.left) and s(node.right)
        if isinstance(node, ast.BoolOp):
            return all(map(s, node.values))
        if isinstance(node, ast.Compare):
            return s(node.left) and all(map(s, node.comparators))
        if isinstance(node, ast.IfExp):
            return s(node.test) and s(node.body) and s(node.orelse)
        if isinstance(node, ast.JoinedStr):
            return all(map(s, node.values))
        if isinstance(node, ast.FormattedValue):
            return s(node.value) and s(node.format_spec)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return all(map(s, node.elts))
        if isinstance(node, ast.Starred):
            return s(node.value)
        if isinstance(node, ast.Dict):
            return all(map(s, node.keys)) and all(map(s, node.values))
        if isinstance(node, ast.Lambda):  # the body runs only when called
            return all(map(s, node.args.defaults)) and all(map(s, node.args.kw_defaults))
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            inner = set(bound)
            for gen in node.generators:
                if gen.is_async or not self._simple(gen.iter, defined, frozenset(inner)):
                    return False
                inner |= _bound_names(gen.target)
                if not all(self._simple(c, defined, frozenset(inner)) for c in gen.ifs):
                    return False
            parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            return all(self._simple(p, defined, frozenset(inner)) for p in parts)
        if isinstance(node, ast.Call):
            return self._allowed_call(node, defined, bound)
        return False  # await, yield, walrus, ...

    def _allowed_call(self, node: ast.Call, defined: set[str], bound: frozenset) -> bool:
        s = lambda n: self._simple(n, defined, bound)
        if not (all(map(s, node.args)) and all(s(k.value) for k in node.keywords)):
            return False
        dotted = _dotted(node.func)
        if dotted is not None:
            head, _, rest = dotted.partition(".")
            canon = self.aliases.get(head, head) + ("." + rest if rest else "")
            if (canon in _ALLOWED_CALLS or dotted in _ALLOWED_CALLS or _nn_constructor(canon)
                    or _nn_constructor(dotted)):
                return s(node.func)
        if isinstance(node.func, ast.Attribute) and node.func.attr in _PURE_METHODS:
            base = node.func.value
            while isinstance(base, (ast.Attribute, ast.Subscript)):
                base = base.value
            if not isinstance(base, ast.Name):
                return s(node.func.value)
        return False

    # ---------------------------------------------------------------- diagnostics

    def dangling_names(self, kept: list[ast.stmt], skipped: list[ast.stmt]) -> list[tuple[str, int]]:
        """Names that kept classes and functions load but that only skipped statements bind."""
        set_by: dict[str, int] = {}
        for node in skipped:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    set_by.setdefault(sub.id, node.lineno)
        candidates = {n: ln for n, ln in set_by.items() if n not in self.defined}
        if not candidates:
            return []
        used = set()
        for node in kept:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                used |= _free_loads(node)
        return sorted(((n, ln) for n, ln in candidates.items() if n in used), key=lambda x: x[1])


def _module_level(body):
    """Statements executed at module level, including inside if/try/with/for bodies (not defs)."""
    for node in body:
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for attr in ("body", "orelse", "finalbody"):
            yield from _module_level(getattr(node, attr, []) or [])
        for handler in getattr(node, "handlers", []) or []:
            yield from _module_level(handler.body)


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare) or len(node.test.ops) != 1:
        return False
    sides = [node.test.left, node.test.comparators[0]]
    names = [x for x in sides if isinstance(x, ast.Name) and x.id == "__name__"]
    consts = [x for x in sides if isinstance(x, ast.Constant) and x.value == "__main__"]
    return bool(names and consts)


def _name_target(t: ast.expr) -> bool:
    if isinstance(t, ast.Name):
        return True
    if isinstance(t, (ast.Tuple, ast.List)):
        return all(_name_target(e.value if isinstance(e, ast.Starred) else e) for e in t.elts)
    return False


def _bound_names(t: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _nn_constructor(name: str) -> bool:
    """torch.nn.ReLU / nn.ReLU: a capitalised attribute directly under torch.nn."""
    parts = name.split(".")
    return ((parts[:2] == ["torch", "nn"] and len(parts) == 3) or (parts[0] == "nn" and len(parts) == 2)) \
        and parts[-1][:1].isupper()


def _free_loads(cls: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names a class (body and methods) or a function loads that are not parameters or locals."""
    loads = set()
    funcs = [n for n in ast.walk(cls) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
    local_of = {}
    for f in funcs:
        a = f.args
        params = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}
        params |= {x.arg for x in (a.vararg, a.kwarg) if x is not None}
        stores = {n.id for n in ast.walk(f) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        for n in ast.walk(f):
            local_of.setdefault(id(n), set()).update(params | stores)
    for n in ast.walk(cls):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in local_of.get(id(n), ()):
            loads.add(n.id)
    return loads


def filter_file(path: Path, rel: str, st: Staging) -> ast.Module | None:
    """Filter one file in place; return the syntax tree of what is kept (None if unparsable)."""
    raw = path.read_bytes()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        text = raw.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        st.notes.append(f"{rel}: cannot be decoded ({exc}); left as is, so importing it reports that error")
        return None
    st.freezes.extend(top_level_freezes(text, rel))   # before the filter leaves them out with the training code
    try:
        new, entries, notes = filter_source(text)
    except SyntaxError as exc:
        where = f" on line {exc.lineno}" if exc.lineno else ""
        st.notes.append(f"{rel}: SyntaxError{where}: {exc.msg}; left as is, so importing it reports the error")
        return None
    except ValueError as exc:  # null bytes: Python refuses to import it too
        st.notes.append(f"{rel}: {exc}; left as is, so importing it reports the error")
        return None
    except (RecursionError, MemoryError):
        # Could not check it, so it must not run: replace it by an import error.
        path.write_text(f'raise ImportError("segrade could not parse {rel} (too deeply nested)")\n')
        st.notes.append(f"{rel}: too deeply nested to parse; replaced by an ImportError")
        return None
    if entries:
        st.skipped[rel] = entries
        path.write_bytes(new.encode(encoding))
    st.notes.extend(f"{rel}: {n}" for n in notes)
    return ast.parse(new)
