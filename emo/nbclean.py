"""Keep FER-2013 faces out of committed notebooks.

    python -m emo.nbclean notebooks/*.ipynb

FER-2013's licence lets us show its faces to a reader who has the data, not ship them: cells tagged
``fer2013-faces`` keep their text output but lose their images, replaced by a line that says why.
Run it after executing the notebooks on FER-2013 and before committing them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from emo.files import write_text

TAG = "fer2013-faces"
NOTE = "[faces from FER-2013 are not kept in the repository: run this cell with FER-2013 imported to see them]\n"


def strip_faces(nb: dict) -> int:
    """Drop image outputs of cells tagged ``fer2013-faces``; return how many were dropped."""
    dropped = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        kept = [o for o in cell.get("outputs", []) if o.get("output_type") == "stream"]
        images = len(cell.get("outputs", [])) - len(kept)
        if images:
            kept.append({"name": "stdout", "output_type": "stream", "text": [NOTE]})
        dropped += images
        cell["outputs"] = kept
    return dropped


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m emo.nbclean NOTEBOOK.ipynb [...]", file=sys.stderr)
        return 2
    for path in map(Path, paths):
        nb = json.loads(path.read_text())
        n = strip_faces(nb)
        write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        print(f"{path}: {n} face image output(s) removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
