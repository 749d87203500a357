"""A tiny submission that follows the contract (one conv per class), for tests that grade
submissions through the real worker: fast to build, and easy to make broken or hostile by
overriding one class."""

import textwrap
from pathlib import Path

TINY = '''
import torch.nn as nn

class Tiny(nn.Module):
    def __init__(self, num_classes, freeze_backbone=False, pretrained=True, in_channels=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=1)

    def forward(self, x):
        return self.conv(x)
'''
# Grade in the worker alone: no capture, no verifier (~4 s less a grade), what the worker measured
# trusted. For tests whose subject the worker decides (loading, mapping, hostile code in it).
IN_WORKER = {"capture": False, "trust_student_process": True}
CONTRACT_NAMES = ("FCN32s", "FCN16s", "FCN8s", "UNet", "UNetNoSkip", "ResidualUNet", "AttentionUNet")


def contract_classes(**overrides: str) -> str:
    """TINY plus every contract class, `class X(Tiny): pass` unless overridden with a body."""
    out = [TINY]
    for name in CONTRACT_NAMES:
        body = textwrap.indent(textwrap.dedent(overrides.get(name, "pass")), "    ")
        out.append(f"class {name}(Tiny):\n{body}\n")
    return "\n".join(out)


def write_submission(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (root / rel).write_bytes(content)
        else:
            (root / rel).write_text(textwrap.dedent(content))
    return root


def spec_with(variant_ids: list[str], path: Path, architecture: bool = True, input_size: int | None = None) -> Path:
    """The default spec cut down to some of its variants: fewer builds when a test is about
    one family. Rubric items keep only those variants (items left with none are dropped,
    manual items stay); profiles and policy are kept. Without architecture requirements
    if asked; with `input_size` px inputs for every family if given (see small_inputs)."""
    import re

    from grader.shared.resources import DEFAULT_SPEC

    text = DEFAULT_SPEC.read_text()
    if input_size is not None:
        text, count = re.subn(r"^input_size = \d+$", f"input_size = {input_size}", text, flags=re.M)
        assert count >= 2, "the spec's families no longer say input_size: update spec_with"
    if not architecture:
        text = without_architecture(text)
    head, rest = text.split("[[variants]]", 1)
    variants_part, rest = rest.split("[[rubric]]", 1)
    rubric_part, tail = rest.split("[profiles.", 1)
    rubric_part, *comparisons = rubric_part.split("[[comparisons]]")
    blocks = ("[[variants]]" + variants_part).split("[[variants]]")[1:]
    kept = [b for b in blocks if any(f'id = "{vid}"\n' in b for vid in variant_ids)]
    items = []
    for item in ("[[rubric]]" + rubric_part).split("[[rubric]]")[1:]:
        listed = re.search(r"^variants = \[(.*)\]$", item, re.M)
        names = re.findall(r'"([^"]+)"', listed.group(1)) if listed else []
        if names and not set(names) & set(variant_ids):
            continue
        if names:
            item = item.replace(listed.group(0), "variants = [" + ", ".join(f'"{n}"' for n in names
                                                                          if n in variant_ids) + "]")
        items.append("[[rubric]]" + item)
    # Comparisons survive only with all their variants (and the discussion they serve).
    kept_items = "".join(items)
    def named(comparison: str) -> set[str]:
        lists = re.findall(r"^(?:variants|pairs) = (.*)$", comparison, re.M)
        return set(re.findall(r'"([^"]+)"', " ".join(lists)))

    def serves(comparison: str) -> str:
        return re.search(r'^discussion = "([^"]+)"', comparison, re.M).group(1)

    comparisons = [c for c in comparisons if named(c) <= set(variant_ids) and f'id = "{serves(c)}"' in kept_items]
    path.write_text(head + "".join("[[variants]]" + b for b in kept) + kept_items
                    + "".join("[[comparisons]]" + c for c in comparisons) + "[profiles." + tail)
    return path


def spec_without_architecture(path: Path) -> Path:
    """The default spec with no architecture requirements: a one-conv model has no skips,
    strides or gates to show, and the other checks are what these tests are about."""
    from grader.shared.resources import DEFAULT_SPEC

    path.write_text(without_architecture(DEFAULT_SPEC.read_text()))
    return path


def without_architecture(spec_text: str) -> str:
    """A spec's text without its `architecture = ...` requirement lines."""
    return "".join(line for line in spec_text.splitlines(keepends=True) if not line.startswith("architecture = "))


def small_inputs(path: Path, size: int = 64) -> Path:
    """The default spec with families that take `size` px inputs instead of
    224 (FCN) and 256 (U-Net). For tests about reading submissions and judging them: the
    checks are the same, on inputs ~15x cheaper for a VGG16. The assignment's own sizes are
    exercised end to end by the reference self-check (test_reference_grade.py)."""
    import re

    from grader.shared.resources import DEFAULT_SPEC

    text = DEFAULT_SPEC.read_text()
    text, count = re.subn(r"^input_size = \d+$", f"input_size = {size}", text, flags=re.M)
    assert count >= 2, "the spec's families no longer say input_size: update small_inputs"
    path.write_text(text)
    return path


def worker_run(path: Path, spec, tmp: Path, ids=None, *, plan_only: bool = False, manifest: Path | None = None,
               options=None):
    """The real worker on a submission's variants (`ids`, default all), as the pipeline asks it,
    without the verifier or any judgment: (the worker run, the loaded submission). With
    `plan_only`, how each variant would be built (its mapping), nothing built."""
    from dataclasses import replace

    from grader.grading.pipeline import GradeOptions, probe_request
    from grader.grading.sandbox import run_worker
    from grader.grading.weights import BackboneWeights
    from grader.submission.load import load_submission, read_manifest

    sub = load_submission(path, tmp / "load")
    man = read_manifest(sub, manifest, [v.id for v in spec.variants])
    request = probe_request(spec, sub, BackboneWeights(None), man, options or GradeOptions())
    if ids is not None:
        request = replace(request, variants=tuple(v for v in request.variants if v.id in ids))
    return run_worker(sub.root, replace(request, plan_only=plan_only)), sub


def worker_plan(path: Path, spec, tmp: Path):
    """How the worker maps every variant of a submission, nothing built (see worker_run)."""
    return worker_run(path, spec, tmp, plan_only=True)
