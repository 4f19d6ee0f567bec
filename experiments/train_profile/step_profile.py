"""Where a training step's time goes on the CPU (issue 46, "profile first"): the recipe as it runs today
(augmentation, MixUp, focal loss, AdamW, One-Cycle; batch 128, 48x48, channels-last), 2 threads, torch.profiler
over STEPS steps after WARMUP, FER-2013 where imported (else generated faces). Prints the time per phase of a
step (measured with timers in a second pass) and the ops that take the most time, forward and backward.

    python experiments/train_profile/step_profile.py > experiments/train_profile/profile.txt
"""

import os
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from emo.augment import augment, mixup
from emo.losses import focal_loss
from emo.preprocess import preprocessing_of
from emo.train import TrainConfig, make_trainer

WARMUP, STEPS = 5, 30
torch.set_num_threads(2)
cfg = TrainConfig(epochs=1, limit=128 * (WARMUP + 2 * STEPS))  # (enough One-Cycle steps for both passes)
t = make_trainer(cfg, "/tmp/train_profile", "cpu", progress=False, tune=False)
model, pre, g = t.model, preprocessing_of(t.model), torch.Generator().manual_seed(0)
n_classes = len(model.classes)
print(f"# {time.strftime('%Y-%m-%d')}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
      f"{t.splits.dataset}, batch {cfg.batch_size}, load {os.getloadavg()[0]:.2f}")


def step(i: int, timings: dict | None = None) -> None:
    clock = [time.perf_counter()]

    def mark(name: str) -> None:
        clock.append(time.perf_counter())
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + clock[-1] - clock[-2]
    idx = torch.arange(i * cfg.batch_size, (i + 1) * cfg.batch_size) % len(t.train_labels)
    x = t.train_images[idx].float().div_(255.0).unsqueeze(1)
    y = t.train_labels[idx]
    x = pre.normalized(augment(x, model.input_size, g, scale=cfg.crop_scale, degrees=cfg.rotation))
    x, tgt = mixup(x, F.one_hot(y, n_classes).float(), cfg.mixup_alpha, g)
    x = x.contiguous(memory_format=torch.channels_last)
    mark("augment + MixUp")
    logits = t.net(x)
    loss = focal_loss(logits, tgt, cfg.gamma)
    mark("forward + loss")
    t.opt.zero_grad(set_to_none=True)
    loss.backward()
    mark("backward")
    t.opt.step()
    t.sched.step()
    mark("AdamW + One-Cycle")


model.train()
for i in range(WARMUP):
    step(i)
timings: dict = {}
start = time.perf_counter()
for i in range(STEPS):
    step(WARMUP + i, timings)
total = time.perf_counter() - start
print(f"\n{STEPS} steps: {1000 * total / STEPS:.0f} ms a step, {STEPS * cfg.batch_size / total:.0f} faces/s")
for name, s in timings.items():
    print(f"  {name:20s} {1000 * s / STEPS:7.1f} ms  {s / total:6.1%}")
with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
    for i in range(STEPS):
        step(WARMUP + i)
print("\nops by self CPU time (forward ops, and autograd's backward nodes as `...Backward`):")
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=45))
print("\nconvolutions, forward and backward, by input shape (N C H W; weight): which kind of conv costs what")
rows = [e for e in prof.key_averages(group_by_input_shape=True)
        if e.key in ("aten::convolution_backward", "aten::mkldnn_convolution")]
for e in sorted(rows, key=lambda e: -e.self_cpu_time_total)[:16]:
    shapes = e.input_shapes[:2] if e.key == "aten::mkldnn_convolution" else e.input_shapes[1:3]
    print(f"  {e.key:28s} {e.self_cpu_time_total / 1e3 / STEPS:7.1f} ms a step  input {shapes[0]} weight {shapes[1]}")
