"""What every ``python -m emo.<command>`` shares: its options, written once, and how it ends.

- ``--model NAME|PATH`` (:func:`add_model_option`): a shipped model's name (``default``, ``ensemble``), a
  checkpoint or an ``.onnx`` file, in every command that takes a model (where a command took the model as its
  first argument, that still works); ``--data NAME`` for the dataset; ``--device``, ``--threads``,
  ``--batch-size``, ``--runtime`` (:func:`add_runtime_options`).
- A bad input (a missing file, a bad value, a file that cannot be read or written) ends a command with a
  one-line ``error: ...`` and exit status 2 (:func:`run_command`); any other exception is a bug and keeps its
  traceback.
"""

from __future__ import annotations

import argparse
import csv
import errno
import shlex
import sys
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from emo.checkpoint import SHIPPED_MODELS, model_path
from emo.files import printable, shown_path
from emo.model import default_device, load_model

if TYPE_CHECKING:
    from emo.model import Model

#: What a user's input or the machine can cause, and what each command reports in one line: files that are
#: missing, unreadable or cannot be written (a full disk, a read-only folder), bad values, damaged archives and
#: CSV files, numbers that stop being finite.
BAD_INPUT = (OSError, ValueError, FloatingPointError, csv.Error, zipfile.BadZipFile, tarfile.TarError, zlib.error,
             EOFError)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` with each option's default (where its help does not already say it, and there is one to
    say: not for switches, nor for empty values), and the description's examples kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        if ("default" in help or action.nargs == 0 or action.default in (None, "", [], argparse.SUPPRESS)
                or action.default is False):
            return help
        return f"{help} (default: %(default)s)" if help else "default: %(default)s"


def command_line(module: str, argv: list[str] | None = None) -> str:
    """The shell command that ran ``module`` with ``argv`` (default: this process's arguments), for the logs."""
    return " ".join(["python -m " + module, *(shlex.quote(s) for s in (sys.argv[1:] if argv is None else argv))])


DATA_HELP = ("auto: FER-2013 if imported, else generated faces; fer2013; synthetic (the generated faces); or the "
             "NAME of a dataset imported with `python -m emo.data import PATH --name NAME`")


def add_data_option(p: argparse.ArgumentParser, default: str | None = "auto", help: str = DATA_HELP) -> None:
    """``--data NAME``: which dataset a command reads (``--source``, its first name, still works)."""
    p.add_argument("--data", default=default, metavar="NAME", help=help)
    p.add_argument("--source", dest="data", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


MODEL_HELP = ("a shipped model's name (" + ", ".join(SHIPPED_MODELS) + "), a best_model.pt, or an .onnx file from "
              "`python -m emo.export`")


def add_model_option(p: argparse.ArgumentParser, positional: bool = False, default: str = "default",
                     help: str = MODEL_HELP) -> None:
    """``--model NAME|PATH``, as every command that takes a model spells it; with ``positional`` the model may
    also come first, as ``python -m emo.evaluate runs/x/best_model.pt`` (read by :func:`chosen_model`)."""
    p.add_argument("--model", default=None, metavar="MODEL", help=f"{help} (default: {default})")
    p.set_defaults(model_default=default)
    if positional:
        p.add_argument("model_path", nargs="?", default=None, metavar="MODEL", help="the same as --model")


def chosen_model(a: argparse.Namespace) -> str:
    """The model the command line ``a`` names (``--model``, or the first argument), else its default."""
    given = [m for m in (a.model, getattr(a, "model_path", None)) if m]
    if len(given) == 2 and model_path(given[0]).resolve() != model_path(given[1]).resolve():
        raise ValueError(f"two models given ({given[1]} and --model {given[0]}): give one")
    return given[0] if given else a.model_default


def parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """A command's parser: ``python -m emo.<module>``, the first paragraph of ``doc`` as its description."""
    return argparse.ArgumentParser(prog="python -m " + module, description=(doc or "").split("\n\n")[0],
                                   formatter_class=HelpFormatter)


def checkpoints_parser(module: str, doc: str, checkpoints_help: str, default_out: Path) -> argparse.ArgumentParser:
    """The arguments that the commands combining several checkpoints (``emo.soup``, ``emo.ensemble``) share:
    the checkpoints, ``--out`` (default ``default_out``), ``--data`` and ``--threads``."""
    p = parser(module, doc.split("\n")[0])
    p.add_argument("checkpoints", nargs="+", help=checkpoints_help)
    p.add_argument("--out", default=str(default_out),
                   help=f"where the result goes (default: {shown_path(default_out)})")
    add_data_option(p)
    add_runtime_options(p, device=False)
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint already at --out")
    return p


def refuse_to_replace(out: Path, overwrite: bool) -> None:
    """One-line refusal to write a checkpoint over one this command did not write, unless ``overwrite``."""
    if Path(out).exists() and not overwrite:
        raise FileExistsError(f"{out} exists already: pass another --out, or --overwrite to replace it")


#: Threads for one face at a time (the demos, emo.predict): results/benchmarks.md's threads table measured 1 thread
#: about as fast as 2 on an idle 2-core CPU and 2-3x faster beside another busy program.
FEW_FACES_THREADS = 1


def add_runtime_options(p: argparse.ArgumentParser, device: bool = True, batch_size: bool = False,
                        runtime: bool = False, threads: int = 0) -> None:
    """The options every command that runs a model shares, defined once: ``--device``, ``--threads``,
    (for commands that classify many faces) ``--batch-size`` and (for those that only predict) ``--runtime``."""
    if device:
        p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    if runtime:
        p.add_argument("--runtime", choices=("torch", "onnx"), default=None,
                       help="PyTorch, or ONNX Runtime on the CPU (pip install onnxruntime onnx onnxscript; "
                            "the checkpoint is exported at start, or pass an .onnx file from `python -m emo.export`) "
                            "(default: onnx for an .onnx file, else torch)")
    p.add_argument("--threads", type=int, default=threads,
                   help="CPU threads (0: PyTorch's choice, one per core)" + (
                       "; 1 is fastest for a face at a time when other programs share the CPU "
                       "(results/benchmarks.md)" if threads == FEW_FACES_THREADS else ""))
    if batch_size:
        p.add_argument("--batch-size", type=int, default=None,
                       help="faces per forward pass (default: 32 on CPU, 512 on CUDA)")


def pick_device(device: str | None) -> str:
    """``device`` as given, or CUDA where it is available, else the CPU."""
    return str(default_device(device))


def open_model(path: str, a: argparse.Namespace) -> "Model":
    """The model at ``path`` (a checkpoint, an ``.onnx`` file or a shipped model's name) on the device and
    runtime that the command line ``a`` asks for (``--device``, ``--runtime``, ``--threads``)."""
    runtime = getattr(a, "runtime", None)
    if runtime == "torch" and str(path).lower().endswith(".onnx"):
        raise ValueError(f"--runtime torch cannot run {path}, an ONNX graph: drop --runtime torch (it runs on ONNX "
                         "Runtime), or pass the .pt checkpoint it was exported from")
    onnx = runtime == "onnx" or str(path).lower().endswith(".onnx")
    runtime = "onnx" if onnx else "torch"
    device = "cpu" if onnx and not getattr(a, "device", None) else pick_device(getattr(a, "device", None))
    return load_model(model_path(path), device, runtime, getattr(a, "threads", 0))


def run_command(action: Callable[[], object], threads: int = 0, interrupt: bool = True) -> int:
    """How a command line's ``main`` ends: set ``threads`` CPU threads (0: PyTorch's choice) and run ``action``.

    Returns 2 after printing the one-line error of a bad input; with ``interrupt``, 130 after one line for
    Ctrl-C (commands that say more about an interruption, such as how to resume, pass False and catch it);
    otherwise the exit status ``action`` returns where that is an int, else 0.
    """
    try:
        if threads < 0:
            raise ValueError(f"--threads {threads}: give a positive number of CPU threads, or 0 for PyTorch's choice")
        if threads:
            torch.set_num_threads(threads)
        status = action()
    except BAD_INPUT as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if not interrupt:
            raise
        print("\ninterrupted: every file written so far is whole (each is written to a temporary file and renamed "
              "into place); run the command again to go on", file=sys.stderr)
        return 130
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


#: What to do about the errors the machine gives, by errno (0: any other).
OS_ADVICE = {errno.ENOSPC: "free some space, or choose a path on another disk",
             errno.EFBIG: "free some space, or raise the file-size limit (ulimit -f), or choose another path",
             errno.EDQUOT: "free some space within your quota, or choose another path",
             errno.EACCES: "check the folder's permissions, or choose another path",
             errno.EPERM: "check the folder's permissions (and attributes: lsattr), or choose another path",
             errno.EROFS: "the disk is mounted read-only: choose a path on another disk",
             errno.ENOTDIR: "a part of that path is a file, not a folder: choose another path",
             errno.EISDIR: "that path is a folder: name a file",
             0: "free some space, check the folder's permissions, or choose another path"}


def one_line(e: BaseException) -> str:
    """An exception as one line: its message, or for an OSError without one of ours, what failed and where,
    and what to do; for a damaged archive or CSV, what it is."""
    if isinstance(e, OSError) and not isinstance(e, (FileNotFoundError, FileExistsError)) and e.strerror:
        where = f" ({printable(e.filename)})" if e.filename else ""
        return f"{e.strerror}{where}: {OS_ADVICE.get(e.errno or 0, OS_ADVICE[0])}"
    text = " ".join(printable(str(e)).split()) or type(e).__name__
    if isinstance(e, csv.Error):
        return f"a CSV file could not be read ({text}): check that it is a plain comma-separated file"
    if isinstance(e, (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError)):
        return f"an archive is damaged or incomplete ({text}): download it again"
    return text
