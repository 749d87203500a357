"""Architecture rules, on the grading side: a variant's fingerprint (measured in the worker
by grader.measure.graph, sent as grader.shared.protocol.Fingerprint) against the spec's
`architecture` requirement for it (BRIEF section 6)."""

from __future__ import annotations

import math

from grader.shared.protocol import Fingerprint

__all__ = ["Fingerprint", "check_architecture", "format_scale"]


def format_scale(scale: float) -> str:
    """1.0 -> "1/1", 0.0625 -> "1/16", 2.0 -> "2/1"."""
    if scale >= 1:
        return f"{round(scale)}/1"
    return f"1/{round(1 / scale)}"


def _scales_text(scales) -> str:
    return ", ".join(format_scale(s) for s in scales)


def _same_scale(a: float, b: float) -> bool:
    return round(math.log2(a)) == round(math.log2(b))


def _fcn_name(scale: float) -> str:
    return f"FCN-{round(1 / scale)}s"


def _fcn_rule(scale: float) -> str:
    level = round(-math.log2(scale))
    if level >= 5:
        return f"{_fcn_name(scale)} must upsample the 1/32 scores directly, without fusing pool features"
    if level == 4:
        return f"{_fcn_name(scale)} must fuse pool4 scores at 1/16"
    if level == 3:
        return f"{_fcn_name(scale)} must also fuse pool3 at 1/8"
    return f"{_fcn_name(scale)} must fuse features down to {format_scale(scale)}"


def _wired_as(fp: Fingerprint) -> str:
    if fp.bypass_scale < 1 and fp.bypass_scale >= 1 / 32:
        return f"it is wired as {_fcn_name(fp.bypass_scale)}"
    if fp.bypass_scale >= 1:
        return "it keeps a full-resolution path to the output"
    return f"its finest path is {format_scale(fp.bypass_scale)}"


def check_architecture(fp: Fingerprint, requirement: dict, name: str, family: str = "fcn") -> tuple[str, str]:
    """Check a fingerprint against one variant's requirement (keys, all optional:
    bypass_scale, max_bypass_scale, long_skips, no_long_skips, residual_adds_min, gated_skips).
    `family` is the variant's family id: a wrong finest path is told in FCN terms (pool3,
    "wired as FCN-16s") only for family `fcn`, the one family whose scales mean FCN strides;
    another course's encoder-decoder (a DeepLab head at 1/8) gets the rule in plain scales.
    Returns ("pass" | "fail", a message for the student)."""
    problems: list[str] = []
    have = set(fp.long_skips)
    ops = dict(zip(fp.long_skips, fp.long_skip_ops))

    def joins_text(scales) -> str:
        kinds = {ops.get(s, "cat") for s in scales}
        verb = "concatenates" if kinds == {"cat"} else "adds" if kinds == {"add"} else "concatenates/adds"
        return f"still {verb} encoder features at {_scales_text(scales)}"

    want = requirement.get("bypass_scale")
    if want is not None and not _same_scale(fp.bypass_scale, want):
        if want < 1 and family != "fcn":
            joined = sorted(have, reverse=True)
            joins = (f"joins encoder features with the upsampled path at {_scales_text(joined)}" if joined
                     else "joins no encoder features with the upsampled path")
            problems.append(
                f"{name} {joins} and its finest path to the output is {format_scale(fp.bypass_scale)}; "
                f"this variant's finest path must be {format_scale(want)}"
            )
        elif want < 1:
            fused = sorted(have, reverse=True)
            fuse = (f"fuses pool features only at {_scales_text(fused)}" if fused
                    else "fuses no pool features")
            problems.append(
                f"{name} {fuse} and its finest path is {format_scale(fp.bypass_scale)}: "
                f"{_wired_as(fp)} ({_fcn_rule(want)})"
            )
        else:
            problems.append(
                f"{name}'s output only sees features that went down to "
                f"{format_scale(fp.bypass_scale)}: it has no skip connection at "
                f"{format_scale(want)} (the encoder features must reach the decoder directly)"
            )

    most = requirement.get("max_bypass_scale")
    if most is not None and round(math.log2(fp.bypass_scale)) > round(math.log2(most)):
        if have:
            problems.append(f"{name} {joins_text(sorted(have, reverse=True))}: it has skip connections")
        else:
            problems.append(
                f"{name} keeps a path to the output at {format_scale(fp.bypass_scale)}: everything "
                f"the output sees must go through the {format_scale(most)} bottleneck"
            )
    elif requirement.get("no_long_skips") and have:
        problems.append(f"{name} {joins_text(sorted(have, reverse=True))}: it has skip connections")

    required = requirement.get("long_skips")
    if required:
        missing = [s for s in sorted(required, reverse=True)
                   if not any(_same_scale(s, h) for h in have)]
        if missing:
            found = f" (found at {_scales_text(sorted(have, reverse=True))} only)" if have else " (found none)"
            problems.append(
                f"{name} does not join encoder features with the upsampled decoder path at "
                f"{_scales_text(missing)}{found}"
            )

    minimum = requirement.get("residual_adds_min")
    if minimum is not None and fp.residual_adds < minimum:
        if fp.residual_adds == 0:
            problems.append(f"{name} has no residual add inside its blocks (y = relu(F(x) + shortcut(x)))")
        else:
            problems.append(
                f"{name} has only {fp.residual_adds} residual adds inside its blocks "
                f"(y = relu(F(x) + shortcut(x))); at least {minimum} expected, one per block"
            )

    if requirement.get("gated_skips"):
        scales = sorted(have, reverse=True) or sorted(requirement.get("long_skips") or [], reverse=True)
        ungated = [s for s in scales if not any(_same_scale(s, g) for g in fp.gated_long_skips)]
        if not have:
            problems.append(f"{name} has no skip connections to gate")
        elif ungated:
            note = ""
            if fp.ungated_attention:
                note = (f" ({fp.ungated_attention} sigmoid map(s) are computed from the feature itself: "
                        "self-attention, not a gate from the coarser level)")
            problems.append(
                f"{name}'s skips at {_scales_text(ungated)} are not multiplied by a sigmoid attention "
                f"map computed from coarser context{note}"
            )

    if problems:
        return "fail", "; ".join(problems)
    parts = [f"finest path {format_scale(fp.bypass_scale)}"]
    if fp.long_skips:
        parts.append(f"skips at {_scales_text(fp.long_skips)}")
    else:
        parts.append("no skips")
    if fp.residual_adds:
        parts.append(f"{fp.residual_adds} residual adds")
    if fp.gated_long_skips:
        parts.append(f"gated skips at {_scales_text(fp.gated_long_skips)}")
    return "pass", f"{name}: " + ", ".join(parts)
