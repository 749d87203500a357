"""Loading a captured program (.pt2) that an untrusted process wrote, without running its code.

What `torch.export.load` deserialises (torch 2.x, `torch/export/pt2_archive/_package.py` and
`torch/_export/serde/serialize.py`), and what this module does about each:

- a zip archive, one top folder: refused unless every entry is one of the names
  `torch.export.save` writes for one program (ALLOWED_ENTRY); so no `data/aotinductor/`
  (AOTInductor packages are shared libraries that `load_pt2` dlopens), no `extra/`, no
  executorch or MTIA payloads, no legacy pickled constants file;
- `models/model.json`: the graph, as JSON (dataclasses of torch's serde schema); operators are
  looked up by name among the registered ones, nothing is imported; checked after loading
  against the op policy (`check_ops`) before anything runs;
- `data/weights/*_weights_config.json` and `data/constants/*_constants_config.json`: which
  tensor file backs each parameter, buffer and constant. A payload flagged `use_pickle` is
  unpickled by torch with `torch.load(weights_only=False)`, a `custom_obj_` constant with the
  TorchScript unpickler and an `opaque_obj_` one with `pickle.loads`: all refused here before
  loading (only raw `weight_N`/`tensor_N` payloads are accepted);
- raw tensor payloads: bytes reinterpreted with the dtype, sizes and strides of the config;
- `data/sample_inputs/model.pt`: example inputs through `torch.load`, which torch retries
  with `weights_only=False` when the safe unpickler refuses; here every `torch.load` made
  while loading is forced to `weights_only=True`, and `pickle.loads` and the TorchScript
  unpickler refuse outright, whatever the checks above missed.

Before any of that: the file's size against the limit, its sha256 against the hash the
worker reported (a file changed after capture is not graded), and the zip's own CRC of every
entry (a truncated or corrupted file). Each refusal is a `ProgramRefused` with a `reason`
(oversize, hash, corrupt, payload, op, unloadable) and a message that says what to do.
The verifier loads inside the same sandbox as the worker, whatever this module concludes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import operator
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ALLOWED_ENTRY = re.compile(
    r"(archive_format|archive_version|byteorder|version|\.data/version|\.data/serialization_id"
    r"|models/model\.json|data/weights/model_weights_config\.json|data/weights/weight_\d{1,7}"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d{1,7}|data/sample_inputs/model\.pt)")
ROOT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,190}")
# aten operators with effects outside the tensors they compute: refused in a graded program.
REFUSED_OPS = frozenset({"_print", "from_file", "save", "_debug_has_internal_overlap", "_assert_async"})
# Higher-order operators torch.export leaves for grad-mode and autocast regions in forward.
ALLOWED_HIGHER_ORDER = frozenset({"wrap_with_set_grad_enabled", "wrap_with_autocast"})
REASONS = ("oversize", "hash", "corrupt", "payload", "op", "unloadable")


@dataclass(frozen=True)
class ProgramLimits:
    max_file_bytes: int = 2 * 1024**3          # one .pt2 (an FCN with VGG16's fc6/fc7 is ~0.55 GB)
    max_unpacked_bytes: int = 3 * 1024**3      # all entries, uncompressed
    max_entries: int = 20_000
    max_json_bytes: int = 256 * 1024**2        # the graph and the configs


class ProgramRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(path: Path, expected_sha256: str, limits: ProgramLimits = ProgramLimits()) -> None:
    """Size, hash, archive integrity and entries, before torch reads anything."""
    name = path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ProgramRefused("corrupt", f"{name}: the captured program is missing ({exc.strerror})") from None
    if size > limits.max_file_bytes:
        raise ProgramRefused("oversize", f"{name}: the captured program is {size / 2**20:.0f} MB, over the "
                                         f"{limits.max_file_bytes / 2**20:.0f} MB limit; a model that large cannot "
                                         "be graded with these limits")
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise ProgramRefused("hash", f"{name}: the file's sha256 {actual[:16]}... is not the {expected_sha256[:16]}... "
                                     "reported when it was captured: it changed after capture, so it is not graded")
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            _check_entries(name, entries, limits)
            bad = archive.testzip()   # reads every entry: CRC and length
            if bad is not None:
                raise ProgramRefused("corrupt", f"{name}: entry {bad[:80]!r} is corrupted (CRC mismatch)")
            root = entries[0].filename.split("/", 1)[0]
            for config in ("data/weights/model_weights_config.json", "data/constants/model_constants_config.json"):
                full = f"{root}/{config}"
                if full in archive.namelist():
                    _check_payload_config(name, config, archive.read(full))
    except zipfile.BadZipFile as exc:
        raise ProgramRefused("corrupt", f"{name}: not a readable .pt2 archive (truncated or damaged: {exc})") from None
    except (EOFError, OSError, ValueError) as exc:
        raise ProgramRefused("corrupt", f"{name}: the archive cannot be read ({type(exc).__name__}: {exc})") from None


def _check_entries(name: str, entries: list[zipfile.ZipInfo], limits: ProgramLimits) -> None:
    if not entries:
        raise ProgramRefused("corrupt", f"{name}: an empty archive")
    if len(entries) > limits.max_entries:
        raise ProgramRefused("oversize", f"{name}: {len(entries)} entries, over the limit of {limits.max_entries}")
    unpacked = sum(e.file_size for e in entries)
    if unpacked > limits.max_unpacked_bytes:
        raise ProgramRefused("oversize", f"{name}: {unpacked / 2**20:.0f} MB unpacked, over the "
                                         f"{limits.max_unpacked_bytes / 2**20:.0f} MB limit")
    roots = set()
    for entry in entries:
        root, _, rest = entry.filename.partition("/")
        roots.add(root)
        if not ROOT.fullmatch(root) or not ALLOWED_ENTRY.fullmatch(rest):
            raise ProgramRefused("payload", f"{name}: entry {entry.filename[:120]!r} is not part of a program saved "
                                            "by torch.export.save (no compiled code, pickles or extra files are "
                                            "loaded)")
        if rest.endswith(".json") and entry.file_size > limits.max_json_bytes:
            raise ProgramRefused("oversize", f"{name}: {rest} is {entry.file_size / 2**20:.0f} MB")
    if len(roots) != 1:
        raise ProgramRefused("payload", f"{name}: {len(roots)} top folders, a program archive has one")


def _check_payload_config(name: str, config: str, raw: bytes) -> None:
    """Only raw tensor payloads: nothing torch would unpickle."""
    try:
        data = json.loads(raw)
        items = data["config"].items()
    except (ValueError, KeyError, AttributeError, TypeError):
        raise ProgramRefused("corrupt", f"{name}: {config} is not a payload configuration") from None
    for fqn, meta in items:
        path_name = str((meta or {}).get("path_name", ""))
        if (meta or {}).get("use_pickle") or not re.fullmatch(r"(weight|tensor)_\d{1,7}", path_name):
            raise ProgramRefused("payload", f"{name}: {str(fqn)[:80]} is stored as {path_name[:40] or 'a pickle'!r} "
                                            "(a pickled object), which is never loaded: capture plain tensors only")


@contextlib.contextmanager
def no_unpickling():
    """While torch loads the archive: every torch.load is weights_only, and the two general
    unpicklers the loader can reach refuse."""
    import torch
    from torch.export.pt2_archive import _package

    real_load = torch.load

    def weights_only_load(f, *args, **kwargs):
        kwargs["weights_only"] = True
        return real_load(f, *args, **kwargs)

    def refuse(*args, **kwargs):
        raise ProgramRefused("payload", "the program holds a pickled object, which is never loaded")

    class _Pickle:   # what _package may use of the pickle module while loading
        loads = staticmethod(refuse)
        load = staticmethod(refuse)

    saved = (torch.load, _package.pickle, torch._C._pickle_load_obj)
    torch.load, _package.pickle, torch._C._pickle_load_obj = weights_only_load, _Pickle, refuse
    try:
        yield
    finally:
        torch.load, _package.pickle, torch._C._pickle_load_obj = saved


@contextlib.contextmanager
def memoised_deserialisation():
    """While torch reads the graph: the same answers, computed once. torch's deserialiser asks
    `typing.get_type_hints` of a schema class for every object it decodes (thousands per
    program) and parses each symbolic size expression (`s0`, `32*s1`) with sympy every time a
    tensor's shape names it; both are pure for a given schema class and, within one program,
    for a given expression. Measured on the reference U-Net's train program: 0.63 s -> 0.21 s
    a load (FCN-8s 0.61 -> 0.39 s); the loaded program is the same (tests/test_capture.py).
    Skipped, not failed, where a torch version lacks what it wraps."""
    import typing

    from torch._export.serde import serialize

    real_hints = typing.get_type_hints
    schema = getattr(serialize, "schema", None)
    schema_namespace = vars(schema) if schema is not None else None
    hints: dict[tuple[type, bool], dict] = {}

    def get_type_hints(obj, globalns=None, localns=None, include_extras=False):
        if globalns is None or globalns is not schema_namespace or localns is not None or not isinstance(obj, type):
            return real_hints(obj, globalns, localns, include_extras)
        key = (obj, include_extras)
        if key not in hints:
            hints[key] = real_hints(obj, globalns, None, include_extras)
        return dict(hints[key])

    deserializer = getattr(serialize, "GraphModuleDeserializer", None)
    real_parse = getattr(deserializer, "_parse_sym_expr", None)

    def parse_sym_expr(self, expr, hint=None):
        # Per deserializer (one program): a repeated expression registers nothing new.
        parsed = self.__dict__.setdefault("_segrade_parsed", {})
        key = (expr, hint)
        try:
            hash(key)
        except TypeError:   # an argument that cannot be a key: torch's own parse, as without this
            return real_parse(self, expr, hint)
        if key not in parsed:
            parsed[key] = real_parse(self, expr, hint)
        return parsed[key]

    typing.get_type_hints = get_type_hints
    if real_parse is not None:
        deserializer._parse_sym_expr = parse_sym_expr
    try:
        yield
    finally:
        typing.get_type_hints = real_hints
        if real_parse is not None:
            deserializer._parse_sym_expr = real_parse


def check_ops(program) -> list[str]:
    """Every call in the graph (and in the bodies of grad-mode regions) is an aten operator
    not on the refused list, a higher-order operator torch.export uses for grad-mode or
    autocast regions, or Python arithmetic on sizes. Returns the sorted operator names."""
    from torch._ops import HigherOrderOperator, OpOverload

    seen: set[str] = set()
    for module in program.graph_module.modules():
        graph = getattr(module, "graph", None)
        if graph is None:
            continue
        for node in graph.nodes:
            if node.op not in ("call_function", "call_method", "call_module"):
                continue
            target = node.target
            if node.op != "call_function":
                raise ProgramRefused("op", f"the program calls {node.op} {str(target)[:80]!r}; only operators are run")
            if isinstance(target, OpOverload):
                namespace = target.namespace
                packet = target.overloadpacket.__name__
                if namespace != "aten" or packet in REFUSED_OPS:
                    raise ProgramRefused("op", f"the program uses {namespace}.{packet}, which the verifier refuses "
                                               "(an operator with effects outside its tensors, or not one of "
                                               "PyTorch's own)")
                seen.add(f"aten.{packet}")
            elif isinstance(target, HigherOrderOperator):
                if target.__name__ not in ALLOWED_HIGHER_ORDER:
                    raise ProgramRefused("op", f"the program uses the control-flow operator {target.__name__}, "
                                               "which the verifier does not run")
                seen.add(target.__name__)
            elif getattr(target, "__module__", None) in ("_operator", "operator") or target is operator.getitem \
                    or getattr(target, "__name__", "").startswith("sym_"):
                seen.add(getattr(target, "__name__", str(target)))
            else:
                raise ProgramRefused("op", f"the program calls {str(target)[:80]!r}, which the verifier refuses")
    return sorted(seen)


def load_program(path: Path, expected_sha256: str, limits: ProgramLimits = ProgramLimits()):
    """The ExportedProgram in `path`, checked before and after torch reads it."""
    import torch

    check_file(path, expected_sha256, limits)
    try:
        with no_unpickling(), memoised_deserialisation():
            program = torch.export.load(str(path))
    except ProgramRefused:
        raise
    except Exception as exc:
        raise ProgramRefused("unloadable", f"{path.name}: torch.export.load failed: {type(exc).__name__}: "
                                           f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from None
    check_ops(program)
    return program


def describe(refused: ProgramRefused) -> dict[str, Any]:
    return {"reason": refused.reason, "message": refused.message}
