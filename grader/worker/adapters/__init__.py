"""Adapters: how to build each variant of the assignment from a student's code.

Real submissions follow no interface (BRIEF §3). For each variant, `plan_variant` looks at
the classes and functions the worker imported (`Candidate`s) and decides how to build the
variant, in this order:

1. the manifest (`segrade.toml` in the submission, or the instructor's file for it), which
   names a factory, its keyword arguments and methods to call after construction;
2. the contract class name (`FCN8s`, `UNetNoSkip`...), case and underscores ignored;
3. an alias from the spec (`NoSkipUNet`, `GatedAttentionUNet`...);
4. a class whose name says the variant (`FCN8`, `VGG16FCN8s`, `UNetWithoutSkips`);
5. a family class that takes the variant as an argument (`FCN(variant="8s")`) or as flags
   (`UNet(..., use_skip_connections=False)`).

The result is a `BuildPlan` (factory, kwargs, methods to call after, and a one-line
description of the choice) or an `Unresolved` (missing or ambiguous, with a message that
says what was looked for and the exact manifest lines that fix it). Whatever the tier, the
arguments are filled from the constructor's signature: the class count under any of its
usual names, the input channels, the pretrained switch (the grader runs offline), the
frozen backbone (flag, inverted flag, method, or nothing) and the U-Net flags.

This package runs inside the worker process, next to student code. It is pure logic: it
reads signatures and source text but builds nothing except through `BuildPlan.build()`.
The manifest parser (grader.shared.manifest) also runs in the grading process, which imports
no student code.

One module per concept: `plans` (Candidate, VariantRequest, BuildPlan, Unresolved),
`known_names` (the argument and method names recognised), `signatures` (reading a
constructor's parameters), `heuristics` (what names and source text say), `filling` (the
arguments of the call), `planning` (`plan_variant`: tiers and ranking), `manifest_plan` (the
plan a manifest pins), `messages` (what an Unresolved says, manifest lines) and `outputs`
(`to_logits`). This file is the package's face: import from `grader.worker.adapters`.
"""

from grader.shared.manifest import MANIFEST_NAME, ManifestError, check_manifest_ids, parse_manifest
from grader.worker.adapters.messages import manifest_lines
from grader.worker.adapters.outputs import to_logits
from grader.worker.adapters.planning import plan_variant
from grader.worker.adapters.plans import BuildContext, BuildPlan, Candidate, Unresolved, VariantRequest

__all__ = [
    "MANIFEST_NAME", "BuildContext", "BuildPlan", "Candidate", "ManifestError", "Unresolved", "VariantRequest",
    "check_manifest_ids", "manifest_lines", "parse_manifest", "plan_variant", "to_logits",
]
