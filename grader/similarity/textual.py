"""Textual similarity: winnowing over normalised tokens (copydetect), pair by pair.

Each submission is one document (grader.similarity.code.read_code). copydetect tokenises it
with pygments and replaces identifiers, function names and strings by placeholders, so
renaming variables, changing comments and docstrings, reformatting or reordering functions
leaves its fingerprints (hashes of k-character windows of that normalised text, winnowed)
the same. Fingerprints of the boilerplate (the reference solution, the starter code) are
removed first, so code every student was given never counts.

A pair's score is the larger of the two fractions "tokens of this submission found in the
other" (copydetect's own measure): a short submission copied whole into a longer one scores
1. All pairs are screened at once by counting shared fingerprints (a matrix product), and
copydetect's exact comparison, which also gives the matching regions, runs only for the pairs
that can reach the reporting floor.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

NOISE_T = 25       # copydetect's default: the shortest match (normalised characters) that counts
GUARANTEE_T = 30   # a match this long is always found (winnowing window = GUARANTEE_T - NOISE_T + 1)
CHUNK = 8192       # fingerprints per slice of the screening product


@dataclass
class TextMatch:
    a: str
    b: str
    score: float        # max(fraction_a, fraction_b)
    fraction_a: float   # share of a's tokens found in b
    fraction_b: float
    tokens: int         # overlapping tokens
    slices_a: list[tuple[int, int]]   # matching regions, as character ranges of the raw text
    slices_b: list[tuple[int, int]]


TOKENS_FILE = ".segrade-tokens.json"  # in OUT/<id>/code/: the normalised text, keyed by the code's sha256
PARALLEL_MIN = 24                     # documents to tokenise before a pool of processes pays off


class Fingerprint:
    """What copydetect's compare_files reads of a CodeFingerprint, built from text that was
    already tokenised (tokenising with pygments is most of the work, so it is done once per
    code, in parallel, and kept beside the code)."""

    def __init__(self, raw: str, filtered: str, offsets: np.ndarray, boilerplate=None,
                 window: int = GUARANTEE_T - NOISE_T + 1) -> None:
        from copydetect.utils import get_token_coverage, winnow

        self.filename = "submission.py"
        self.raw_code, self.filtered_code, self.offsets, self.k = raw, filtered, offsets, NOISE_T
        # copydetect's get_document_fingerprints, with a hash that is the same in every process
        # (Python's str hash is salted per process: the scores would move from run to run).
        hashes, positions = winnow(kgram_hashes(filtered, NOISE_T), window, remove_duplicates=False)
        if boilerplate is not None and len(boilerplate):
            keep = ~np.isin(hashes, boilerplate)
            hashes, positions = hashes[keep], positions[keep]
        self.hash_idx: dict[int, list[int]] = {}
        for h, i in zip(hashes.tolist(), positions.tolist()):
            self.hash_idx.setdefault(h, []).append(i)
        self.hashes = set(self.hash_idx)
        self.token_coverage = get_token_coverage(self.hash_idx, NOISE_T, len(filtered))


def kgram_hashes(text: str, k: int) -> np.ndarray:
    """A polynomial hash (mod 2**64) of every k-character window of `text`, deterministic."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = len(codes) - k + 1
    if n <= 0:
        return np.array([], dtype=np.int64)
    hashes = np.zeros(n, dtype=np.uint64)
    base = np.uint64(1_000_003)
    with np.errstate(over="ignore"):
        for j in range(k):
            hashes = hashes * base + codes[j:j + n]
    return hashes.view(np.int64)


def tokenize(text: str) -> tuple[str, list]:
    """copydetect's normalisation of Python code: identifiers -> V, functions -> F, classes ->
    O, strings -> S, comments and spaces dropped; with the offsets that map it back to the text."""
    from copydetect.utils import filter_code

    filtered, offsets = filter_code(text, "submission.py", "python")
    return filtered, np.asarray(offsets).tolist()


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def tokenize_all(texts: list[str], cache: dict[str, tuple[str, list]] | None = None) -> dict[str, tuple[str, list]]:
    """Tokens of every text, keyed by text_key: from `cache` when there, else computed, in a
    pool of processes when there are many."""
    from grader.shared.processes import cpu_cores

    cache = dict(cache or {})
    missing = list({text_key(t): t for t in texts if text_key(t) not in cache}.items())
    workers = min(cpu_cores(), 8)
    if len(missing) >= PARALLEL_MIN and workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                done = pool.map(tokenize, [t for _, t in missing], chunksize=max(1, len(missing) // (4 * workers)))
                cache.update(zip((k for k, _ in missing), done))
        except Exception:  # noqa: BLE001 (no pool here, e.g. a main module spawn cannot re-import: one process)
            pass
    cache.update((k, tokenize(t)) for k, t in missing if k not in cache)
    return cache


def _fingerprint(text: str, boilerplate=None, window: int | None = None, tokens=None) -> Fingerprint:
    filtered, offsets = tokens if tokens is not None else tokenize(text)
    return Fingerprint(text, filtered, np.asarray(offsets, dtype=np.int64).reshape(-1, 2) if len(offsets) else
                       np.array([]), boilerplate, GUARANTEE_T - NOISE_T + 1 if window is None else window)


def boilerplate_hashes(texts: list[str]) -> np.ndarray:
    """Every k-gram hash of the boilerplate documents (not winnowed: all of them are removed)."""
    hashes = [np.asarray(list(_fingerprint(t, window=1).hashes), dtype=np.int64) for t in texts if t.strip()]
    return np.unique(np.concatenate(hashes)) if hashes else np.array([], dtype=np.int64)


def fingerprints(texts: dict[str, str], boilerplate: np.ndarray,
                 tokens: dict[str, tuple[str, list]] | None = None) -> dict[str, Fingerprint]:
    """The fingerprint of each document, boilerplate removed (`tokens`: tokenize_all's)."""
    tokens = tokenize_all(list(texts.values()), tokens)
    return {key: _fingerprint(text, boilerplate, tokens=tokens[text_key(text)]) for key, text in texts.items()}


def screen(prints: dict[str, object], pairs_allowed) -> dict[tuple[str, str], float]:
    """For every allowed pair (a, b), the share of the smaller fingerprint set found in the
    other: an upper estimate of the pair's score, computed for all pairs at once."""
    keys = list(prints)
    index: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        for h in prints[key].hashes:
            index.setdefault(h, []).append(i)
    shared_columns = [docs for docs in index.values() if len(docs) > 1]
    out: dict[tuple[str, str], float] = {}
    if not shared_columns:
        return out
    overlap = np.zeros((len(keys), len(keys)), dtype=np.float32)
    for start in range(0, len(shared_columns), CHUNK):  # in slices: memory stays N x CHUNK
        chunk = shared_columns[start:start + CHUNK]
        matrix = np.zeros((len(keys), len(chunk)), dtype=np.float32)
        for column, docs in enumerate(chunk):
            matrix[docs, column] = 1.0
        overlap += matrix @ matrix.T
    sizes = np.array([max(1, len(prints[k].hashes)) for k in keys], dtype=np.float32)
    share = overlap / np.minimum.outer(sizes, sizes)
    rows, columns = np.nonzero(np.triu(share, 1) > 0)
    for i, j in zip(rows.tolist(), columns.tolist()):
        if pairs_allowed(keys[i], keys[j]):
            out[(keys[i], keys[j])] = float(share[i, j])
    return out


class _Index:
    """Every document's winnowed occurrences as small integer ids, so that "which of A's
    occurrences have a hash B also has" is one lookup in a boolean table (no sorting per pair)."""

    def __init__(self, prints: dict[str, Fingerprint]) -> None:
        ids: dict[int, int] = {}
        self.occurrences: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for key, fp in prints.items():
            hashes = [ids.setdefault(h, len(ids)) for h, positions in fp.hash_idx.items() for _ in positions]
            occurrence_ids = np.asarray(hashes, dtype=np.int64)
            positions = np.fromiter((i for p in fp.hash_idx.values() for i in p), dtype=np.int64,
                                    count=len(occurrence_ids))
            self.occurrences[key] = (occurrence_ids, positions, np.unique(occurrence_ids))
        self.mark = np.zeros(len(ids) + 1, dtype=bool)

    def matched(self, a: str, b: str) -> np.ndarray:
        """Positions in a's text whose fingerprint b has too."""
        ids_a, positions_a, _ = self.occurrences[a]
        distinct_b = self.occurrences[b][2]
        self.mark[distinct_b] = True
        try:
            return positions_a[self.mark[ids_a]]
        finally:
            self.mark[distinct_b] = False


def _share(fp: Fingerprint, matched: np.ndarray) -> tuple[float, int]:
    """copydetect's similarity of `fp` to the other document (tokens of fp inside matching
    slices / fp's token coverage) and the overlapping tokens; the same figures as compare_files."""
    from copydetect.utils import get_copied_slices

    if not len(matched) or not len(fp.filtered_code):
        return 0.0, 0
    slices = get_copied_slices(matched, fp.k)
    tokens = int(np.sum(slices[1] - slices[0]))
    return tokens / fp.token_coverage, tokens


def score(prints: dict[str, Fingerprint], a: str, b: str, index: _Index | None = None) -> TextMatch:
    """A pair's scores (no matching regions: `compare` adds them for the pairs shown)."""
    index = index or _Index({a: prints[a], b: prints[b]})
    fa, tokens = _share(prints[a], index.matched(a, b))
    fb, _ = _share(prints[b], index.matched(b, a))
    return TextMatch(a, b, round(float(max(fa, fb)), 4), round(float(fa), 4), round(float(fb), 4), tokens, [], [])


def compare(prints: dict[str, Fingerprint], a: str, b: str) -> TextMatch:
    """copydetect's own comparison of two documents, with the matching regions."""
    from copydetect.detector import compare_files

    tokens, (fa, fb), (slices_a, slices_b) = compare_files(prints[a], prints[b])
    pairs = lambda s: [(int(x), int(y)) for x, y in zip(*s)] if len(s) and len(s[0]) else []  # noqa: E731
    return TextMatch(a, b, round(float(max(fa, fb)), 4), round(float(fa), 4), round(float(fb), 4), int(tokens),
                     pairs(slices_a), pairs(slices_b))


@dataclass
class TextSimilarity:
    matches: dict[tuple[str, str], TextMatch]
    prints: dict[str, Fingerprint]

    def with_regions(self, a: str, b: str) -> TextMatch:
        """The pair's match with its matching regions (for the side-by-side view)."""
        return compare(self.prints, a, b)


def text_similarity(texts: dict[str, str], boilerplate_texts: list[str], *, floor: float,
                    pairs_allowed=lambda a, b: True, tokens: dict | None = None) -> TextSimilarity:
    """Scores for every allowed pair that can score at least `floor` (pairs screened out score
    below it; they are not listed). `tokens`: already tokenised texts (tokenize_all)."""
    prints = fingerprints(texts, boilerplate_hashes(boilerplate_texts), tokens)
    out = {}
    index = _Index(prints)
    for (a, b), estimate in screen(prints, pairs_allowed).items():
        if estimate >= floor / 2:
            match = score(prints, a, b, index)
            if match.score > 0:
                out[(a, b)] = match
    return TextSimilarity(out, prints)


def highlight(text: str, slices: list[tuple[int, int]], css_class: str) -> str:
    """The raw text as escaped HTML, the matching regions in <mark class=...>."""
    from html import escape

    parts, at = [], 0
    for start, end in sorted(slices):
        start = max(start, at)
        if end <= start:
            continue
        parts += [escape(text[at:start]), f'<mark class="{css_class}">', escape(text[start:end]), "</mark>"]
        at = end
    parts.append(escape(text[at:]))
    return "".join(parts)
