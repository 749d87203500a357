"""Structural similarity: what the built models are made of, blind to names, comments and
layout (a copy whose identifiers were renamed, functions reordered and comments rewritten
builds the same layers).

Per variant, each submission's tokens come from its results.json (`figures.structure.layers`,
one line per layer: type, settings and parameter shapes in order, grader.shared.structure; and the
dataflow-graph fingerprint `figures.architecture`). Results graded before layers were
recorded fall back to the fingerprint and the parameter and FLOP counts. A token is a layer
line with its occurrence number (the 3rd identical conv is its own token), a pair of
consecutive layers, or the fingerprint.

Two students of one assignment often build the same standard network, so sameness alone is
weak evidence. Each token weighs by how rare it is in the class (w = log(N/df) / log(N/2): 1
when only two submissions have it, 0 when all do), and a variant's score is

    (weight shared / weight of the union)  x  (weight shared / number of tokens shared)

the first factor is how alike the two models are, the second how distinctive what they share
is: an identical copy of an unusual design scores 1, two identical textbook U-Nets in a class
that mostly wrote the same score near 0. With fewer than 4 submissions rarity cannot be told
and every token weighs 1. The reference's layers (grader.similarity.reference) weigh nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np

MIN_POPULATION = 4


def variant_tokens(figures: dict[str, Any]) -> set[str]:
    """The tokens of one variant's figures (results.json `variants[].figures`); empty when the
    model did not build."""
    tokens: set[str] = set()
    layers = ((figures.get("structure") or {}).get("layers")) or []
    seen: dict[str, int] = {}
    for line in layers:
        seen[line] = seen.get(line, 0) + 1
        tokens.add(f"L{seen[line]}:{line}")
    for first, second in zip(layers, layers[1:]):
        tokens.add(f"B:{first}|{second}")
    architecture = figures.get("architecture")
    if isinstance(architecture, dict) and "error" not in architecture:
        shape = {k: v for k, v in architecture.items() if k not in ("method", "export_error")}
        tokens.add("A:" + json.dumps(shape, sort_keys=True))
    if not layers:  # graded before layers were recorded: the coarse figures only
        parameters = figures.get("parameters") or {}
        for name in ("total", "trainable"):
            if parameters.get(name) is not None:
                tokens.add(f"P{name}:{parameters[name]}")
        if figures.get("flops") is not None:
            tokens.add(f"F:{figures['flops']}")
    return tokens if layers or len(tokens) > 1 else set()


def signature(tokens: set[str]) -> str:
    return hashlib.sha256("\n".join(sorted(tokens)).encode()).hexdigest()[:12]


def structural_similarity(tokens: dict[str, dict[str, set[str]]], pairs_allowed=lambda a, b: True,
                          boilerplate: dict[str, set[str]] | None = None) -> dict[tuple[str, str], dict[str, float]]:
    """tokens: submission -> variant -> token set. Returns (a, b) -> variant -> score in
    [0, 1], for the allowed pairs (a before b in `tokens`' order) and the variants both built.
    `boilerplate`: variant -> tokens that weigh nothing (the reference's layers)."""
    keys = list(tokens)
    variants = sorted({v for per in tokens.values() for v in per})
    out: dict[tuple[str, str], dict[str, float]] = {}
    for variant in variants:
        members = [k for k in keys if tokens[k].get(variant)]
        n = len(members)
        if n < 2:
            continue
        vocabulary: dict[str, int] = {}
        for k in members:
            for t in tokens[k][variant]:
                vocabulary.setdefault(t, len(vocabulary))
        matrix = np.zeros((n, len(vocabulary)), dtype=np.float32)
        for row, k in enumerate(members):
            matrix[row, [vocabulary[t] for t in tokens[k][variant]]] = 1.0
        df = matrix.sum(axis=0)
        if n >= MIN_POPULATION:
            weights = np.clip(np.log(n / df) / math.log(n / 2), 0.0, 1.0).astype(np.float32)
        else:
            weights = np.ones_like(df)
        given = (boilerplate or {}).get(variant) or set()
        if given:
            weights[[i for t, i in vocabulary.items() if t in given]] = 0.0
        shared_weight = (matrix * weights) @ matrix.T
        shared_count = matrix @ matrix.T
        own = (matrix * weights).sum(axis=1)
        union = own[:, None] + own[None, :] - shared_weight
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(union > 0, shared_weight / union, 0.0) * \
                np.where(shared_count > 0, shared_weight / shared_count, 0.0)
        rows, columns = np.nonzero(np.triu(score, 1) > 0)
        for i, j in zip(rows.tolist(), columns.tolist()):
            a, b = members[i], members[j]
            if pairs_allowed(a, b):
                out.setdefault((a, b), {})[variant] = round(float(score[i, j]), 4)
    return out
