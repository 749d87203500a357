"""The load step, grading-process side: fingerprint what was handed in and prepare an
importable copy of it (grader.submission.formats). Nothing here imports or runs student code;
that happens only in the worker (grader.worker), started by grader.grading.sandbox."""

from __future__ import annotations

import hashlib
from pathlib import Path

from grader.shared.errors import SubmissionError  # noqa: F401  (re-exported)
from grader.shared.manifest import MANIFEST_NAME
from grader.records.results import Submission


def load_submission(path: str | Path, workdir: Path, submission_id: str | None = None,
                    sha256: str | None = None) -> Submission:
    """Prepare `path` (a folder, .zip, .py or .ipynb) in `workdir`, which the caller owns.
    `sha256`: its fingerprint when the caller has it already (a batch hashes each submission
    once, to plan)."""
    from grader.submission.formats import prepare_submission

    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path}: no such file or folder")
    prepared = prepare_submission(path, workdir / "prepared")
    if not prepared.modules:
        raise SubmissionError(f"{path}: no Python code found (looked for .py files and .ipynb notebooks)")
    return Submission(
        id=submission_id or default_id(path),
        source=path.resolve(),
        sha256=sha256 or fingerprint(path),
        root=prepared.root,
        modules=tuple({"path": m.path, "name": m.name, **({"root": m.root} if m.root != "." else {})}
                      for m in prepared.modules),
        sys_path=tuple(prepared.sys_path),
        skipped=dict(prepared.skipped),
        notes=tuple(prepared.notes),
        freezes=prepared.freezes,
    )


def default_id(path: Path) -> str:
    """A submission's id when none is given: its file's stem or its folder's name."""
    return path.stem if path.is_file() else path.resolve().name


def read_manifest(submission: Submission, instructor_manifest: str | Path | None = None,
                  known_ids: list[str] | None = None) -> dict | None:
    """The manifest that pins how to build each variant: the instructor's file for this
    submission wins over the submission's own segrade.toml."""
    from grader.shared.manifest import ManifestError, check_manifest_ids, parse_manifest

    path = Path(instructor_manifest) if instructor_manifest else submission.root / MANIFEST_NAME
    if not path.is_file():
        if instructor_manifest:
            raise SubmissionError(f"manifest {path} not found")
        return None
    try:
        manifest = parse_manifest(path.read_text(encoding="utf-8"), origin=str(instructor_manifest or MANIFEST_NAME))
        if known_ids is not None:
            check_manifest_ids(manifest, known_ids)
        return manifest
    except (ManifestError, UnicodeDecodeError) as exc:
        raise SubmissionError(str(exc)) from None


def fingerprint(path: Path) -> str:
    """sha256 over file names and contents; symlinks are not followed."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    for file in files:
        digest.update(file.relative_to(path if path.is_dir() else path.parent).as_posix().encode() + b"\0")
        with open(file, "rb") as f:  # in chunks: checkpoints can be large
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()


WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


def find_checkpoints(submission: Submission, variant_ids: list[str], manifest: dict | None) -> dict[str, str]:
    """Trained weights per variant for checkpoint mode (`--weights`), as paths relative to
    the submission: the manifest's `weights = "..."`, else a file named after the variant
    id (`weights/unet.pt`, `unet_attention.safetensors`...), shallowest first."""
    found: dict[str, str] = {}
    files = sorted((p for p in submission.root.rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file()
                    and not p.is_symlink()), key=lambda p: (len(p.parts), str(p)))
    for vid in variant_ids:
        pinned = ((manifest or {}).get(vid) or {}).get("weights")
        if pinned:
            if not (submission.root / pinned).is_file():
                raise SubmissionError(f"the manifest names weights {pinned!r} for {vid}, but no such file is in "
                                      "the submission")
            found[vid] = pinned
            continue
        match = next((p for p in files if p.stem == vid), None)
        if match is not None:
            found[vid] = str(match.relative_to(submission.root))
    return found
