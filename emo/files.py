"""Where the project's files live, and the one way every file is written.

Every file that ``emo`` writes (checkpoints, datasets, figures, reports, CSVs, ONNX graphs) goes through
:func:`atomic_write`: the bytes go to a temporary file with a unique name beside the target, which is flushed
to disk (``fsync``) and then renamed over the target, and the folder is synced too. An interrupted write
(Ctrl-C, a full disk, a crash, a power cut) leaves the old file whole and no temporary file behind.

A command that writes several files that belong together (``emo.evaluate``'s report, figures and metrics)
writes them with :func:`write_set`: all are written to temporary files first and renamed into place only when
every one is whole, so after a failure the old set is still whole.

A command that writes into a folder (a training run, an evaluation, ``emo.predict``'s outputs, a dataset's
name) holds :func:`folder_lock` while it writes: a second writer is refused in one line naming the first, and
a lock left by a killed process is recognised and taken over (its temporary files removed).

This module imports nothing else of ``emo``: everything can use it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import socket
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Sequence

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = PROJECT_ROOT / "results"
RUNS_DIR = PROJECT_ROOT / "runs"
#: The file names read as images, by every command that looks for images in a folder or an archive.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"})
#: The prefix of every temporary file :func:`atomic_write` makes (never a name a command reads as its output).
TEMP_PREFIX = ".emo-tmp-"
#: The name of the lock file :func:`folder_lock` keeps in a folder while a command writes there.
LOCK_NAME = ".emo-lock"
#: CSV cells that start with these are escaped (a leading ``'``), so that no spreadsheet reads them as formulas.
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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


def _temporary_beside(path: Path) -> Path:
    """A new empty file with a unique name beside ``path`` (its folder made if missing), with the mode a plain
    ``open()`` would give it, or the mode of the file it will replace (``mkstemp`` makes it private, 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_UMASK)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) for libraries that write by file name (OpenCV's video
    writer, ONNX Runtime's quantiser); on leaving the block without an error it is synced and renamed over
    ``path``, and on an error removed."""
    path = Path(path)
    tmp = _temporary_beside(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _name_target(e, path)
        raise
    _fsync_dir(path.parent)


def _name_target(e: BaseException, path: Path) -> None:
    """Give a write error that names no file (a full disk: ``write()`` knows no name) the file being written, or
    name that file instead of its temporary copy, so its one-line message says which file failed."""
    if isinstance(e, OSError) and (not e.filename or Path(str(e.filename)).name.startswith(TEMP_PREFIX)):
        e.filename = str(path)


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


def csv_cell(value: Any) -> Any:
    """``value`` safe for a spreadsheet: text that would start a formula (``=``, ``+``, ``-``, ``@``) gets a
    leading ``'``; text that cannot be encoded (a file name that is not valid UTF-8) is shown escaped; numbers
    are kept."""
    if not isinstance(value, str):
        return value
    value = printable(value)
    return "'" + value if value.startswith(CSV_FORMULA_START) else value


def csv_text(fieldnames: Sequence[str], rows: Iterable[dict[str, Any]], header: bool = True) -> str:
    """``rows`` as CSV text (cells made safe by :func:`csv_cell`), with a header line unless ``header`` is False."""
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(fieldnames))
    if header:
        w.writeheader()
    w.writerows({k: csv_cell(v) for k, v in r.items()} for r in rows)
    return out.getvalue()


def _check_columns(fieldnames: Sequence[str]) -> None:
    if len(set(fieldnames)) != len(fieldnames):
        raise ValueError(f"CSV columns {list(fieldnames)} repeat a name: each column needs its own")


def write_csv(path: str | os.PathLike, fieldnames: Sequence[str], rows: Iterable[dict[str, Any]]) -> Path:
    """``rows`` as a CSV file with a header, atomically (cells made safe by :func:`csv_cell`)."""
    _check_columns(fieldnames)
    return write_text(path, csv_text(fieldnames, rows))


class GrowingCsv:
    """A CSV file that grows as results arrive: each :meth:`add` rewrites it whole, atomically, so the rows of
    every finished part are on disk as soon as that part is done (``emo.predict``'s ``faces.csv``)."""

    def __init__(self, path: str | os.PathLike, fieldnames: Sequence[str]) -> None:
        _check_columns(fieldnames)
        self.path, self.fieldnames = Path(path), list(fieldnames)
        self.text = csv_text(self.fieldnames, [])
        self.rows = 0
        write_text(self.path, self.text)

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.text += csv_text(self.fieldnames, rows, header=False)
        self.rows += len(rows)
        write_text(self.path, self.text)


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
    return printable(path.relative_to(base) if path.is_relative_to(base) else path)


def printable(text: str | os.PathLike) -> str:
    """``text`` (a path) as a string that can be printed and written as UTF-8 on one line: bytes of a file name
    that are not valid UTF-8, and control characters (a newline), are shown escaped (``\\xe9``, ``\\x0a``)."""
    text = os.fspath(text)
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.translate(_CONTROL) if _CONTROL_CHARS.search(text) else text


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), 127]}
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f]")


def check_regular(path: str | os.PathLike, what: str = "file") -> os.stat_result:
    """``path``'s status if it is a regular file (or a link to one); a one-line refusal for a folder, a FIFO, a
    device or a socket, which reading would hang on or never finish."""
    st = os.stat(path)  # (FileNotFoundError names the path)
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise ValueError(f"{printable(path)} is {kind}: give a regular {what}")
    return st


def check_size(path: str | os.PathLike, limit_mb: float, what: str, variable: str) -> int:
    """The size of the regular file ``path``, or a one-line refusal above ``limit_mb`` MB naming the environment
    ``variable`` that raises it (untrusted files are bounded before they are read)."""
    size = check_regular(path, what).st_size
    if size > limit_mb * 2**20:
        raise ValueError(f"{printable(path)} is {size / 2**20:,.3g} MB, over the {limit_mb:g} MB limit for {what}s: "
                         f"give a smaller one, or raise the limit with {variable}=MB")
    return size


def limit_from_env(variable: str, default: float) -> float:
    """A size limit: the environment ``variable`` if set to a positive number, else ``default`` (a value that is
    not a positive number is reported in one line and ``default`` is used)."""
    raw = os.environ.get(variable, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = -1.0
    if not value > 0:
        print(f"warning: {variable}={raw!r} is not a positive number: using {default:g}", file=sys.stderr)
        return default
    return value


def write_set(writers: dict[str | os.PathLike, Callable[[IO[bytes]], object]]) -> list[Path]:
    """Write several files that belong together: each ``writers[path]`` writes its file into a temporary file
    beside it; only when every one is written whole are they renamed into place. After a failure (a full
    disk, an error in a writer) the files already there are all as they were, and no temporary file is left."""
    done: list[tuple[Path, Path]] = []
    try:
        for path, writer in writers.items():
            path = Path(path)
            done.append((_temporary_beside(path), path))
            with open(done[-1][0], "wb") as f:
                writer(f)
                f.flush()
                os.fsync(f.fileno())
    except BaseException as e:
        for tmp, _ in done:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if done:
            _name_target(e, done[-1][1])
        raise
    for tmp, path in done:
        os.replace(tmp, path)
    for folder in {path.parent for _, path in done}:
        _fsync_dir(folder)
    return [path for _, path in done]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # (someone else's process)
        return True
    return True


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "folder", name: str | None = None) -> Iterator[Path]:
    """Hold ``folder``'s lock (the file :data:`LOCK_NAME` in it, made if missing) while a command writes there;
    with ``name``, the lock of the one file ``name`` in a shared folder (``data/<name>.npz``), which others
    of other names may write meanwhile.

    A second writer is refused with one line naming the first (its command and process id). A lock whose
    process has ended (killed, crashed, the machine restarted) is taken over, and the temporary files its
    writes left behind are removed. The lock is released on leaving the block, whatever happens. A block
    inside another of the same process (a training that evaluates into its own folder) shares the outer lock.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / (f"{LOCK_NAME}-{name}" if name else LOCK_NAME)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
          "command": " ".join(["python", *sys.argv])[:300]}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK)
        except FileExistsError:
            fd = -1
        except OSError as e:  # (a read-only folder: say which folder, not the lock file's name)
            e.filename = str(folder)
            raise
        if fd < 0:
            holder = _lock_holder(lock)
            if holder is not None and (holder.get("host") != me["host"] or _alive(int(holder["pid"]))):
                if holder["pid"] == me["pid"] and holder.get("host") == me["host"]:
                    yield lock  # (this process holds it already, in an outer block: that block releases it)
                    return
                host = f" on {holder.get('host')}" if holder.get("host") != me["host"] else ""
                raise ValueError(f"{printable(folder / name if name else folder)} is being written by another "
                                 f"command (process "
                                 f"{holder['pid']}{host}, since {holder.get('since', '?')}: "
                                 f"{holder.get('command', '?')}"
                                 f"): wait for it to end, or choose another {what} (if it is not running, remove "
                                 f"{printable(lock)})") from None
            _take_over(lock, folder, f"{TEMP_PREFIX}{name}." if name else TEMP_PREFIX)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        break
    else:
        raise ValueError(f"{printable(folder)}'s lock ({LOCK_NAME}) could not be taken: remove it if no "
                         "command is writing there")
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            if (_lock_holder(lock) or {}).get("pid") == me["pid"]:
                os.unlink(lock)


def _lock_holder(lock: Path) -> dict[str, Any] | None:
    """Who holds ``lock`` (its JSON), or None where it cannot be read (being written, damaged, gone)."""
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
        return None
    return holder


def _take_over(lock: Path, folder: Path, debris: str) -> None:
    """Remove a lock whose process has ended, and the temporary files that process left in ``folder`` (those
    whose names start with ``debris``)."""
    if _lock_holder(lock) is None:  # (a lock being written this instant reads as unreadable: give it a moment)
        time.sleep(0.2)
        holder = _lock_holder(lock)
        if holder is not None and _alive(int(holder["pid"])):
            return
    print(f"note: {printable(folder)} was locked by a command that has ended: taking its lock over",
          file=sys.stderr)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock)
    for left in folder.rglob(f"{debris}*"):
        with contextlib.suppress(OSError):
            left.unlink()
