"""Where the project's files live, and the one way every file is written.

Every file that ``emo`` writes (checkpoints, datasets, figures, reports, CSVs, ONNX graphs) goes through
:func:`atomic_write`: the bytes go to a temporary file with a unique name beside the target, which is flushed
to disk (``fsync``) and then renamed over the target, and the folder is synced too. An interrupted write
(Ctrl-C, a full disk, a crash, a power cut) leaves the old file whole and no temporary file behind.

This module imports nothing else of ``emo``: everything can use it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Sequence

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_ROOT / "results"
RUNS_DIR = PROJECT_ROOT / "runs"
#: The file names read as images, by every command that looks for images in a folder or an archive.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"})
#: The prefix of every temporary file :func:`atomic_write` makes (never a name a command reads as its output).
TEMP_PREFIX = ".emo-tmp-"


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # (a folder cannot be opened for syncing on every platform)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) for libraries that write by file name (OpenCV's video
    writer, ONNX Runtime's quantiser); on leaving the block without an error it is synced and renamed over
    ``path``, and on an error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    # mkstemp makes the file private (0600): give it the mode a plain open() would, or the replaced file's
    os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_UMASK)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on leaving the block without an error, sync it and
    rename it over ``path``; on an error, remove it and leave ``path`` as it was (:func:`atomic_path`).

        with atomic_write("runs/x/metrics.json", "w") as f:
            f.write(text)
    """
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as f:
        yield f


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``data`` into ``path``, atomically."""
    with atomic_write(path) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``text`` (UTF-8) into ``path``, atomically."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return Path(path)


def write_csv(path: str | os.PathLike, fieldnames: Sequence[str], rows: Iterable[dict[str, Any]]) -> Path:
    """``rows`` as a CSV file with a header, atomically."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fieldnames))
        w.writeheader()
        w.writerows(rows)
    return Path(path)


def append_text(path: str | os.PathLike, text: str) -> Path:
    """``path``'s text (none if it is not there yet) followed by ``text``, written whole, atomically: how the
    small logs (``train_log.txt``) grow, so that a crash never leaves half a line."""
    path = Path(path)
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    return write_text(path, before + text)


def write_with(path: str | os.PathLike, writer: Callable[[IO[bytes]], object]) -> Path:
    """Let ``writer`` write into an open binary file, atomically at ``path`` (``torch.save``, ``np.savez``,
    ``figure.savefig`` and the like: ``write_with(p, lambda f: torch.save(obj, f))``)."""
    with atomic_write(path) as f:
        writer(f)
    return Path(path)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of the file at ``path``, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shown_path(path: str | os.PathLike, base: str | os.PathLike | None = None) -> str:
    """``path`` as a user would type it: relative to ``base`` (default: the current folder) where it lies inside it."""
    path, base = Path(path).resolve(), Path(base or Path.cwd()).resolve()
    return str(path.relative_to(base) if path.is_relative_to(base) else path)
