"""The per-submission report: a graded record (+ its prediction grids) -> report.html and report.pdf.

`report_context` turns the typed record (grader.records.results.SubmissionResult: the one a
grade has just made, or one read back from results.json) into what the templates show
(tables, figures as data: URIs, rendered answers); `templates/report.html.j2` holds the
layout, with print CSS so that WeasyPrint makes the PDF from the same HTML. The report needs
only the record and the assignment spec, so `segrade report` can re-render without regrading.

Nothing is fetched from anywhere: figures are embedded, the CSS is inline, and the PDF
renderer is given a URL fetcher that refuses every URL (a student's Markdown cannot make
the grader load a file or call the network).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from grader.grading.architecture import format_scale
from grader.report import figures
from grader.records.files import write_atomic
from grader.records.results import STATUS_ORDER, SubmissionResult, VariantResult, band_text
from grader.records.view import package_notes, problem_text
from grader.shared.resources import templates_dir
from grader.grading.score import split_label
from grader.spec import Assignment

FAILURE_ORDER = STATUS_ORDER  # str-valued statuses, worst first
LOG_TAIL_LINES = 30


def offline_fetcher():
    """WeasyPrint's URL fetcher limited to the report's own `data:` URIs: anything else
    (a file, the network) stops the rendering, and is remembered in `.refused` for tests."""
    from weasyprint.urls import URLFetcher  # imported here: weasyprint takes a second to import

    class OfflineFetcher(URLFetcher):
        def __init__(self) -> None:
            super().__init__(allowed_protocols={"data"}, fail_on_errors=True)
            self.refused: list[str] = []

        def fetch(self, url, headers=None):
            if not url.startswith("data:"):
                self.refused.append(url)
            return super().fetch(url, headers)

    return OfflineFetcher()


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    # A student's image would be a file or a URL the report cannot (and must not) load: its alt text instead.
    md.add_render_rule("image", lambda self, tokens, idx, options, env:
                       f'<span class="missing-image">[image: {md.utils.escapeHtml(tokens[idx].content) or "no caption"}]</span>')
    return md


MARKDOWN = _markdown()


def render_markdown(text: str) -> Markup:
    html = MARKDOWN.render(text)
    # Links stay readable but inert: the report is offline.
    html = re.sub(r'<a href="[^"]*"', '<a', html)
    return Markup(html)


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(templates_dir()), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda v, digits=3: "–" if v is None else f"{v:.{digits}f}"
    env.filters["points"] = lambda v: "–" if v is None else f"{v:g}" if float(v).is_integer() else f"{v:.2f}"
    return env


def _si(value: float | None) -> str:
    if value is None:
        return "–"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:g}"


def report_context(result: SubmissionResult, samples: dict[str, np.ndarray], assignment: Assignment,
                   workers: int = 1) -> dict[str, Any]:
    """Everything the report template shows, computed from the graded record; the charts
    drawn in `workers` processes (figures.draw_all)."""
    env = result.environment
    split = env.get("evaluation_split") or "test"
    titles = {v.variant_id: v.title for v in result.variants}
    by_id = {v.variant_id: v for v in result.variants}
    charts = _charts(result.variants, by_id, titles, assignment, split, workers)
    variants = [_variant(v, samples, assignment, split, charts) for v in result.variants]
    label = miou_label(env)
    comparisons = [_comparison(c, by_id, titles, assignment, label, charts.get(("comparison", c.id)))
                   for c in assignment.comparisons]
    answers = result.answers
    discussions = [{"id": m.id, "title": m.title, "max_points": m.max_points, "prompts": list(m.prompts),
                    "answer": render_markdown(answers[m.id]["markdown"]) if m.id in answers else None,
                    "answer_source": answers.get(m.id, {}).get("source"),
                    "comparisons": [c for c in comparisons if c["discussion"] == m.id]}
                   for m in result.grade.manual]
    discussed = {c["id"] for d in discussions for c in d["comparisons"]}
    log_tail = "\n".join(result.worker_log.strip().splitlines()[-LOG_TAIL_LINES:])
    return {
        "package_notes": package_notes(env), "r": result, "env": env, "grade": result.grade, "assignment": assignment,
        "submission": result.submission,
        "summary": sorted(variants, key=lambda v: (FAILURE_ORDER.index(v["status"])
                                                   if v["status"] in FAILURE_ORDER else 0)),
        "variants": variants,
        "trained": env.get("profile") is not None,
        "miou_label": label,
        "self_check": env.get("evaluation_split") == "val",
        "discussions": discussions,
        "other_comparisons": [c for c in comparisons if c["id"] not in discussed],
        "legend": [{"name": n, "colour": "#%02x%02x%02x" % tuple(c)} for n, c in
                   zip(assignment.class_names, assignment.palette)],
        "thin": assignment.dataset.thin_classes,
        "import_errors": result.failed_imports(blocking=True),
        "other_import_errors": result.failed_imports(blocking=False),
        "comparison_caveat": comparison_caveat(assignment, env.get("profile")),
        "show_log": bool(env.get("worker_problem") or any(v["failed"] for v in variants)),
        "log_tail": log_tail,
        "policy_checks": result.checks,
    }


def _charts(variants: tuple[VariantResult, ...], by_id: dict[str, VariantResult], titles: dict[str, str],
            assignment: Assignment, split: str, workers: int) -> dict[tuple[str, str], str | None]:
    """Every chart of the report, drawn at once: {(kind, variant or comparison id): data URI}."""
    thin = assignment.dataset.thin_classes
    wanted: dict[tuple[str, str], figures.Chart] = {}
    for v in variants:
        metrics = v.metrics or {}
        wanted[("curves", v.variant_id)] = (figures.curves_chart, (v.curves or {}, metrics.get("miou"), v.band, split))
        wanted[("per_class", v.variant_id)] = (figures.per_class_chart, (
            metrics.get("per_class_iou") or {}, v.band.per_class_iou if v.band else None, thin, split))
    for comparison in assignment.comparisons:
        if not comparison.pairs:
            wanted[("comparison", comparison.id)] = (figures.comparison_chart, (
                {vid: _per_class(by_id, vid) for vid in comparison.variants}, titles, thin, split))
    return dict(zip(wanted, figures.draw_all(list(wanted.values()), workers)))


def _per_class(by_id: dict[str, VariantResult], vid: str) -> dict[str, float | None]:
    variant = by_id.get(vid)
    return ((variant.metrics if variant else None) or {}).get("per_class_iou") or {}


def _variant(v: VariantResult, samples: dict[str, np.ndarray], assignment: Assignment,
             split: str, charts: dict[tuple[str, str], str | None]) -> dict[str, Any]:
    """One variant as the template reads it: its saved fields as plain data, and what the
    report computes from them."""
    spec = next((s for s in assignment.variants if s.id == v.variant_id), None)
    family = spec.family.id if spec else None
    grid = None
    pred = samples.get(f"pred_{v.variant_id}")
    if pred is not None and family and f"images_{family}" in samples:
        grid = figures.prediction_grid(samples[f"images_{family}"], samples[f"masks_{family}"], pred,
                                       assignment.palette)
    figs = v.figures
    architecture = v.check("architecture")
    arch = figs.get("architecture") or (architecture.details.get("fingerprint") if architecture else None)
    return {
        **v.to_json(),
        "family": family,
        "failed": v.status != "passed",
        "first_problem": problem_text(v),
        "flags": v.points_detail.get("flags", []),
        "miou": v.miou,
        "band_text": band_text(v.band, "–", absent="–"),
        "architecture_rows": _architecture_rows(arch, spec.architecture if spec else {}, figs.get("backbone"),
                                                family),
        "figures_rows": _figure_rows(figs),
        "curves_chart": charts.get(("curves", v.variant_id)),
        "per_class_chart": charts.get(("per_class", v.variant_id)),
        "grid": grid,
    }


def _architecture_rows(fp: dict | None, required: dict, backbone: str | None = None,
                       family: str | None = None) -> list[dict[str, str]]:
    """The fingerprint beside what the spec requires, one property per row; the backbone
    found (by provenance: what came from a torchvision VGG) first."""
    head = [{"property": "backbone", "measured": backbone,
             "required": "VGG16 (VGG19 accepted)" if family == "fcn" else "–"}] \
        if backbone and (family == "fcn" or backbone != "none") else []
    if not fp:
        return head

    def scales(values) -> str:
        return "none" if not values else ", ".join(format_scale(s) for s in values)

    rows = [
        ("finest path to the output (bypass scale)", format_scale(fp["bypass_scale"]) if fp.get("bypass_scale") else "–",
         format_scale(required["bypass_scale"]) if "bypass_scale" in required else
         f"at most {format_scale(required['max_bypass_scale'])}" if "max_bypass_scale" in required else "–"),
        ("long skips (encoder → decoder)", scales(fp.get("long_skips")),
         "none" if required.get("no_long_skips") else scales(required["long_skips"]) if "long_skips" in required
         else "–"),
        ("residual adds", str(fp.get("residual_adds", "–")),
         f"at least {required['residual_adds_min']}" if "residual_adds_min" in required else "–"),
        ("gated attention on skips", scales(fp.get("gated_long_skips") or fp.get("gated_multiplies")),
         "every long skip" if required.get("gated_skips") else "–"),
        ("ungated attention multiplies", str(fp.get("ungated_attention", "–")), "–"),
        ("downsampling levels", str(fp.get("downsampling_levels", "–")), "–"),
        ("graph built by", _graph_method(fp), "–"),
    ]
    return head + [{"property": p, "measured": m, "required": r} for p, m, r in rows]


def _graph_method(fp: dict) -> str:
    if fp.get("method") == "export":
        return "torch.export"
    if fp.get("export_error"):
        return f"forward-pass recording ({fp['export_error']})"
    return "forward-pass recording"


def _figure_rows(figs: dict) -> list[dict[str, str]]:
    params = figs.get("parameters") or {}
    ref = figs.get("reference") or {}
    rows = [("parameters", params.get("total"), ref.get("parameters"), ref.get("parameters_ratio")),
            ("trainable parameters", params.get("trainable"), None, None),
            ("FLOPs per image", figs.get("flops"), ref.get("flops"), ref.get("flops_ratio"))]
    # No figures of this assignment's reference (another course's are never read): say so.
    unmeasured = "not measured" if not ref else "–"
    out = [{"name": n, "value": _si(v), "reference": _si(r) if r else (unmeasured if n != "trainable parameters" else "–"),
            "ratio": f"{q:.2f}×" if q else "–"} for n, v, r, q in rows if v is not None]
    if figs.get("latency_ms") is not None:
        out.append({"name": "forward latency (this machine)", "value": f"{figs['latency_ms']:.0f} ms",
                    "reference": "–", "ratio": "–"})
    return out


def comparison_caveat(assignment: Assignment, profile_id: str | None) -> str | None:
    """One line under comparisons that cannot mean anything: a profile too short to separate
    the variants (the spec says so with `separates_variants = false`)."""
    profile = assignment.profiles.get(profile_id) if profile_id else None
    if profile is None or profile.separates_variants:
        return None
    return (f"The {profile.id!r} profile is too short to separate the variants: differences here are noise, not "
            "findings (docs/training.md); the full profile separates them.")


def miou_label(env: dict[str, Any]) -> str:
    """What the final mIoU was measured on: the hidden test split, or (a student's
    self-check) the public validation split."""
    return split_label(env.get("evaluation_split") or "test")


def _comparison(comparison, by_id: dict[str, VariantResult], titles: dict[str, str], assignment: Assignment,
                label: str = "test mIoU", chart: str | None = None) -> dict[str, Any]:
    thin = assignment.dataset.thin_classes

    def miou(vid):
        return by_id[vid].miou if vid in by_id else None

    def per_class(vid):
        return _per_class(by_id, vid)

    def params(vid):
        return by_id[vid].figures.get("parameters") or {} if vid in by_id else {}

    def seconds(vid):
        return (by_id[vid].training or {}).get("train_seconds") if vid in by_id else None

    out: dict[str, Any] = {"id": comparison.id, "title": comparison.title, "discussion": comparison.discussion,
                           "pairs": [], "columns": [], "rows": [], "chart": chart}
    if comparison.pairs:
        for before, after in comparison.pairs:
            a, b = miou(before), miou(after)
            out["pairs"].append({"before": titles.get(before, before), "after": titles.get(after, after),
                                 "before_miou": a, "after_miou": b,
                                 "change": None if a is None or b is None else b - a,
                                 "before_trainable": _si(params(before).get("trainable")),
                                 "after_trainable": _si(params(after).get("trainable")),
                                 "before_seconds": seconds(before), "after_seconds": seconds(after)})
        return out
    vids = list(comparison.variants)
    out["columns"] = [titles.get(v, v) for v in vids]
    out["rows"].append({"name": label, "values": [miou(v) for v in vids], "thin": False, "summary": True})
    for name in assignment.class_names:
        out["rows"].append({"name": name, "values": [per_class(v).get(name) for v in vids], "thin": name in thin,
                            "summary": False})
    out["delta"] = len(vids) == 2
    for row in out["rows"]:
        a, b = (row["values"] + [None, None])[:2]
        row["change"] = None if not out["delta"] or a is None or b is None else b - a
    return out


def render_html(result: SubmissionResult, samples: dict[str, np.ndarray], assignment: Assignment,
                changes: dict[str, Any] | None = None, workers: int = 1) -> str:
    """`changes`: what changed since the grade this one replaced (grader.batch.changes), if any;
    `workers`: processes that draw the charts (the cores the caller has to itself)."""
    return environment().get_template("report.html.j2").render(
        **report_context(result, samples, assignment, workers), changes=changes)


def html_to_pdf(html: str, path: Path) -> Path:
    from weasyprint import HTML  # imported here: it takes a second, and only PDFs need it

    return write_atomic(path, HTML(string=html, url_fetcher=offline_fetcher(), base_url=None).write_pdf())
