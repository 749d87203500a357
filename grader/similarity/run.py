"""Similarity of a graded folder: gather the code and structures, compare, write the page
and the CSV (grader.report.similarity). See grader/similarity/__init__.py."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.records.files import ERROR_FILE, RESULTS_FILE, ResultsError, read_results
from grader.records.results import SubmissionResult
from grader.similarity.code import CODE_DIR, code_of, load_tokens, read_code, save_tokens
from grader.similarity.structural import structural_similarity, variant_tokens
from grader.similarity.textual import TextMatch, text_key, text_similarity, tokenize_all

PAGE = "similarity.html"
CSV = "similarity.csv"
REFERENCE_CACHE = ".segrade-reference-structure.json"


@dataclass(frozen=True)
class SimilarityOptions:
    threshold: float = 0.5               # textual score from which a pair is listed as similar
    structural_threshold: float = 0.6    # per-variant structural score from which a variant counts
    floor: float = 0.2                   # pairs below it in both scores are not written at all
    starter: tuple[Path, ...] = ()       # the instructor's starter code: boilerplate
    compare_with: tuple[Path, ...] = ()  # earlier terms: graded folders or folders of submissions
    reference: bool = True               # the reference solution is boilerplate (always, by default)
    max_shown: int = 40                  # pairs shown side by side on the page


@dataclass
class Pair:
    a: str
    b: str
    textual: float = 0.0
    structural: float | None = None                         # mean over the variants both built (None: none)
    variants: dict[str, float] = field(default_factory=dict)  # variant -> structural score
    common_variants: int = 0
    text: TextMatch | None = None
    earlier: bool = False                                   # b is from an earlier term

    @property
    def score(self) -> float:
        return max(self.textual, self.structural or 0.0)


@dataclass
class SimilarityResult:
    pairs: list[Pair]                  # every pair at or above the floor, best first
    flagged: list[Pair]                # above a threshold
    groups: list[dict[str, Any]]       # students linked by flagged pairs
    page: Path | None = None
    csv: Path | None = None
    submissions: int = 0
    earlier: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    texts: dict[str, str] = field(default_factory=dict)


def _graded_folders(root: Path, only: set[str] | None) -> list[Path]:
    folders = sorted({p.parent for name in (RESULTS_FILE, ERROR_FILE, CODE_DIR) for p in root.glob(f"*/{name}")})
    return [f for f in folders if not f.name.startswith(".") and (only is None or f.name in only)]


def _read_results(folder: Path, notes: list[str]) -> SubmissionResult | None:
    if not (folder / RESULTS_FILE).is_file():
        return None
    try:
        return read_results(folder)
    except ResultsError as exc:
        notes.append(f"{folder.name}: its results cannot be read, its structure is not compared ({exc})")
        return None


def _collect(folder: Path, prefix: str, texts: dict, tokens: dict, notes: list[str],
             cached: dict | None = None) -> None:
    """One graded submission folder: its code (code/, else re-extracted from the source the
    results name) and its variants' structure tokens."""
    key = prefix + folder.name
    results = _read_results(folder, notes)
    if (folder / CODE_DIR).is_dir():
        texts[key] = read_code(folder / CODE_DIR)
        kept = load_tokens(folder / CODE_DIR, texts[key]) if cached is not None else None
        if kept is not None:
            cached[text_key(texts[key])] = kept
    else:
        source = results.submission.source if results else None
        if source is not None and str(source) and source.exists():
            try:
                texts[key] = code_of(source)
                notes.append(f"{key}: no {CODE_DIR}/ folder (graded by an older segrade): its code was extracted "
                             f"again from {source}")
            except Exception as exc:  # noqa: BLE001 (one unreadable submission never stops the comparison)
                notes.append(f"{key}: its code could not be extracted from {source}: {exc}")
        else:
            notes.append(f"{key}: no extracted code ({CODE_DIR}/) and no source to read it from: structure only")
    if results:
        tokens[key] = {v.variant_id: t for v in results.variants if (t := variant_tokens(v.figures))}


def _collect_earlier(folder: Path, texts: dict, tokens: dict, notes: list[str]) -> int:
    """An earlier term: a graded folder (OUT/<id>/...) or a folder of submissions."""
    from grader.shared.errors import BatchError
    from grader.batch.job import find_entries

    prefix = f"{folder.name}/"
    graded = [f for f in _graded_folders(folder, None)]
    if graded:
        for sub in graded:
            _collect(sub, prefix, texts, tokens, notes)
        return len(graded)
    try:
        entries = find_entries(folder)
    except BatchError as exc:
        notes.append(f"--compare-with {folder}: {exc}")
        return 0
    for entry in entries:
        try:
            texts[prefix + entry.id] = code_of(entry.path)
        except Exception as exc:  # noqa: BLE001
            notes.append(f"{prefix}{entry.id}: its code could not be extracted: {exc}")
    return len(entries)


def _boilerplate(options: SimilarityOptions, notes: list[str]) -> list[str]:
    from grader.shared.resources import reference_dir

    texts = []
    sources = ([reference_dir()] if options.reference else []) + list(options.starter)
    for source in sources:
        try:
            texts.append(code_of(source))
        except Exception as exc:  # noqa: BLE001 (a starter of notebooks without model code is still text)
            notes.append(f"boilerplate {source}: its code could not be extracted: {exc}")
    return texts


def _reference_structure(root: Path, assignment, options: SimilarityOptions, notes: list[str]) -> dict:
    """The reference's layers per variant (structural boilerplate), kept in the folder."""
    if not options.reference:
        return {}
    from grader.similarity.reference import cached_reference_tokens
    from grader.spec import load_spec

    try:
        return cached_reference_tokens(assignment if assignment is not None else load_spec(None),
                                       root / REFERENCE_CACHE)
    except Exception as exc:  # noqa: BLE001 (structure is then compared without it)
        notes.append(f"the reference's structures could not be built ({type(exc).__name__}: {exc}): its layers "
                     "count in structural similarity")
        return {}


def run_similarity(root: str | Path, options: SimilarityOptions = SimilarityOptions(), *,
                   only: set[str] | None = None, assignment=None) -> SimilarityResult:
    """Compare every pair of submissions graded under `root` (and each of them with the
    earlier terms). grader.report.similarity.write_similarity writes the page and the CSV."""
    started = time.perf_counter()
    root = Path(root)
    notes: list[str] = []
    texts: dict[str, str] = {}
    tokens: dict[str, dict[str, set[str]]] = {}
    current = _graded_folders(root, only)
    cached: dict[str, tuple[str, list]] = {}  # tokens kept beside each code/ (grading time or a previous run)
    for folder in current:
        _collect(folder, "", texts, tokens, notes, cached)
    current_ids = {f.name for f in current}
    earlier = sum(_collect_earlier(Path(d), texts, tokens, notes) for d in options.compare_with)

    def allowed(a: str, b: str) -> bool:
        return a in current_ids or b in current_ids  # never two earlier-term submissions

    boilerplate = _boilerplate(options, notes)
    documents = {k: t for k, t in texts.items() if t.strip()}
    tokenized = tokenize_all(list(documents.values()), cached)
    for folder in current:  # keep the tokens for the next run (a different threshold, more submissions)
        text = documents.get(folder.name)
        if text is not None and text_key(text) not in cached and (folder / CODE_DIR).is_dir():
            save_tokens(folder / CODE_DIR, text, tokenized[text_key(text)])
    textual = text_similarity(documents, boilerplate, floor=min(options.floor, options.threshold),
                              pairs_allowed=allowed, tokens=tokenized)
    text_pairs = textual.matches
    struct_pairs = structural_similarity(tokens, allowed, _reference_structure(root, assignment, options, notes))
    pairs: dict[tuple[str, str], Pair] = {}

    def pair(a: str, b: str) -> Pair:
        if b in current_ids and a not in current_ids:
            a, b = b, a
        elif (a in current_ids) == (b in current_ids) and b < a:
            a, b = b, a
        return pairs.setdefault((a, b), Pair(a, b, earlier=b not in current_ids))

    for (a, b), match in text_pairs.items():
        p = pair(a, b)
        p.textual, p.text = match.score, match
        if p.a != match.a:  # keep the match's sides aligned with the pair's
            p.text = TextMatch(p.a, p.b, match.score, match.fraction_b, match.fraction_a, match.tokens,
                               match.slices_b, match.slices_a)
    for a, b in struct_pairs:
        pair(a, b)
    for p in pairs.values():  # every listed pair's structure, 0 for a variant both built unalike
        per_variant = struct_pairs.get((p.a, p.b)) or struct_pairs.get((p.b, p.a)) or {}
        common = [v for v in tokens.get(p.a, {}) if v in tokens.get(p.b, {})]
        p.common_variants = len(common)
        p.variants = {v: per_variant.get(v, 0.0) for v in common}
        p.structural = round(sum(p.variants.values()) / len(common), 4) if common else None
    listed = sorted((p for p in pairs.values() if p.textual >= options.floor or (p.structural or 0) >= options.floor
                     or any(s >= options.structural_threshold for s in p.variants.values())),
                    key=lambda p: (-p.score, p.a, p.b))
    flagged = [p for p in listed if p.textual >= options.threshold
               or (p.structural or 0) >= options.structural_threshold or len(involved(p, options)) >= 2]
    for p in flagged[:options.max_shown]:  # the matching regions of the pairs shown side by side
        if p.text is not None:
            p.text = textual.with_regions(p.a, p.b)
    result = SimilarityResult(listed, flagged, groups(flagged, options), submissions=len(current), earlier=earlier,
                              notes=notes, texts=texts)
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def involved(p: Pair, options: SimilarityOptions) -> list[str]:
    """The variants whose structures are similar (at or above the structural threshold)."""
    return [v for v, s in p.variants.items() if s >= options.structural_threshold]


def groups(flagged: list[Pair], options: SimilarityOptions) -> list[dict[str, Any]]:
    """Students linked by flagged pairs (connected groups), largest first, with every variant
    whose structure links two of them."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in flagged:
        parent[find(p.a)] = find(p.b)
    members: dict[str, list[str]] = {}
    for x in list(parent):
        members.setdefault(find(x), []).append(x)
    out = []
    for group in members.values():
        inside = [p for p in flagged if p.a in group]
        variants = list(dict.fromkeys(v for p in inside for v in involved(p, options)))  # in spec order
        out.append({"members": sorted(group), "pairs": len(inside), "variants": variants,
                    "best": max(p.score for p in inside)})
    return sorted(out, key=lambda g: (-len(g["members"]), -len(g["variants"]), -g["best"]))
