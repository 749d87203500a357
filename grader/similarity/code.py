"""The code segrade extracted from a submission, kept for similarity: OUT/<id>/code/.

`segrade grade` writes it at grading time (grader.batch.grade), from the same preparation the
worker imports (grader.submission.formats.prepare_submission: notebooks converted to .py, the top-level
filter applied, tooling folders left out), keeping only the .py files. Nothing here imports
or runs student code.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

CODE_DIR = "code"
MAX_FILE_BYTES = 2 * 1024**2  # a generated or vendored file this large is not the student's code


def extract_code(source: str | Path, dest: str | Path) -> list[Path]:
    """Prepare `source` (a folder, .zip, .py or .ipynb) as the grader does and copy its .py
    files into `dest` (created; relative paths kept). Returns the files written. Raises
    grader.submission.load.SubmissionError when the submission cannot be read."""
    from grader.submission.formats import prepare_submission

    with tempfile.TemporaryDirectory(prefix="segrade-code-") as tmp:
        return copy_code(prepare_submission(Path(source), Path(tmp) / "prepared").root, dest)


def copy_code(root: str | Path, dest: str | Path) -> list[Path]:
    """Copy the .py files of a prepared submission (`root`: grader.submission.formats'
    importable copy) into `dest`, relative paths kept; symlinks and oversize files left out."""
    root, dest = Path(root), Path(dest)
    written = []
    for path in sorted(root.rglob("*.py")):
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_FILE_BYTES:
            continue
        target = dest / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(target)
    return written


def read_code(folder: str | Path) -> str:
    """One document of a code folder: its .py files in path order, each after a comment line
    naming it (comments do not count as tokens). Empty when the folder holds no code."""
    folder = Path(folder)
    parts = []
    for path in sorted(folder.rglob("*.py")) if folder.is_dir() else []:
        if path.is_symlink() or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            parts.append(f"# ==== {path.relative_to(folder).as_posix()} ====\n{text.rstrip()}\n")
    return "\n".join(parts)


def code_of(source: str | Path) -> str:
    """The extracted code of a submission on disk (a raw submission, not a graded folder)."""
    with tempfile.TemporaryDirectory(prefix="segrade-code-") as tmp:
        extract_code(source, Path(tmp) / CODE_DIR)
        return read_code(Path(tmp) / CODE_DIR)


def load_tokens(code_dir: Path, text: str) -> tuple[str, list] | None:
    """The tokens kept beside the code (code/.segrade-tokens.json), if they are of this text."""
    import json

    from grader.similarity.textual import TOKENS_FILE, text_key

    try:
        data = json.loads((Path(code_dir) / TOKENS_FILE).read_text())
        if data.get("sha256") == text_key(text):
            return data["filtered"], data["offsets"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def save_tokens(code_dir: Path, text: str, tokens: tuple[str, list]) -> None:
    import json

    from grader.similarity.textual import TOKENS_FILE, text_key

    try:
        (Path(code_dir) / TOKENS_FILE).write_text(json.dumps({"sha256": text_key(text), "filtered": tokens[0],
                                                               "offsets": tokens[1]}))
    except OSError:
        pass  # a cache: the next run tokenises again


def cache_tokens(code_dir: Path) -> None:
    """Tokenise a submission's extracted code once, at grading time (the job's process), so
    the class's similarity only compares."""
    from grader.similarity.textual import tokenize

    text = read_code(code_dir)
    if text.strip():
        save_tokens(code_dir, text, tokenize(text))
