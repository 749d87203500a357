"""The student's answers to the discussion prompts, found in the submission's own text.

Students answer in an `answers.md`, a README section, or Markdown cells of their
notebook, under headings of their own wording ("## FCN discussion", "### U-Net without
skip connections", "Attention U-Net: analysis"). `find_answers` reads those files (text
only, in the grading process; nothing is executed), splits them at their headings, and
gives each manual rubric item the section whose heading names it best:

- words from the item's id and title count 2 when no other manual item has them, 1 when
  some do, 0 when all do ("discussion"); words from the item's prompts count half that;
- "U-Net" reads as "unet", "no-skip"/"without skips" as "noskip", plurals as singulars;
- a heading must score at least 2, and better than for any other item, to be taken, and
  one of its words must come from the item's id or title: prompt words alone do not name an
  item ("## Results (test mIoU)" shares "test mIoU" with a prompt, and is not a discussion);
  a section includes its sub-sections (unless one of them answers another item: then the
  section is only a container) (so "## FCN" with "### Q1", "### Q2" is one answer);
- in a file meant for answers (`answers.md`, `discussion.md`, `report.md`...) any heading
  may name an item; elsewhere (a README, notebook cells, which also document code) the
  heading must say it is an answer ("discussion", "question", "Q2", "analysis"...; not
  "results", which there is a table of numbers far more often),
  and the words of the headings above it count too ("# FCN" > "## Discussion");
- a paragraph opening with a bold phrase under a heading ("## Discussion", then "**U-Net
  without skip connections.** ...") is a sub-section of its own, until the next one; under an
  answer heading it needs no answer word itself.

An item no heading names gets no answer: the report says "no answer found" and the human
grader looks at the submission. Answers are kept as Markdown (rendered, with raw HTML
disabled, by the report).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from grader.spec import RubricItem

MAX_TEXT_BYTES = 2_000_000       # an answers file or notebook larger than this is not read
MAX_NOTEBOOK_BYTES = 50_000_000
MAX_ANSWER_CHARS = 20_000        # per item; the rest is cut with a note
MIN_SCORE = 2.0
STOPWORDS = frozenset("a an and are as at be by do does for from how in is it of on one or the to what which "
                      "why with your you this that these those per".split())
TEXT_NAMES = re.compile(r"(answer|discussion|report|readme|question|writeup|write-up|results)", re.I)
ANSWER_FILES = re.compile(r"(answer|discussion|report|question|writeup|write-up)", re.I)
# Not "results": in a README or a notebook that heading is a table of numbers far more often
# than a discussion (alice's and erin's both are).
ANSWER_WORDS = re.compile(r"^(discussion|discus|question|answer|q\d*|analysi|observation|comparison|compare|"
                          r"reflection|conclusion|finding)$")


@dataclass(frozen=True)
class Section:
    source: str      # "answers.md", "hw3.ipynb (Markdown cells)"
    heading: str
    context: str     # the headings above it, for headings like "Discussion" under "# FCN"
    answers_file: bool  # a file meant for answers: any heading may name an item
    level: int
    start: int       # index of the heading line in the document's lines
    end: int         # first line after the section and its sub-sections
    text: str        # the section's Markdown, heading included


def find_answers(root: Path, items: tuple[RubricItem, ...]) -> dict[str, dict[str, str]]:
    """item id -> {"source": where it was found, "markdown": the answer} for the manual items
    with prompts that some heading in the submission names."""
    items = tuple(item for item in items if item.manual)
    if not items:
        return {}
    weights = _keyword_weights(items)
    # The words that name an item: its id's and title's, where they tell it from the others.
    naming = {item.id: {w for w in _name_words(item) if weights[item.id][w]} for item in items}
    sections = [s for doc in _documents(root) for s in _sections(*doc)]
    best: dict[str, list[tuple[float, Section]]] = {}
    for section in sections:
        if not section.answers_file and not any(ANSWER_WORDS.match(w) for w in _words(section.heading)) \
                and not (section.level == BOLD_LEVEL and any(ANSWER_WORDS.match(w) for w in _words(section.context))):
            continue
        heading = f"{section.context} {section.heading}"
        scores = sorted(((_score(heading, weights[item.id]), item.id) for item in items), reverse=True)
        (top, item_id), runner_up = scores[0], scores[1][0] if len(scores) > 1 else 0.0
        if top >= MIN_SCORE and top > runner_up and naming[item_id] & set(_words(heading)):
            best.setdefault(item_id, []).append((top, section))
    # A section holding another item's answer is a container ("## Discussion" over bold-led
    # answers to three prompts), not this item's answer: its own sub-sections are.
    matched = [(item_id, section) for item_id, found in best.items() for _, section in found]
    best = {item_id: [(score, section) for score, section in found
                      if not any(other != item_id and inner.source == section.source
                                 and section.start < inner.start < section.end for other, inner in matched)]
            for item_id, found in best.items()}
    answers = {}
    for item_id, found in best.items():
        if not found:
            continue
        taken: list[Section] = []
        for _, section in sorted(found, key=lambda f: (f[1].source, f[1].start)):
            if not any(t.source == section.source and t.start <= section.start < t.end for t in taken):
                taken.append(section)  # a sub-section of a section already taken is in it
        text = "\n\n".join(s.text.strip() for s in taken)
        if len(text) > MAX_ANSWER_CHARS:
            text = text[:MAX_ANSWER_CHARS] + f"\n\n*(cut by segrade at {MAX_ANSWER_CHARS} characters)*"
        answers[item_id] = {"source": "; ".join(dict.fromkeys(f"{s.source} § {s.heading}" for s in taken)),
                            "markdown": text}
    return answers


def _words(text: str) -> list[str]:
    text = text.lower().replace("u-net", "unet").replace("u net", "unet")
    text = re.sub(r"\b(no[-_ ]?skips?|without (the )?skips?|w/o skips?)\b", " noskip ", text)
    words = re.findall(r"[a-z0-9]+", text.replace("_", " "))
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
            for w in words if w not in STOPWORDS]


def _name_words(item: RubricItem) -> set[str]:
    return set(_words(item.id)) | set(_words(item.title))


def _keyword_weights(items: tuple[RubricItem, ...]) -> dict[str, dict[str, float]]:
    named = {item.id: _name_words(item) for item in items}
    prompted = {item.id: set(_words(" ".join(item.prompts))) - named[item.id] for item in items}

    def weight(word: str) -> float:
        having = sum(word in words for words in named.values())
        return 0.0 if having == len(items) and len(items) > 1 else 2.0 if having <= 1 else 1.0

    return {item.id: {w: weight(w) for w in named[item.id]} | {w: weight(w) / 2 for w in prompted[item.id]}
            for item in items}


def _score(heading: str, weights: dict[str, float]) -> float:
    return sum(weights.get(word, 0.0) for word in set(_words(heading)))


def _documents(root: Path) -> list[tuple[str, str]]:
    """(source, Markdown text) of the submission's Markdown files and notebooks."""
    docs = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink() or any(part.startswith(".") for part in path.parts[len(root.parts):]):
            continue
        rel = path.relative_to(root).as_posix()
        suffix = path.suffix.lower()
        if suffix in (".md", ".markdown", ".txt") and (suffix != ".txt" or TEXT_NAMES.search(path.stem)):
            if path.stat().st_size <= MAX_TEXT_BYTES:
                docs.append((rel, path.read_text(errors="replace")))
        elif suffix == ".ipynb" and path.stat().st_size <= MAX_NOTEBOOK_BYTES:
            cells = _markdown_cells(path)
            if cells:
                docs.append((f"{rel} (Markdown cells)", "\n\n".join(cells)))
    return docs


def _markdown_cells(path: Path) -> list[str]:
    try:
        notebook = json.loads(path.read_text(errors="replace"))
    except ValueError:
        return []
    cells = notebook.get("cells", []) if isinstance(notebook, dict) else []
    out = []
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            out.append("".join(source) if isinstance(source, list) else str(source))
    return out


HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")
# A paragraph that opens with a bold phrase ("**U-Net without skip connections.** Without
# skips..."): students answer several prompts under one "## Discussion" this way. Inside a
# section it reads as a heading one level below everything else.
BOLD_LEAD = re.compile(r"^ {0,3}(\*\*|__)(?P<title>[^*_]{3,120}?)\1")
BOLD_LEVEL = 7


def _sections(source: str, text: str) -> list[Section]:
    lines = text.splitlines()
    heads, fenced = [], False
    for i, line in enumerate(lines):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := HEADING.match(line)):
            heads.append((i, len(m.group(1)), re.sub(r"[*_`]", "", m.group(2)).strip()))
        elif not fenced and heads and (i == 0 or not lines[i - 1].strip()) and (m := BOLD_LEAD.match(line)):
            heads.append((i, BOLD_LEVEL, m.group("title").strip(" .:")))
    answers_file = bool(ANSWER_FILES.search(PurePosixPath(source.split(" (")[0]).stem))
    sections, above = [], []   # above: (level, heading) of the enclosing headings
    for n, (start, level, heading) in enumerate(heads):
        end = next((s for s, lvl, _ in heads[n + 1:] if lvl <= level), len(lines))
        above = [(lvl, h) for lvl, h in above if lvl < level]
        sections.append(Section(source, heading, " ".join(h for _, h in above), answers_file, level, start, end,
                                "\n".join(lines[start:end])))
        above.append((level, heading))
    return sections
