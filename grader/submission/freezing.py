"""Backbones frozen by top-level code: a notebook cell or a script's main that builds a model and
sets `requires_grad` on part of it, which the top-level filter leaves out with the rest of the
training code. Read from the syntax tree (`ast`), never run.

Students freeze in their training code as often as in the class: the fine-tuning tutorial's
`set_parameter_requires_grad(model.features, True)`, `for p in fcn.features.parameters():
p.requires_grad = False`, a `named_parameters()` loop picking names. segrade builds classes, not
the notebook's objects, so a class with no freeze option would be built unfrozen and its frozen
variant would fail a check the student's own run passes. What is found here crosses to the
worker (grader.shared.protocol.TopLevelFreeze), whose adapters apply it after building a class
that has no freeze option of its own (grader.worker.adapters.planning), and say so.

Recognised, on a variable assigned from a call (`fcn = FCN32s(13)`, `.to(device)` chains kept):
- `for p in VAR.PATH.parameters(): p.requires_grad = False` (or `p.requires_grad_(False)`);
- `for name, p in VAR.named_parameters(): if name.startswith("features"): ...` (or
  `"features" in name`), and the same loop without a condition;
- `for layer in VAR.features:` (or `.children()`, `.modules()`) freezing each layer's parameters;
- `VAR.PATH.requires_grad_(False)`, `VAR.PATH.weight.requires_grad = False`;
- an optimiser given some parts of the model (`optim.Adam(VAR.head.parameters())`, a sum or
  chain of such lists, parameter groups): every other part does not train, so it is frozen;
- a call `FREEZER(VAR.PATH, flag)` of a function of the file whose body does one of the above to
  its first parameter (or a part of it), under `if flag:` or not (a literal, a keyword, the
  parameter's default or a top-level constant flag): the tutorial's helper, or a training
  function that freezes its model first.
"""

from __future__ import annotations

import ast
from typing import Any, Iterator

from grader.submission.staging import trim

# torch.optim's optimizers: one given only some parts' parameters trains those parts alone.
_OPTIMIZERS = frozenset({"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
                         "SparseAdam", "ASGD", "Rprop"})

# Method calls on a model that return the same model (kept when a variable is assigned).
_SAME_MODEL = frozenset({"to", "cuda", "cpu", "float", "double", "half", "train", "eval", "requires_grad_"})


def top_level_freezes(text: str, rel: str) -> list[dict[str, Any]]:
    """The freezes `text` (file `rel`) does at top level, in order, as TopLevelFreeze's JSON:
    {class_name, instance, select, path, requires_grad, where, code}. [] when it cannot be parsed."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    lines = text.splitlines()
    finder = _Finder(tree, lines, rel)
    for statement in tree.body:
        finder.visit(statement)
    return finder.found


def _cell_of(lines: list[str], lineno: int) -> int | None:
    """The notebook cell a line of a converted notebook is in (its `# --- cell N ---` marker)."""
    for line in reversed(lines[:lineno]):
        if line.startswith("# --- cell ") and line.rstrip().endswith("---"):
            try:
                return int(line.split()[3])
            except (IndexError, ValueError):
                return None
    return None


def _constant_bool(node: ast.AST) -> bool | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _constant_bool(node.operand)
        return None if inner is None else not inner
    return None


def _dotted(node: ast.AST) -> tuple[str, str] | None:
    """`var.a.b[0]` as ("var", "a.b.0"); None for anything else."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, int) and not isinstance(node.slice.value, bool):
            parts.append(str(node.slice.value))
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id, ".".join(reversed(parts))
        else:
            return None


def _unchained(node: ast.AST) -> ast.AST:
    """`x` of `x.to(device).cuda()`: the expression before calls that return the same model."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _SAME_MODEL:
        node = node.func.value
    return node


def _called_class(node: ast.AST) -> str | None:
    """The name called in `FCN32s(13)`, `models.FCN32s(13).to(device)`; None otherwise."""
    node = _unchained(node)
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name):
            return node.func.id
        if isinstance(node.func, ast.Attribute):
            return node.func.attr
    return None


def _same_model(node: ast.AST) -> str | None:
    """The variable in `var.to(device)`, `var.cuda()` (the same model); None otherwise."""
    node = _unchained(node)
    return node.id if isinstance(node, ast.Name) else None


def _optimised_parts(call: ast.AST) -> list[ast.AST] | None:
    """The objects whose parameters an optimiser is given (`Adam(m.head.parameters())`, a sum
    or chain of lists of them, parameter groups); None when it is no optimiser or the
    parameters are given another way (a filter, a variable)."""
    if not (isinstance(call, ast.Call) and (isinstance(call.func, ast.Attribute) and call.func.attr in _OPTIMIZERS
                                            or isinstance(call.func, ast.Name) and call.func.id in _OPTIMIZERS)):
        return None
    given = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "params"), None)

    def parts(node: ast.AST) -> list[ast.AST] | None:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "parameters" \
                and not node.args:
            return [node.func.value]
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)) \
                and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) in ("list", "chain") \
                and node.args and not node.keywords:
            found = [parts(arg) for arg in node.args]
            return None if any(f is None for f in found) else [p for f in found for p in f]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = parts(node.left), parts(node.right)
            return None if left is None or right is None else left + right
        if isinstance(node, ast.List) and node.elts and all(isinstance(e, ast.Dict) for e in node.elts):
            groups = [next((v for k, v in zip(e.keys, e.values) if isinstance(k, ast.Constant)
                            and k.value == "params"), None) for e in node.elts]
            found = [parts(g) if g is not None else None for g in groups]
            return None if any(f is None for f in found) else [p for f in found for p in f]
        return None

    return parts(given) if given is not None else None


def _sets_requires_grad(statement: ast.stmt, param: str) -> bool | None:
    """The value `statement` gives `param.requires_grad` (`= False`, `.requires_grad_(False)`)."""
    found = _direct_steps(statement)
    if found is not None and isinstance(found[0], ast.Name) and found[0].id == param:
        return found[1][0][2]
    return None


def _name_conditions(test: ast.AST, name: str) -> list[tuple[str, str]] | None:
    """(select, text) for `name.startswith("a")`, `name.startswith(("a", "b"))`, `"a" in name`,
    joined by `or`; None for any other condition."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or):
        found = [_name_conditions(value, name) for value in test.values]
        return None if any(f is None for f in found) else [c for f in found for c in f]
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute) and test.func.attr == "startswith" \
            and isinstance(test.func.value, ast.Name) and test.func.value.id == name and len(test.args) == 1:
        arg = test.args[0]
        texts = arg.elts if isinstance(arg, ast.Tuple) else [arg]
        if all(isinstance(t, ast.Constant) and isinstance(t.value, str) and t.value for t in texts):
            return [("prefix", t.value) for t in texts]
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.In) \
            and isinstance(test.left, ast.Constant) and isinstance(test.left.value, str) and test.left.value \
            and isinstance(test.comparators[0], ast.Name) and test.comparators[0].id == name:
        return [("contains", test.left.value)]
    return None


def _loop_steps(loop: ast.For) -> tuple[ast.AST, list[tuple[str, str, bool]]] | None:
    """(the object looped over and its steps) for a freezing loop over `X.parameters()` or
    `X.named_parameters()`, or over X's layers (`for layer in X:`, `X.children()`,
    `X.modules()`) freezing each; None for any other loop."""
    it = loop.iter
    if isinstance(loop.target, ast.Name) and not (isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute)
                                                  and it.func.attr in ("parameters", "named_parameters")):
        owner = it.func.value if isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute) \
            and it.func.attr in ("children", "modules") and not it.args else it
        layer = loop.target.id
        values = set()
        for statement in loop.body:
            inner = _loop_steps(statement) if isinstance(statement, ast.For) else _direct_steps(statement)
            if inner and isinstance(inner[0], ast.Name) and inner[0].id == layer \
                    and all(select == "module" and not path for select, path, _ in inner[1]):
                values |= {value for _, _, value in inner[1]}
        if len(values) == 1 and _dotted(owner) is not None:
            return owner, [("module", "", values.pop())]
        return None
    if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute)
            and it.func.attr in ("parameters", "named_parameters")):
        return None
    owner = it.func.value
    if it.func.attr == "parameters" and isinstance(loop.target, ast.Name):
        values = {v for s in loop.body if (v := _sets_requires_grad(s, loop.target.id)) is not None}
        return (owner, [("module", "", values.pop())]) if len(values) == 1 else None
    if it.func.attr == "named_parameters" and isinstance(loop.target, ast.Tuple) and len(loop.target.elts) == 2 \
            and all(isinstance(e, ast.Name) for e in loop.target.elts):
        name, param = (e.id for e in loop.target.elts)
        steps: list[tuple[str, str, bool]] = []
        for statement in loop.body:
            value = _sets_requires_grad(statement, param)
            if value is not None:
                steps.append(("module", "", value))
            elif isinstance(statement, ast.If) and not statement.orelse:
                conditions = _name_conditions(statement.test, name)
                values = {v for s in statement.body if (v := _sets_requires_grad(s, param)) is not None}
                if conditions is None or len(values) != 1:
                    return None
                steps += [(select, text, next(iter(values))) for select, text in conditions]
        return (owner, steps) if steps else None
    return None


def _direct_steps(statement: ast.stmt) -> tuple[ast.AST, list[tuple[str, str, bool]]] | None:
    """`X.requires_grad_(False)` or `X.weight.requires_grad = False`: (X, steps)."""
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        call = statement.value
        if isinstance(call.func, ast.Attribute) and call.func.attr == "requires_grad_":
            value = _constant_bool(call.args[0]) if call.args else True
            if value is not None:
                return call.func.value, [("module", "", value)]
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target = statement.targets[0]
        if isinstance(target, ast.Attribute) and target.attr == "requires_grad":
            value = _constant_bool(statement.value)
            if value is not None:
                return target.value, [("module", "", value)]
    return None


class _Freezer:
    """A function of the file that freezes its first parameter: always, or under `if <flag>:`
    (the flag's position, name and default)."""

    def __init__(self, steps: list[tuple[str, str, bool]], flag: tuple[int, str, bool | None] | None) -> None:
        self.steps, self.flag = steps, flag


def _freezer(function: ast.FunctionDef) -> _Freezer | None:
    """A freezing helper (the tutorial's set_parameter_requires_grad), or a training function
    that freezes its model first (`def train(model, freeze=True): if freeze: ...`)."""
    args = function.args.posonlyargs + function.args.args
    params = [a.arg for a in args]
    if not params:
        return None
    first = params[0]
    defaults = dict(zip(params[len(params) - len(function.args.defaults):], function.args.defaults))

    def steps_in(body: list[ast.stmt]) -> list[tuple[str, str, bool]]:
        steps: list[tuple[str, str, bool]] = []
        for statement in body:
            found = _loop_steps(statement) if isinstance(statement, ast.For) else None
            found = found or _direct_steps(statement)
            dotted = _dotted(found[0]) if found else None
            if dotted is None or dotted[0] != first:
                continue
            for select, text, value in found[1]:   # relative to the first parameter: `model.features`
                if select != "contains" or not dotted[1]:   # a part of a name in a submodule: no selector
                    steps.append((select, ".".join(p for p in (dotted[1], text) if p), value))
        return steps

    steps = steps_in(function.body)
    if steps:
        return _Freezer(steps, None)
    for statement in function.body:
        if isinstance(statement, ast.If) and not statement.orelse and isinstance(statement.test, ast.Name) \
                and statement.test.id in params[1:]:
            steps = steps_in(statement.body)
            if steps:
                name = statement.test.id
                default = _constant_bool(defaults[name]) if name in defaults else None
                return _Freezer(steps, (params.index(name), name, default))
    return None


class _Finder:
    def __init__(self, tree: ast.Module, lines: list[str], rel: str) -> None:
        self.lines, self.rel = lines, rel
        self.instances: dict[str, tuple[str, str]] = {}   # variable -> (class name, instance label)
        self.constants: dict[str, bool] = {}
        self.assigned: dict[str, int] = {}
        self.freezers = {f.name: fz for f in tree.body if isinstance(f, ast.FunctionDef) and (fz := _freezer(f))}
        self.found: list[dict[str, Any]] = []

    def visit(self, statement: ast.stmt) -> None:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return
        if (direct := _direct_steps(statement)) is not None:
            self._record(statement, *direct)
        elif isinstance(statement, ast.Assign) and (optimised := _optimised_parts(statement.value)) is not None:
            self._optimiser(statement, optimised)
        elif isinstance(statement, ast.Assign):
            self._assign(statement)
        elif isinstance(statement, ast.For) and (loop := _loop_steps(statement)) is not None:
            self._record(statement, *loop)
        elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            self._freezer_call(statement, statement.value)
        for child in self._blocks(statement):
            self.visit(child)

    @staticmethod
    def _blocks(statement: ast.stmt) -> Iterator[ast.stmt]:
        """Statements inside top-level blocks (`if __name__ == "__main__":`, `with`, `try`); not
        loops: what a training loop sets (unfreezing at epoch 5) is a schedule, not the build."""
        if isinstance(statement, (ast.If, ast.With, ast.Try)):
            for block in ("body", "orelse", "finalbody"):
                yield from getattr(statement, block, ())
            for handler in getattr(statement, "handlers", ()):
                yield from handler.body

    def _assign(self, statement: ast.Assign) -> None:
        for target in statement.targets:
            if not isinstance(target, ast.Name):
                continue
            var = target.id
            value = statement.value
            same = _same_model(value)
            if same is not None and same in self.instances and isinstance(value, ast.Call):
                self.instances[var] = self.instances[same]
                continue
            self.instances.pop(var, None)
            self.constants.pop(var, None)
            flag = _constant_bool(value)
            if flag is not None:
                self.constants[var] = flag
                continue
            called = _called_class(value)
            if called is not None and called not in self.freezers:
                self.assigned[var] = self.assigned.get(var, 0) + 1
                label = var if self.assigned[var] == 1 else f"{var} (assignment {self.assigned[var]})"
                self.instances[var] = (called, label)

    def _optimiser(self, statement: ast.stmt, parts: list[ast.AST]) -> None:
        """An optimiser given some parts of one model: the rest of it does not train."""
        dotted = [_dotted(part) for part in parts]
        if any(d is None for d in dotted) or len({d[0] for d in dotted}) != 1 or any(not d[1] for d in dotted):
            return   # the whole model, several models, or parts it cannot name: nothing frozen
        root = parts[0]
        while not isinstance(root, ast.Name):
            root = root.value
        self._record(statement, root, [("module", "", False)] + [("module", d[1], True) for d in dotted])

    def _freezer_call(self, statement: ast.stmt, call: ast.Call) -> None:
        if not (isinstance(call.func, ast.Name) and call.func.id in self.freezers and call.args):
            return
        freezer = self.freezers[call.func.id]
        if freezer.flag is not None:
            position, name, default = freezer.flag
            given = call.args[position] if position < len(call.args) else \
                next((k.value for k in call.keywords if k.arg == name), None)
            value = default if given is None else _constant_bool(given)
            if value is None and isinstance(given, ast.Name):
                value = self.constants.get(given.id)
            if not value:
                return
        self._record(statement, call.args[0], freezer.steps)

    def _record(self, statement: ast.stmt, owner: ast.AST, steps: list[tuple[str, str, bool]]) -> None:
        dotted = _dotted(owner)
        if dotted is None or dotted[0] not in self.instances:
            return
        var, path = dotted
        class_name, instance = self.instances[var]
        cell = _cell_of(self.lines, statement.lineno)
        notebook = bool(self.lines) and self.lines[0].startswith("# Generated by segrade from ")
        where = f"{self.rel.removesuffix('.py')}.ipynb, cell {cell}" if notebook and cell \
            else f"{self.rel} line {statement.lineno}"
        code = trim(self.lines[statement.lineno - 1], 160) if statement.lineno <= len(self.lines) else ""
        for select, text, requires_grad in steps:
            if select == "module":
                full = ".".join(p for p in (path, text) if p)
            elif not path:
                full = text
            elif select == "prefix":   # names of a submodule's named_parameters() are relative to it
                full = f"{path}.{text}"
            else:
                continue   # a part of a name within a submodule: no selector says it; left out
            # Bounded as the protocol's record is (TopLevelFreeze): a name is the student's to choose.
            self.found.append({"class_name": class_name[:200], "instance": instance[:200], "select": select,
                               "path": full[:500], "requires_grad": requires_grad, "where": trim(where, 300),
                               "code": code})
