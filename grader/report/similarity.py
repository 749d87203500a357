"""similarity.html and similarity.csv, from a SimilarityResult (grader.similarity.run)."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from pathlib import Path

from grader import __version__
from grader.records.files import write_atomic
from grader.similarity.textual import highlight

CSV_COLUMNS = ("pair", "submission_a", "submission_b", "textual", "structural", "variants", "textual_a",
               "textual_b", "variants_compared", "earlier_term", "flagged")


def write_similarity(root: Path, result, options, assignment=None):
    """root/similarity.csv and root/similarity.html for a SimilarityResult; their paths are
    kept on the result."""
    from grader.similarity.run import CSV, PAGE

    result.csv = write_csv(Path(root) / CSV, result, options)
    result.page = write_page(Path(root) / PAGE, result, options, assignment)
    return result


def write_csv(path: Path, result, options) -> Path:
    """One row per listed pair, best first: `pair` ("a ~ b"), the two ids, `textual` and
    `structural` scores (0-1), `variants` (the variants whose structures are similar, `;`
    separated), then each side's copied share, how many variants both built, whether b is
    from an earlier term, and whether the pair is above a threshold."""

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    flagged = {(p.a, p.b) for p in result.flagged}
    for p in result.pairs:
        text = p.text
        writer.writerow([f"{p.a} ~ {p.b}", p.a, p.b, f"{p.textual:.4f}",
                         "" if p.structural is None else f"{p.structural:.4f}",
                         ";".join([v for v, score in p.variants.items() if score >= options.structural_threshold]), f"{text.fraction_a:.4f}" if text else "",
                         f"{text.fraction_b:.4f}" if text else "", p.common_variants, "yes" if p.earlier else "no",
                         "yes" if (p.a, p.b) in flagged else "no"])
    return write_atomic(path, buffer.getvalue())


def write_page(path: Path, result, options, assignment=None) -> Path:
    from grader.report.html import environment

    shown = []
    for rank, p in enumerate(result.flagged, 1):
        item = {"rank": rank, "a": p.a, "b": p.b, "textual": p.textual, "structural": p.structural,
                "variants": [v for v, score in p.variants.items() if score >= options.structural_threshold], "per_variant": p.variants, "earlier": p.earlier,
                "fraction_a": p.text.fraction_a if p.text else None,
                "fraction_b": p.text.fraction_b if p.text else None,
                "code_a": None, "code_b": None}
        if p.text and rank <= options.max_shown:
            item["code_a"] = highlight(result.texts.get(p.a, ""), p.text.slices_a, "match")
            item["code_b"] = highlight(result.texts.get(p.b, ""), p.text.slices_b, "match")
        shown.append(item)
    html = environment().get_template("similarity.html.j2").render(
        title=assignment.title if assignment is not None else "", segrade_version=__version__,
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"), pairs=shown, groups=result.groups,
        listed=len(result.pairs), submissions=result.submissions, earlier=result.earlier, notes=result.notes,
        threshold=options.threshold, structural_threshold=options.structural_threshold, floor=options.floor,
        starter=[str(s) for s in options.starter], compare_with=[str(c) for c in options.compare_with],
        max_shown=options.max_shown)
    return write_atomic(path, html)
