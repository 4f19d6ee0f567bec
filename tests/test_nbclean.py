import json

from emo.nbclean import NOTE, TAG, main, strip_faces
from tests.conftest import ROOT


def test_strip_faces_keeps_text_and_drops_images_of_tagged_cells(tmp_path):
    image = {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": ["<Figure>"]}, "metadata": {}}
    text = {"output_type": "stream", "name": "stdout", "text": ["pixel mean 0.508\n"]}
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": [TAG]}, "outputs": [text, image], "source": []},
                    {"cell_type": "code", "metadata": {}, "outputs": [image], "source": []}], "metadata": {}}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    assert main([str(path)]) == 0
    cells = json.loads(path.read_text())["cells"]
    assert cells[0]["outputs"][0] == text and cells[0]["outputs"][1]["text"] == [NOTE]
    assert cells[1]["outputs"] == [image]  # untagged cells keep their figures
    assert strip_faces(json.loads(path.read_text())) == 0  # idempotent


def test_committed_notebooks_hold_no_fer2013_faces():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if TAG in cell.get("metadata", {}).get("tags", []):
                kinds = {k for o in cell.get("outputs", []) for k in o.get("data", {})}
                assert not any(k.startswith("image/") for k in kinds), f"{path.name}: run python -m emo.nbclean"
