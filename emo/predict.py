"""Analyse photos and videos without a display: annotated copies, one CSV row per face, emotions over time.

    python -m emo.predict                                 # the bundled astronaut photo -> runs/predict/
    python -m emo.predict photo.jpg album/ interview.mp4 --out runs/mine
    python -m emo.predict interview.mp4 --model ensemble             # or a path to a .pt / .onnx
    python -m emo.predict interview.mp4 --runtime onnx               # on ONNX Runtime (exported at start)

For each photo it writes the annotated photo; for each video the annotated video and
``<name>_emotions.png``, each emotion's probability over time (the mean over the frame's faces, smoothed
over about half a second); for all of them ``faces.csv``: one row per face found (file, frame, time,
box, label, every class's probability). A folder is searched for photos and videos. A file that cannot
be read is reported and skipped; the command fails (exit 2) only where nothing could be analysed.
"""

from __future__ import annotations

import sys
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
    open_model,
    parser,
    run_command,
)
from emo.files import (
    IMAGE_SUFFIXES,
    RUNS_DIR,
    atomic_path,
    shown_path,
    write_bytes,
    write_csv,
    write_with,
)
from emo.model import Model, load_model
from emo.pipeline import EmotionPipeline, Face
from emo.video import FrameSource, SourceError, sample_photo

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
DEFAULT_OUT = RUNS_DIR / "predict"


def media_files(paths: list[str]) -> Iterator[Path]:
    """The photos and videos that ``paths`` name: files as given, folders searched (sorted)."""
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        else:
            yield p


def face_rows(name: str, frame: int, seconds: float, faces: list[Face]) -> list[dict[str, object]]:
    return [{"file": name, "frame": frame, "time_s": round(seconds, 3), "x": f.box[0], "y": f.box[1], "w": f.box[2],
             "h": f.box[3], "label": f.label, **{c: round(float(p), 4) for c, p in zip(f.classes, f.probs)}}
            for f in faces]


def analyse_photo(pipeline: EmotionPipeline, image: np.ndarray, name: str, out: Path) -> list[dict[str, object]]:
    pipeline.reset()
    annotated, faces = pipeline(image)
    ok, jpeg = cv2.imencode(".jpg", annotated)
    if not ok:
        raise SourceError(f"the annotated copy of {name} could not be encoded as JPEG")
    write_bytes(out / f"{Path(name).stem}.jpg", jpeg.tobytes())
    return face_rows(name, 0, 0.0, faces)


def analyse_video(pipeline: EmotionPipeline, source: FrameSource, out: Path) -> list[dict[str, object]]:
    path = Path(source.source)
    fps = source.fps or 25.0
    total = int(source.cap.get(cv2.CAP_PROP_FRAME_COUNT)) if source.cap is not None else 0
    pipeline.reset()
    rows, writer = [], None
    with atomic_path(out / f"{path.stem}.avi") as tmp:
        try:
            for i, frame in enumerate(tqdm(source, total=total or None, desc=path.name, unit="frame", leave=False)):
                annotated, faces = pipeline(frame)
                if writer is None:
                    h, w = annotated.shape[:2]
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
                writer.write(annotated)
                rows += face_rows(path.name, i, i / fps, faces)
        finally:
            source.release()
            if writer is not None:
                writer.release()
        if writer is None:
            raise SourceError(f"{path} holds no frames that could be read")
    plot_emotions_over_time(rows, pipeline.model.classes, fps, out / f"{path.stem}_emotions.png", path.name)
    return rows


def plot_emotions_over_time(rows: list[dict[str, object]], classes: tuple[str, ...], fps: float, png: Path,
                            title: str) -> None:
    """Each class's probability over time: the mean over each frame's faces, smoothed over about half a second."""
    import matplotlib.pyplot as plt
    frames = sorted({int(r["frame"]) for r in rows})  # type: ignore[call-overload]
    fig, ax = plt.subplots(figsize=(9, 3.5))
    if frames:
        mean = np.array([[np.mean([float(r[c]) for r in rows if r["frame"] == f]) for c in classes]  # type: ignore[arg-type]
                         for f in frames])
        k = max(1, int(round(fps / 2)))
        smooth = np.array([np.convolve(col, np.ones(k) / k, mode="same") for col in mean.T]).T
        for j, c in enumerate(classes):
            ax.plot(np.array(frames) / fps, smooth[:, j], label=c)
        ax.legend(ncol=len(classes), fontsize=8, loc="upper center")
    ax.set(xlabel="time (s)", ylabel="probability", ylim=(0, 1.05), title=f"{title}: emotions over time")
    fig.tight_layout()
    write_with(png, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


def predict_files(paths: list[str], out: str | Path = DEFAULT_OUT, model: Model | str | Path = DEFAULT_MODEL,
                  tta: bool = False, shown: str | None = None) -> dict[str, object]:
    """Analyse ``paths`` (no paths: the bundled astronaut photo) into ``out``; returns the rows and the failures."""
    out = Path(out)
    shown = shown or (str(model) if isinstance(model, (str, Path)) else "the given model")
    model = load_model(model) if isinstance(model, (str, Path)) else model
    files = list(media_files(paths)) if paths else []
    what = f"{len(files)} file(s)" if paths else "the bundled astronaut photo"
    print(f"analysing {what} with {shown} ({len(model.classes)} classes); writing to {out}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    pipeline = EmotionPipeline(model, tta=tta)
    rows: list[dict[str, object]] = []
    failed: list[str] = []
    done = 0
    if not paths:
        rows += analyse_photo(pipeline, sample_photo(), "astronaut.png", out)
        done = 1
    for f in files:
        try:
            source = FrameSource(f, size=None)  # (its own one-line errors: missing, unreadable)
            if source.kind == "image":
                found = analyse_photo(pipeline, source.read(), f.name, out)  # type: ignore[arg-type]
            else:
                found = analyse_video(pipeline, source, out)
        except SourceError as e:
            failed.append(str(e))
            print(f"skipped: {e}", file=sys.stderr)
            continue
        done += 1
        if not found:
            print(f"no face found in {f}", file=sys.stderr)
        rows += found
    write_csv(out / "faces.csv", ["file", "frame", "time_s", "x", "y", "w", "h", "label", *model.classes], rows)
    print(f"{done} of {done + len(failed)} file(s) analysed, {len(rows)} face(s): {out / 'faces.csv'}")
    return {"rows": rows, "failed": failed, "done": done}


def main(argv: list[str] | None = None) -> int:
    p = parser("emo.predict", __doc__)
    p.add_argument("paths", nargs="*", help="photos, videos or folders (none: the bundled astronaut photo)")
    p.add_argument("--out", default=None, help="where the results go (default: runs/predict/)")
    add_model_option(p)
    p.add_argument("--tta", action="store_true", help="also classify each face mirrored and average")
    add_runtime_options(p, runtime=True, threads=FEW_FACES_THREADS)
    a = p.parse_args(argv)

    def run() -> int:
        model = open_model(chosen_model(a), a)
        shown = (shown_path(model_path(chosen_model(a)))
                 + (" on ONNX Runtime" if getattr(model, "runtime", "") == "onnx" else ""))
        result = predict_files(a.paths, a.out or DEFAULT_OUT, model, a.tta, shown=shown)
        if not result["done"]:
            raise FileNotFoundError(f"nothing could be analysed ({'; '.join(result['failed'])}): "  # type: ignore[arg-type]
                                    "pass photos, videos or folders that hold them")
        return 0
    return run_command(run, a.threads)


if __name__ == "__main__":
    sys.exit(main())
