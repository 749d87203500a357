"""Code similarity (grader.similarity) on fixtures of our own (tests/data/similarity/README.md):
a submission and its disguised copy rank first, two independent submissions written from the
same starter code fall below the threshold once the starter is excluded, the reference never
counts as a match; and `segrade similarity DIR` writes the page and the CSV."""

from __future__ import annotations

import copy
import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from grader.report.similarity import write_similarity
from grader.similarity import SimilarityOptions, run_similarity
from grader.similarity.code import CODE_DIR, code_of, extract_code
from grader.similarity.structural import structural_similarity, variant_tokens
from grader.similarity.textual import text_similarity
from grader.shared.resources import reference_dir
from grader.shared.structure import layers

DATA = Path(__file__).parent / "data"
FIXTURES = DATA / "similarity"
SUBMISSIONS = FIXTURES / "submissions"
STARTER = FIXTURES / "starter"


def _ids():
    return sorted(p.stem if p.is_file() else p.name for p in SUBMISSIONS.iterdir())


@pytest.fixture(scope="module")
def codes():
    return {p.stem if p.is_file() else p.name: code_of(p) for p in sorted(SUBMISSIONS.iterdir())}


def _namespace(text: str) -> dict:
    """Run a fixture's extracted code (our own, trusted) to build its models in this process."""
    text = "\n".join(line for line in text.splitlines() if "google.colab" not in line and "from helpers" not in line)
    namespace: dict = {"__name__": "fixture"}
    exec(compile(text, "fixture", "exec"), namespace)  # noqa: S102
    return namespace


def _models(sid: str, text: str) -> dict:
    """variant id -> built model, as the adapters would map these fixtures."""
    ns = _namespace(re.sub(r"from alice_seg\.\w+ import .*", "", text))
    if sid == "alice_pkg":
        unet = ns["UNet"]
    elif sid == "alice_copy":
        unet = ns["UNet"]
    if sid in ("alice_pkg", "alice_copy"):
        return {"unet": unet(), "unet_noskip": unet(use_skip_connections=False),
                "unet_attention": unet(use_gated_attention=True)}
    if sid == "bob":
        return {"unet": ns["VanillaUNet"](), "unet_noskip": ns["NoSkipUNet"]()}
    return {"unet": ns["UNet"](), "unet_noskip": ns["UNet"](skips=False),
            "unet_residual": ns["UNet"](residual=True)}


def _results(sid: str, models: dict) -> dict:
    """A results.json of the shape segrade writes, with what the worker records per variant."""
    base = json.loads((DATA / "results_small.json").read_text())
    results = copy.deepcopy(base)
    results["submission"] = {**results["submission"], "id": sid, "source": str(SUBMISSIONS / sid)}
    template = next(v for v in base["variants"] if v["variant_id"] == "unet")
    results["variants"] = []
    for vid, model in models.items():
        variant = copy.deepcopy(template)
        variant["variant_id"] = vid
        variant["figures"]["structure"] = {"layers": layers(model)}
        variant["figures"]["parameters"] = {"total": sum(p.numel() for p in model.parameters())}
        results["variants"].append(variant)
    return results


@pytest.fixture(scope="module")
def graded(tmp_path_factory, codes):
    """A folder as `segrade grade` leaves it: OUT/<id>/results.json and OUT/<id>/code/."""
    out = tmp_path_factory.mktemp("graded")
    for path in sorted(SUBMISSIONS.iterdir()):
        sid = path.stem if path.is_file() else path.name
        folder = out / sid
        extract_code(path, folder / CODE_DIR)
        (folder / "results.json").write_text(json.dumps(_results(sid, _models(sid, codes[sid]))))
    return out


def test_extracted_code_is_what_segrade_grades(tmp_path):
    """Notebooks are converted and top-level training code is left out; a package keeps its paths."""
    written = extract_code(SUBMISSIONS / "alice_copy.ipynb", tmp_path / "nb")
    assert [p.name for p in written] == ["alice_copy.py"]
    text = written[0].read_text()
    assert "class UNet(nn.Module)" in text and "drive.mount" not in text and "train_model(UNet()" not in text
    written = extract_code(SUBMISSIONS / "alice_pkg", tmp_path / "pkg")
    assert {p.relative_to(tmp_path / "pkg").as_posix() for p in written} >= {"alice_seg/model.py", "alice_seg/train.py"}


def test_disguised_copy_ranks_first_and_starter_is_excluded(codes):
    reference = code_of(reference_dir())
    with_starter = text_similarity(codes, [reference, code_of(STARTER)], floor=0.0).matches
    ranked = sorted(with_starter.values(), key=lambda m: -m.score)
    assert {ranked[0].a, ranked[0].b} == {"alice_pkg", "alice_copy"} and ranked[0].score >= 0.8
    assert all(m.score < 0.5 for m in ranked[1:]), [(m.a, m.b, m.score) for m in ranked]
    assert with_starter.get(("bob", "carol")) is None or with_starter[("bob", "carol")].score < 0.5
    # Without the starter excluded, the independent pair would be listed as similar: that is why it is.
    without = text_similarity(codes, [reference], floor=0.0).matches
    assert without[("bob", "carol")].score >= 0.5


def test_scores_are_copydetects(codes):
    """The vectorised scores equal copydetect's own compare_files, pair by pair."""
    result = text_similarity(codes, [code_of(STARTER)], floor=0.0)
    assert len(result.matches) >= 4
    for (a, b), match in result.matches.items():
        exact = result.with_regions(a, b)
        assert (match.score, match.fraction_a, match.fraction_b, match.tokens) == \
            (exact.score, exact.fraction_a, exact.fraction_b, exact.tokens)
        assert exact.slices_a and exact.slices_b


def test_reference_never_counts(codes):
    """A submission that is the reference solution matches nothing, not even another copy of it."""
    reference = code_of(reference_dir())
    texts = {"ref_a": reference, "ref_b": reference, "bob": codes["bob"]}
    matches = text_similarity(texts, [reference], floor=0.0).matches
    assert all(m.score == 0 for m in matches.values())


def test_structure_catches_renamed_copy(codes):
    tokens = {sid: {vid: variant_tokens({"structure": {"layers": layers(m)}})
                    for vid, m in _models(sid, codes[sid]).items()} for sid in _ids()}
    # Identifiers differ between alice_pkg and alice_copy, the layers are the same.
    assert tokens["alice_pkg"]["unet"] == tokens["alice_copy"]["unet"]
    scores = structural_similarity(tokens)
    copy_pair = scores[("alice_copy", "alice_pkg")]
    assert set(copy_pair) == {"unet", "unet_noskip", "unet_attention"} and min(copy_pair.values()) >= 0.9
    others = [s for pair, per in scores.items() if pair != ("alice_copy", "alice_pkg") for s in per.values()]
    assert max(others) < 0.3


@pytest.mark.slow
def test_reference_structure_never_counts(codes):
    """Two students whose models are the reference's: no structural match (its layers weigh nothing)."""
    from grader.similarity.reference import reference_tokens
    from grader.spec import load_spec

    reference = reference_tokens(load_spec(None))
    assert {"unet", "unet_attention", "fcn8s_frozen"} <= set(reference)
    tokens = {sid: {vid: variant_tokens({"structure": {"layers": layers(m)}})
                    for vid, m in _models(sid, codes[sid]).items()} for sid in ("alice_pkg", "bob", "carol")}
    tokens["ref_a"] = tokens["ref_b"] = {"unet": set(reference["unet"])}
    with_reference = structural_similarity(tokens, boilerplate=reference)
    assert with_reference.get(("ref_a", "ref_b"), {}).get("unet", 0.0) == 0.0
    # Without it they would match: 0.50 (0.55 when the layers also listed activations, pooling and
    # each layer's settings, before the verifier read them from the program).
    assert structural_similarity(tokens)[("ref_a", "ref_b")]["unet"] >= 0.45


@pytest.mark.slow
def test_similarity_page_and_csv(graded):
    options = SimilarityOptions(starter=(STARTER,))
    result = write_similarity(graded, run_similarity(graded, options), options)
    assert [(p.a, p.b) for p in result.flagged] == [("alice_copy", "alice_pkg")]
    top = result.flagged[0]
    assert top.textual >= 0.8 and top.structural >= 0.9
    assert result.groups[0]["members"] == ["alice_copy", "alice_pkg"]
    assert result.groups[0]["variants"] == ["unet", "unet_noskip", "unet_attention"]  # spec order
    rows = list(csv.DictReader((graded / "similarity.csv").open()))
    assert list(rows[0])[:6] == ["pair", "submission_a", "submission_b", "textual", "structural", "variants"]
    assert rows[0]["pair"] == "alice_copy ~ alice_pkg" and rows[0]["variants"] == "unet;unet_noskip;unet_attention"
    assert all(float(r["textual"]) < 0.5 and r["flagged"] == "no" for r in rows[1:])
    html = (graded / "similarity.html").read_text()
    assert "evidence for a person to weigh, not a verdict" in html
    assert html.count('<mark class="match">') > 5 and "class UNet" in html and "class Decoder" in html
    assert "http://" not in html and "https://" not in html  # nothing loaded from anywhere


def test_earlier_terms(graded, tmp_path):
    """--compare-with: a current submission copied from an earlier term's; the earlier term's
    own pairs are not compared."""
    current = tmp_path / "current"
    shutil.copytree(graded / "bob", current / "bob_now")
    shutil.copytree(graded / "carol", current / "carol")
    result = run_similarity(current, SimilarityOptions(starter=(STARTER,), compare_with=(graded,)))
    pairs = {(p.a, p.b): p for p in result.flagged}
    assert pairs[("bob_now", f"{graded.name}/bob")].earlier
    assert all(p.a in ("bob_now", "carol") for p in result.pairs)
    # An earlier term kept as plain submissions (not graded): compared textually.
    raw = run_similarity(current, SimilarityOptions(starter=(STARTER,), compare_with=(SUBMISSIONS,)))
    match = {(p.a, p.b): p for p in raw.flagged}[("bob_now", "submissions/bob")]
    assert match.textual == 1.0 and match.structural is None


def test_similarity_command(graded, tmp_path):
    """The user's command on a graded folder: the page, the CSV, the summary's link."""
    from grader.cli import main

    folder = tmp_path / "out"
    shutil.copytree(graded, folder)
    assert main(["similarity", str(folder), "--starter", str(STARTER)]) == 0
    assert (folder / "similarity.csv").is_file()
    assert 'href="similarity.html"' in (folder / "summary.html").read_text()
    assert main(["similarity", str(tmp_path / "nothing")]) == 2
