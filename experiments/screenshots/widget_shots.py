"""Screenshots of the notebook widget (issue 32 item 6, refreshed for issue 45): JupyterLab in headless Chromium runs widget.ipynb,
and each widget's output is photographed into results/screenshots/.

Needs Debian's chromium and Playwright (which drives it; no browser download):

    sudo apt-get install chromium && python3 -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    /tmp/pw/bin/python experiments/screenshots/widget_shots.py .venv/bin/jupyter
"""

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "results" / "screenshots"
PORT = 8899


def main(jupyter: str) -> None:
    notebook = Path(__file__).with_name("widget.ipynb")
    original = notebook.read_bytes()  # JupyterLab saves what it ran: put the clean notebook back afterwards
    lab = subprocess.Popen([jupyter, "lab", "--no-browser", f"--port={PORT}", "--IdentityProvider.token=",
                            "--ServerApp.password=", f"--ServerApp.root_dir={ROOT}", "--allow-root"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):  # until the server answers
            try:
                urllib.request.urlopen(f"http://localhost:{PORT}/api", timeout=2)
                break
            except OSError:
                time.sleep(1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 2600})  # (tall: the group's panel lists 5 faces)
            page.goto(f"http://localhost:{PORT}/lab/tree/experiments/screenshots/widget.ipynb")
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            time.sleep(3)
            kernel = page.locator(".jp-Dialog button:has-text('Select')")  # "Select Kernel", where it asks
            if kernel.count():
                kernel.first.click()
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
            page.click("text=Run", timeout=30_000)
            page.click("text=Run All Cells", timeout=30_000)
            try:
                page.wait_for_function("document.querySelectorAll('.widget-image').length >= 3", timeout=180_000)
            except Exception:
                page.screenshot(path="/tmp/widget_shots_failed.png")
                raise
            time.sleep(3)
            news = page.locator(".jp-toast-button:has-text('No')")  # JupyterLab's "news?" question
            if news.count():
                news.first.click()
                time.sleep(1)
            OUT.mkdir(parents=True, exist_ok=True)
            for k, name in enumerate(("widget_photo", "widget_group", "widget_pair")):
                box = page.locator(".jp-OutputArea-output .widget-vbox").nth(k)
                box.scroll_into_view_if_needed()
                box.screenshot(path=str(OUT / f"{name}.jpg"), type="jpeg", quality=88)
                print(OUT / f"{name}.jpg")
            browser.close()
    finally:
        lab.terminate()
        lab.wait()
        notebook.write_bytes(original)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "jupyter")
