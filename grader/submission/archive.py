"""Folders and zips: copying a submission's files into the staging folder without following
links, within the size limits, and unzipping with every entry checked before anything is written
(paths, encryption, bombs, real sizes read in chunks). See `formats` for what each step keeps.
"""

from __future__ import annotations

import os
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from grader.shared.errors import SubmissionError
from grader.submission.staging import (
    CHUNK,
    DRIVE,
    MAX_CHECKPOINT_TOTAL,
    MB,
    Staging,
    is_checkpoint,
    size_limit,
    skip_dir_reason,
    skip_file,
    some,
)

_RATIO_MIN_BYTES = 1 * MB  # small files of repeated text legitimately compress better than 200:1
_MAX_DEPTH = 64  # folder nesting


# --------------------------------------------------------------------------- folders


def from_folder(source: Path, st: Staging) -> str:
    files, links, skipped_dirs, special = [], [], [], []

    def walk(folder: Path, rel: PurePosixPath) -> None:
        if len(rel.parts) > _MAX_DEPTH:
            raise SubmissionError(f"{source}: folders nested more than {_MAX_DEPTH} deep ({rel.as_posix()[:200]}...)")
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise SubmissionError(f"{source}: cannot read {rel.as_posix()}: {exc}") from None
        for entry in entries:
            r = rel / entry.name
            if entry.is_symlink():
                links.append(r.as_posix())
            elif entry.is_dir(follow_symlinks=False):
                child = Path(entry.path)
                why = skip_dir_reason(entry.name, lambda n, child=child: os.path.lexists(child / n))
                if why:
                    skipped_dirs.append(f"{r.as_posix()}/ ({why})")
                else:
                    walk(child, r)
            elif entry.is_file(follow_symlinks=False):
                if skip_file(entry.name):
                    continue
                files.append((r.as_posix(), Path(entry.path), entry.stat(follow_symlinks=False).st_size))
                if len(files) > st.limits.max_files:
                    raise SubmissionError(
                        f"{source} holds more than {st.limits.max_files} files; leave datasets, outputs and "
                        f"checkpoints you do not need out of the submission")
            else:
                special.append(r.as_posix())

    walk(source, PurePosixPath())
    if links:
        st.notes.append(f"skipped {len(links)} symbolic link(s), never followed: {some(links)}")
    if skipped_dirs:
        st.notes.append(f"skipped folders: {some(skipped_dirs, 12)}")
    if special:
        st.notes.append(f"skipped {len(special)} special file(s) (not regular files): {some(special)}")

    if not any(rel.endswith((".py", ".ipynb")) for rel, _, _ in files):
        zips = [(rel, path) for rel, path, _ in files if rel.lower().endswith(".zip")]
        if len(zips) == 1:
            st.notes.append(f"{source.name}/ holds no .py or .ipynb file but one zip, {zips[0][0]}: using it")
            return extract_zip(zips[0][1], st)
        if len(zips) > 1:
            raise SubmissionError(f"{source} holds no .py or .ipynb file and {len(zips)} zip files "
                                  f"({some([z for z, _ in zips])}); leave only the one to grade")
        raise SubmissionError(f"{source}: no .py, .ipynb or .zip file found, so there is no model code to grade")

    copied, too_big, total, ckpt_total = 0, [], 0, 0
    for rel, path, size in files:
        limit = size_limit(rel)
        if size > limit or (is_checkpoint(rel) and ckpt_total + size > MAX_CHECKPOINT_TOTAL):
            too_big.append(f"{rel} ({size / MB:.0f} MB)")
            continue
        if is_checkpoint(rel):
            ckpt_total += size
        else:
            total += size
            if total > st.limits.max_total_bytes:
                raise SubmissionError(
                    f"{source} holds more than {st.limits.max_total_bytes / MB:.0f} MB of files (checkpoints not "
                    f"counted); leave datasets and outputs out of the submission")
        target = st.dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_file(path, target, limit)
        copied += 1
    if too_big:
        st.notes.append(f"skipped {len(too_big)} file(s) over the size limit (50 MB; checkpoints 1 GB): "
                        f"{some(too_big)}")
    st.notes.append(f"copied {copied} file(s) from {source.name}/")
    return source.resolve().name


def copy_file(src: Path, dst: Path, limit: int) -> None:
    """Copy one regular file without following a link at `src`, counting the bytes really read."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(src, flags)
    except OSError as exc:
        raise SubmissionError(f"cannot read {src.name}: {exc.strerror or exc}") from None
    written = 0
    with os.fdopen(fd, "rb") as fin, open(dst, "xb") as fout:
        while chunk := fin.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise SubmissionError(f"{src.name} is larger than the {limit / MB:.0f} MB limit for one file")
            fout.write(chunk)


# --------------------------------------------------------------------------- zips

def extract_zip(zpath: Path, st: Staging) -> str:
    label, lim = zpath.name, st.limits
    try:
        zf = zipfile.ZipFile(zpath)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise SubmissionError(f"{label} is not a valid zip file: {exc}; create it again (e.g. `zip -r {label} "
                              f"folder/`) or submit the folder itself") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > lim.max_files:
            raise SubmissionError(f"{label} has {len(infos)} entries, more than the limit of {lim.max_files}; "
                                  f"leave datasets and outputs out of the zip")
        entries, links, special = [], [], []
        for info in infos:
            raw = info.filename
            name = raw.replace("\\", "/")
            if name.startswith("/") or DRIVE.match(name):
                raise SubmissionError(f"{label}: entry {raw!r} has an absolute path; a zip must hold relative "
                                      f"paths (zip the folder from its parent folder: `zip -r {label} folder/`)")
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if ".." in parts:
                raise SubmissionError(f"{label}: entry {raw!r} contains '..' and would be written outside the "
                                      f"submission; re-create the zip from the submission's own folder")
            if info.flag_bits & 0x1:
                raise SubmissionError(f"{label}: entry {raw!r} is encrypted; submit a zip without a password")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                links.append(name)
                continue
            if name.endswith("/") or stat.S_ISDIR(mode) or not parts:
                continue
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                special.append(name)
                continue
            entries.append((parts, info))

        entries, ignored = _zip_drop_ignored(entries)
        big, total_declared, ckpt_declared = [], 0, 0
        selected = []
        for parts, info in entries:
            size, csize = info.file_size, info.compress_size
            if size > _RATIO_MIN_BYTES and size / max(csize, 1) > lim.max_ratio:
                raise SubmissionError(
                    f"{label}: entry {info.filename!r} expands {size / max(csize, 1):.0f} times ({size} bytes from "
                    f"{csize}), more than the limit of {lim.max_ratio:.0f}; this looks like a zip bomb")
            rel = "/".join(parts)
            ckpt = is_checkpoint(rel)
            if size > size_limit(rel) or (ckpt and ckpt_declared + size > MAX_CHECKPOINT_TOTAL):
                big.append(f"{rel} ({size / MB:.0f} MB)")
                continue
            if ckpt:
                ckpt_declared += size
            else:
                total_declared += size
            selected.append((parts, info))
        if total_declared > lim.max_total_bytes:
            raise SubmissionError(
                f"{label} expands to {total_declared} bytes, more than the limit of {lim.max_total_bytes} "
                f"({lim.max_total_bytes / MB:.0f} MB; checkpoints not counted); leave datasets and outputs out")

        stripped = []
        while selected and all(len(p) > 1 for p, _ in selected) and len({p[0] for p, _ in selected}) == 1:
            stripped.append(selected[0][0][0])
            selected = [(p[1:], info) for p, info in selected]

        _zip_write(zf, label, selected, st)

    st.notes.append(f"extracted {label} ({len(selected)} files)")
    if stripped:
        st.notes.append(f"{label}: used its single top-level folder {'/'.join(stripped)}/ as the submission root")
    if links:
        st.notes.append(f"{label}: skipped {len(links)} symbolic link entr{'y' if len(links) == 1 else 'ies'}, "
                        f"never created: {some(links)}")
    if special:
        st.notes.append(f"{label}: skipped {len(special)} special entr{'y' if len(special) == 1 else 'ies'}: "
                        f"{some(special)}")
    if ignored:
        st.notes.append(f"{label}: skipped folders: {some(ignored, 12)}")
    if big:
        st.notes.append(f"{label}: skipped {len(big)} file(s) over the size limit (50 MB; checkpoints 1 GB): "
                        f"{some(big)}")
    return stripped[-1] if stripped else zpath.stem


def _zip_drop_ignored(entries):
    """Drop __MACOSX, hidden files/folders, caches, virtual environments and wandb run logs."""
    names = {tuple(p) for p, _ in entries}
    dirs_with: dict[tuple, set[str]] = {}
    for parts in names:
        for i in range(len(parts)):
            dirs_with.setdefault(parts[:i], set()).add(parts[i])
    kept, ignored = [], []
    for parts, info in entries:
        reason = None
        for i, part in enumerate(parts[:-1]):
            reason = skip_dir_reason(part, lambda n, d=tuple(parts[: i + 1]): n in dirs_with.get(d, ()))
            if reason:
                label = "/".join(parts[: i + 1]) + f"/ ({reason})"
                if label not in ignored:
                    ignored.append(label)
                break
        if reason or skip_file(parts[-1]):
            continue
        kept.append((parts, info))
    return kept, ignored


def _zip_write(zf: zipfile.ZipFile, label: str, selected, st: Staging) -> None:
    lim, dest = st.limits, st.dest.resolve()
    total = 0
    for parts, info in selected:
        target = dest.joinpath(*parts)
        if not target.resolve().is_relative_to(dest):  # cannot happen after the checks above
            raise SubmissionError(f"{label}: entry {info.filename!r} would be written outside the submission")
        ckpt = is_checkpoint(target.name)
        written = 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(CHUNK):
                    written += len(chunk)
                    if written > info.file_size:
                        raise SubmissionError(f"{label}: entry {info.filename!r} holds more data than its header "
                                              f"says; the zip is damaged or forged")
                    if not ckpt:
                        total += len(chunk)
                        if total > lim.max_total_bytes:
                            raise SubmissionError(f"{label} expands to more than {lim.max_total_bytes} bytes, "
                                                  f"the limit")
                    if written > _RATIO_MIN_BYTES and written / max(info.compress_size, 1) > lim.max_ratio:
                        raise SubmissionError(f"{label}: entry {info.filename!r} expands more than "
                                              f"{lim.max_ratio:.0f} times; this looks like a zip bomb")
                    out.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise SubmissionError(f"{label} is not a valid zip file: entry {info.filename!r}: {exc}; create the "
                                  f"zip again or submit the folder itself") from None
        except NotImplementedError as exc:
            raise SubmissionError(f"{label}: entry {info.filename!r} uses a compression method Python cannot "
                                  f"read ({exc}); create the zip again with standard (deflate) compression") from None
        except OSError as exc:
            raise SubmissionError(f"{label}: entry {info.filename!r} could not be written: {exc}") from None
