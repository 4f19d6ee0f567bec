"""The five lessons as committed, and as a student meets them in a fresh clone.

The committed notebooks must come from real runs (no test-mode output, every code cell executed, no error) and
give every exercise a hint and a worked answer. The default suite's nbval run skips the worked answers (their
cells are tagged ``nbval-skip``); ``-m fresh`` (run by ``.ci/run``) executes each whole lesson, answers
included, from a pristine copy of the repository's layout (no ``runs/``, nothing left by other tests), with
FER-2013 where it is imported and with generated faces only.
"""

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def text_outputs(cell: dict) -> str:
    out = []
    for o in cell.get("outputs", []):
        out.append("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def test_there_are_five_lessons():
    assert [p.name[:2] for p in LESSONS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_committed_lessons_come_from_a_real_run(path):
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "a code cell was never run: execute the whole notebook"
    assert not [c for c in code if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    printed = "\n".join(text_outputs(c) for c in code)
    assert "test mode" not in printed and "SHORT RUN" not in printed, "committed from a run under the test suite"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_exercise_has_a_hint_and_a_worked_answer_and_the_lesson_ends_with_questions(path):
    cs = cells(path)
    answers = [i for i, c in enumerate(cs) if "answer" in c.get("metadata", {}).get("tags", [])]
    assert 3 <= len(answers) <= 5
    for i in answers:
        assert cs[i]["cell_type"] == "code" and cs[i]["metadata"].get("jupyter", {}).get("source_hidden")
        prose = next("".join(c["source"]) for c in reversed(cs[:i]) if c["cell_type"] == "markdown")
        assert "<summary>Hint</summary>" in prose  # the hint, folded, just before its answer
    last = "".join(cs[-1]["source"])
    assert cs[-1]["cell_type"] == "markdown" and 5 <= last.count("<details><summary>") <= 8


@pytest.mark.fresh
@pytest.mark.parametrize("with_fer", [True, False], ids=["fer2013", "generated"])
@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_each_lesson_runs_top_to_bottom_in_a_fresh_clone(path, with_fer, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    if with_fer and not (ROOT / "data" / "fer2013.npz").exists():
        pytest.skip("FER-2013 is not imported here")
    clone = tmp_path / "clone"
    (clone / "notebooks").mkdir(parents=True)
    shutil.copy(path, clone / "notebooks" / path.name)
    for shared in ("results", "experiments"):  # read-only for the lessons: linked, not copied
        (clone / shared).symlink_to(ROOT / shared)
    data = ROOT / "data" if with_fer else tmp_path / "no-data"
    data.mkdir(exist_ok=True)
    monkeypatch.setenv("EMO_DATA_DIR", str(data))
    monkeypatch.setenv("EMO_QUICK", "1")
    nb = nbformat.read(clone / "notebooks" / path.name, as_version=4)
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(clone / "notebooks")}}).execute()
    written = {p.relative_to(clone).parts[0] for p in clone.rglob("*") if not p.is_symlink()} - {"notebooks"}
    assert written <= {"runs"}, f"a lesson wrote outside runs/: {written}"
