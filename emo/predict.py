"""Analyse photos and videos without a display: annotated copies, one CSV row per face, emotions over time.

    python -m emo.predict                                 # the bundled astronaut photo -> runs/predict/
    python -m emo.predict photo.jpg album/ interview.mp4 --out runs/mine
    python -m emo.predict interview.mp4 --model ensemble             # or a path to a .pt / .onnx
    python -m emo.predict interview.mp4 --runtime onnx               # on ONNX Runtime (exported at start)

For each photo it writes ``<name>_annotated.jpg``; for each video ``<name>_annotated.avi`` and
``<name>_emotions.png``, each emotion's probability over time, a panel per person (each face is followed from
frame to frame and keeps its number, :mod:`emo.tracking`; smoothed along the person's track over about half a
second; frames without the face are gaps); for all of them ``faces.csv``: one row per face found (file,
annotated copy, how the face was found, frame, time, track number, box, label, every class's probability),
written as each file is done. Faces already cropped (a dataset's 48x48 faces) are taken whole with ``--no-detect``; by
default an image about face-sized (about square, at most 256 pixels) in which the detector finds no face, or one
that fills most of it, is taken whole.
A folder is searched for photos and videos, and its files' copies keep their folders under ``--out``.
Nothing is written over an input or over another output of the run. A file that cannot be read, decoded or
written is reported on one line and skipped; the rest go on, and the command ends with exit status 2 when any
file failed.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from tqdm.auto import tqdm

from emo.checkpoint import DEFAULT_MODEL, model_path
from emo.cli import (
    FEW_FACES_THREADS,
    add_model_option,
    add_runtime_options,
    chosen_model,
    one_line,
    open_model,
    parser,
    run_command,
)
from emo.files import (
    IMAGE_SUFFIXES,
    RUNS_DIR,
    GrowingCsv,
    atomic_path,
    folder_lock,
    printable,
    shown_path,
    write_bytes,
    write_with,
)
from emo.model import Model, load_model
from emo.pipeline import EmotionPipeline, Face
from emo.video import FrameSource, SourceError, sample_photo

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
DEFAULT_OUT = RUNS_DIR / "predict"
#: faces.csv's columns before the classes' probabilities.
COLUMNS = ("file", "annotated", "found_by", "frame", "time_s", "track", "x", "y", "w", "h", "label")
#: ``--detect``: find faces with the detector (``always``), take each image whole as one face that is cropped
#: already (``never``), or (``auto``) take an image whole where it is about face-sized (about square, within 5:4,
#: at most :data:`FACE_SIZED` pixels a side) and the detector finds no face in it or one that fills most of it.
DETECT_MODES = ("auto", "always", "never")
FACE_SIZED = 256
#: In ``auto``, a face-sized image whose one detected face spans this share of its short side is a tight crop.
TIGHT = 0.6
WHOLE, DETECTOR = "whole image", "detector"
BUNDLED = "astronaut.png"
#: What analysing one file can raise that is about that file (the run reports it and goes on).
FILE_ERRORS = (SourceError, ValueError, OSError, cv2.error)


@dataclass(frozen=True)
class Job:
    """One input and where its outputs go: ``stem`` (relative to --out) is the annotated copy's name before its
    ``_annotated.jpg`` / ``_annotated.avi`` ending; ``shown`` is how faces.csv and messages name the input."""

    path: Path | None  # None: the bundled photo
    shown: str
    stem: Path
    video: bool

    def outputs(self, out: Path) -> list[Path]:
        if self.video:
            return [out / f"{self.stem}_annotated.avi", out / f"{self.stem}_emotions.png"]
        return [out / f"{self.stem}_annotated.jpg"]


def earlier_outputs(out: Path) -> set[Path]:
    """The files an earlier run wrote into ``out``, as its ``faces.csv`` names them (annotated copies, and each
    video's emotions plot), so that a run whose ``--out`` is its input folder does not analyse them again."""
    table = out / "faces.csv"
    if not table.is_file() or table.stat().st_size > 256 * 2**20:
        return set()
    found = set()
    try:
        with open(table, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                name = (row.get("annotated") or "").lstrip("'")
                if name:
                    found.add((out / name).resolve())
                    if name.endswith("_annotated.avi"):
                        found.add((out / (name[:-len("_annotated.avi")] + "_emotions.png")).resolve())
    except (csv.Error, UnicodeDecodeError, OSError):
        return set()
    return found


def media_files(paths: list[str], out: Path | None = None) -> Iterator[tuple[Path, Path]]:
    """(file, its path relative to the folder it was found in) for the photos and videos that ``paths`` name:
    files as given, folders searched (sorted; hidden files left out, and ``out``'s own results where ``out``
    lies in a folder searched: its whole tree when inside it, the files its faces.csv names when it is it)."""
    skip_tree = out.resolve() if out is not None else None
    skip_files = earlier_outputs(out) if out is not None and out.is_dir() else set()
    for p in map(Path, paths):
        if p.is_dir():
            inside = skip_tree is not None and skip_tree != p.resolve() and skip_tree.is_relative_to(p.resolve())
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if (f.suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES
                        or any(part.startswith(".") for part in rel.parts)):
                    continue
                if (inside and f.resolve().is_relative_to(skip_tree)) or f.resolve() in skip_files:
                    continue  # (this command's own results of an earlier run)
                yield f, rel
        else:
            yield p, Path(p.name)


def plan_jobs(paths: list[str], out: Path) -> list[Job]:
    """Each input and its outputs' names: unique within the run, and never an input's own path (a name
    taken already gets the input's suffix, then a number: ``x_png_annotated.jpg``, ``x_2_annotated.jpg``)."""
    found = list(media_files(paths, out)) if paths else []
    inputs = {f.resolve() for f, _ in found}
    taken: set[Path] = set()
    jobs = []
    for f, rel in found or [(None, Path(BUNDLED))]:
        video = f is not None and f.suffix.lower() in VIDEO_SUFFIXES
        base = rel.parent / rel.stem
        for stem in (base, rel.parent / f"{rel.stem}_{rel.suffix.lstrip('.').lower()}"):
            job = Job(f, printable(f) if f is not None else BUNDLED, stem, video)
            if not any(o.resolve() in taken | inputs for o in job.outputs(out)):
                break
        n = 2
        while any(o.resolve() in taken | inputs for o in job.outputs(out)):
            job = Job(f, job.shown, rel.parent / f"{rel.stem}_{n}", video)
            n += 1
        taken |= {o.resolve() for o in job.outputs(out)}
        jobs.append(job)
    return jobs


def face_rows(job: Job, annotated: str, found_by: str, frame: int, seconds: float, faces: list[Face],
              columns: list[str]) -> list[dict[str, object]]:
    return [dict(zip(columns, [job.shown, annotated, found_by, frame, round(seconds, 3), f.track, *f.box, f.label,
                               *(round(float(p), 4) for p in f.probs)]))
            for f in faces]


def face_sized(image: np.ndarray) -> bool:
    """True for an image that is about one face's size: square within 5:4, at most :data:`FACE_SIZED` a side."""
    h, w = image.shape[:2]
    return max(h, w) <= FACE_SIZED and max(h, w) <= 1.25 * min(h, w)


def photo_faces(pipeline: EmotionPipeline, image: np.ndarray, detect: str) -> tuple[list[Face], str]:
    """The faces of a photo and how they were found (:data:`DETECT_MODES`)."""
    if detect == "never":
        return pipeline.whole(image), WHOLE
    faces = pipeline.detect(image)
    if detect == "auto" and face_sized(image) and (
            not faces or (len(faces) == 1 and max(faces[0].box[2:]) >= TIGHT * min(image.shape[:2]))):
        pipeline.reset()  # (the detector's faces are dropped: the photo's one face is number 1)
        return pipeline.whole(image), WHOLE  # (a face cropped already: the detector finds none, or itself)
    return faces, DETECTOR


#: Annotated copies of smaller photos are enlarged to this many pixels on their short side, so that labels fit.
ANNOTATED_MIN_SIDE = 240


def annotated_copy(pipeline: EmotionPipeline, image: np.ndarray, faces: list[Face]) -> np.ndarray:
    """The photo with its faces drawn: a small photo (a face cropped already) enlarged first, so that its label
    fits; the bars in a panel beside the photo, where they hide no face."""
    scale = max(1, int(np.ceil(ANNOTATED_MIN_SIDE / min(image.shape[:2]))))
    if scale > 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        faces = [Face(tuple(int(v * scale) for v in f.box), f.probs, f.classes, f.track)  # type: ignore[misc]
                 for f in faces]
    return pipeline.draw(image, faces)  # (the bars go in a panel beside the photo)


def analyse_photo(pipeline: EmotionPipeline, image: np.ndarray, job: Job, out: Path,
                  columns: list[str], detect: str = "auto") -> list[dict[str, object]]:
    pipeline.reset()
    faces, found_by = photo_faces(pipeline, image, detect)
    ok, jpeg = cv2.imencode(".jpg", annotated_copy(pipeline, image, faces))
    if not ok:
        raise SourceError(f"the annotated copy of {job.shown} could not be encoded as JPEG")
    (target,) = job.outputs(out)
    write_bytes(target, jpeg.tobytes())
    return face_rows(job, target.relative_to(out).as_posix(), found_by, 0, 0.0, faces, columns)


def analyse_video(pipeline: EmotionPipeline, source: FrameSource, job: Job, out: Path,
                  columns: list[str], detect: str = "auto") -> list[dict[str, object]]:
    fps = source.fps or 25.0
    total = int(source.cap.get(cv2.CAP_PROP_FRAME_COUNT)) if source.cap is not None else 0
    pipeline.reset()
    rows: list[dict[str, object]] = []
    writer, frames = None, 0
    video, png = job.outputs(out)
    bar = tqdm(total=total or None, desc=job.path.name if job.path else "", unit="frame", leave=False)
    with atomic_path(video) as tmp, bar:
        try:
            for i, frame in enumerate(source):
                faces = pipeline.whole(frame) if detect == "never" else pipeline.detect(frame)
                annotated = pipeline.draw(frame, faces)
                if writer is None:
                    h, w = annotated.shape[:2]
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
                    if not writer.isOpened():
                        raise SourceError(f"the annotated copy of {job.shown} cannot be written at {video}")
                writer.write(annotated)
                rows += face_rows(job, video.relative_to(out).as_posix(), WHOLE if detect == "never" else DETECTOR,
                                  i, i / fps, faces, columns)
                frames = i + 1
                bar.update(1)
            bar.total = frames  # (a container's frame count is an estimate: the bar ends at the frames read)
            bar.refresh()
        finally:
            source.release()
            if writer is not None:
                writer.release()
        if writer is None:
            raise SourceError(f"{job.shown} holds no frames that could be read")
        if tmp.stat().st_size < 100 * frames:  # (OpenCV's writer does not say when a write fails)
            raise SourceError(f"the annotated copy of {job.shown} could not be written whole at {video} "
                              "(is the disk full?)")
    plot_emotions_over_time(rows, columns[len(COLUMNS):], fps, png, job.shown, frames)
    return rows


def emotions_over_time(rows: list[dict[str, object]], classes: list[str], frames: int,
                       window: int) -> np.ndarray:
    """frames x classes: each frame's mean probability over its faces, smoothed over ``window`` frames centred
    on it, counting only frames with a face (no zeros enter at the ends); NaN for frames without a face."""
    sums = np.zeros((frames, len(classes)))
    count = np.zeros(frames)
    if rows:
        idx = np.array([int(r["frame"]) for r in rows])  # type: ignore[call-overload]
        np.add.at(sums, idx, np.array([[float(r[c]) for c in classes] for r in rows]))  # type: ignore[arg-type]
        np.add.at(count, idx, 1)
    has = count > 0
    mean = np.where(has[:, None], sums / np.maximum(count, 1)[:, None], 0.0)
    window = max(1, window)
    i = np.arange(frames)
    lo, hi = np.clip(i - window // 2, 0, frames), np.clip(i - window // 2 + window, 0, frames)

    def window_sums(x: np.ndarray) -> np.ndarray:  # each frame's sum over its window, by cumulative sums: O(frames)
        c = np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(x, 0)])
        return c[hi] - c[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        smooth = window_sums(mean) / window_sums(has.astype(float))[:, None]
    smooth[~has] = np.nan
    return smooth


def plot_emotions_over_time(rows: list[dict[str, object]], classes: list[str], fps: float, png: Path,
                            title: str, frames: int, max_people: int = 4) -> None:
    """Each class's probability over time, one panel per person (a track of :mod:`emo.tracking`, its number as
    in the annotated video), smoothed along the track over about half a second (:func:`emotions_over_time`);
    frames without that face are gaps in its lines. The ``max_people`` longest tracks of at least half a second
    are drawn; the figure says how many others were left out."""
    import matplotlib.pyplot as plt
    tracks: dict[int, list[dict[str, object]]] = {}
    for r in rows:
        tracks.setdefault(int(r["track"]), []).append(r)  # type: ignore[call-overload]
    longest = sorted(tracks, key=lambda k: -len(tracks[k]))
    shown = sorted(([k for k in longest if len(tracks[k]) >= fps / 2] or longest[:1])[:max_people])
    fig, axes = plt.subplots(max(1, len(shown)), 1, figsize=(9, 1.2 + 2.3 * max(1, len(shown))), sharex=True,
                             squeeze=False)
    t = np.arange(frames) / fps
    for ax, k in zip(axes[:, 0], shown):
        smooth = emotions_over_time(tracks[k], classes, frames, int(round(fps / 2)))
        for j, c in enumerate(classes):
            ax.plot(t, smooth[:, j], label=c)
        ax.set(ylabel=f"person {k}\nprobability", ylim=(0, 1.05))
    if shown:
        axes[0, 0].legend(ncol=len(classes), fontsize=8, loc="upper center")
    else:
        axes[0, 0].text(0.5, 0.5, "no face found", ha="center", va="center", transform=axes[0, 0].transAxes)
    left_out = len(tracks) - len(shown)
    axes[0, 0].set_title(f"{title}: emotions over time"
                         + (f" ({left_out} shorter track{'s' * (left_out > 1)} not drawn)" if left_out else ""))
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    try:
        write_with(png, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)


def csv_columns(classes: tuple[str, ...]) -> list[str]:
    """faces.csv's columns: :data:`COLUMNS`, then one per class (``p_<class>`` for a class whose name is taken)."""
    names = [c if c not in COLUMNS else f"p_{c}" for c in classes]
    if len(set(names)) != len(names):
        raise ValueError(f"the model's classes {list(classes)} repeat a name: faces.csv needs a column per class")
    return [*COLUMNS, *names]


def analyse(pipeline: EmotionPipeline, job: Job, out: Path, columns: list[str],
            detect: str = "auto") -> list[dict[str, object]]:
    """One input's rows, its annotated copy (and for a video its plot) written."""
    if job.path is None:
        return analyse_photo(pipeline, sample_photo(), job, out, columns, detect)
    source = FrameSource(job.path, size=None)  # (its own one-line errors: missing, unreadable, too large)
    if source.kind == "image":
        return analyse_photo(pipeline, source.read(), job, out, columns, detect)  # type: ignore[arg-type]
    return analyse_video(pipeline, source, job, out, columns, detect)


def predict_files(paths: list[str], out: str | Path = DEFAULT_OUT, model: Model | str | Path = DEFAULT_MODEL,
                  tta: bool = False, shown: str | None = None, detect: str = "auto") -> dict[str, object]:
    """Analyse ``paths`` (no paths: the bundled astronaut photo) into ``out``; returns the rows, the failures
    (one line each) and the number of files done. ``detect`` says how faces are found (:data:`DETECT_MODES`)."""
    if detect not in DETECT_MODES:
        raise ValueError(f"--detect {detect!r}: choose one of {', '.join(DETECT_MODES)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file: give a folder")
    shown = shown or (str(model) if isinstance(model, (str, Path)) else "the given model")
    model = load_model(model) if isinstance(model, (str, Path)) else model
    columns = csv_columns(model.classes)
    jobs = plan_jobs(paths, out)
    what = f"{len(jobs)} file(s)" if paths else "the bundled astronaut photo"
    print(f"analysing {what} with {shown} ({len(model.classes)} classes); writing to {shown_path(out)}", flush=True)
    pipeline = EmotionPipeline(model, tta=tta)
    rows: list[dict[str, object]] = []
    failed: list[str] = []
    with folder_lock(out, "--out folder"):
        table = GrowingCsv(out / "faces.csv", columns)
        for job in tqdm(jobs, desc="files", unit="file", disable=len(jobs) < 2, leave=False):
            try:
                found = analyse(pipeline, job, out, columns, detect)
                table.add(found)
            except FILE_ERRORS as e:
                failed.append(f"{job.shown}: {one_line(e)}" if job.shown not in one_line(e) else one_line(e))
                tqdm.write(f"skipped: {failed[-1]}", file=sys.stderr)
                continue
            if not found:
                tqdm.write(f"no face found in {job.shown}", file=sys.stderr)
            rows += found
    done = len(jobs) - len(failed)
    print(f"{done} of {len(jobs)} file(s) analysed, {len(rows)} face(s): {shown_path(out / 'faces.csv')}")
    whole = {str(r["file"]) for r in rows if r["found_by"] == WHOLE and r["frame"] == 0}
    if whole and detect == "auto":
        print(f"note: {len(whole)} image(s) look like faces cropped already (about square, at most {FACE_SIZED} "
              "pixels, and no face found in them or one that fills them): each was taken whole (faces.csv: "
              "found_by); pass --detect always to use only the detector, or --no-detect to take every image whole")
    elif detect == "never":
        print("note: --no-detect: each image (each video frame) was taken whole as one face, its centred square")
    return {"rows": rows, "failed": failed, "done": done}


def main(argv: list[str] | None = None) -> int:
    p = parser("emo.predict", __doc__)
    p.add_argument("paths", nargs="*", help="photos, videos or folders (none: the bundled astronaut photo)")
    p.add_argument("--out", default=None, help="where the results go (default: runs/predict/)")
    add_model_option(p)
    p.add_argument("--tta", action="store_true", help="also classify each face mirrored and average")
    p.add_argument("--detect", choices=DETECT_MODES, default="auto",
                   help="how faces are found: the detector (always); each image taken whole as one face that is "
                        "cropped already (never); or the detector, except that an image about face-sized (about "
                        f"square, at most {FACE_SIZED} pixels a side) in which it finds no face, or one that fills "
                        "most of it, is taken whole (auto)")
    p.add_argument("--no-detect", dest="detect", action="store_const", const="never",
                   help="the same as --detect never: for faces that are cropped already")
    add_runtime_options(p, runtime=True, threads=FEW_FACES_THREADS)
    a = p.parse_args(argv)

    def run() -> int:
        model = open_model(chosen_model(a), a)
        shown = (shown_path(model_path(chosen_model(a)))
                 + (" on ONNX Runtime" if getattr(model, "runtime", "") == "onnx" else ""))
        result = predict_files(a.paths, a.out or DEFAULT_OUT, model, a.tta, shown=shown, detect=a.detect)
        failed: list[str] = result["failed"]  # type: ignore[assignment]
        if failed and not result["done"]:
            raise FileNotFoundError("nothing could be analysed: " + (failed[0] if len(failed) == 1 else
                                    f"none of the {len(failed)} file(s), each named above with why"))
        if failed:
            raise ValueError(f"{len(failed)} of {len(failed) + result['done']} file(s) could not be analysed "  # type: ignore[operator]
                             "(each named above); the others' results are in faces.csv")
        return 0
    return run_command(run, a.threads)


if __name__ == "__main__":
    sys.exit(main())
