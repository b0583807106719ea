"""Draw the pipelines: `kedro viz build`, then a screenshot of the full pipeline.

    python scripts/pipeline_picture.py [--pipeline __default__] [--out docs/pipeline.png]

`kedro viz build` writes a static Kedro-Viz site of every pipeline to build/ (open
build/index.html through any static file server, e.g. `python -m http.server -d build`).
This script serves it on 127.0.0.1 for a moment and saves a picture of one pipeline with
Debian's headless Chromium (Selenium), for the README. Nothing is downloaded: Kedro-Viz's
JavaScript comes with the installed package (its web fonts fall back to local ones).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def build(project: Path) -> Path:
    kedro = Path(sys.executable).parent / "kedro"
    subprocess.run([str(kedro), "viz", "build"], cwd=project, check=True)
    return project / "build"


def screenshot(site: Path, pipeline: str, out: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory() as profile:
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--window-size=1800,1300",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            port = server.server_address[1]
            driver.get(f"http://127.0.0.1:{port}/?pipeline_id={pipeline}")
            WebDriverWait(driver, 60).until(
                lambda d: len(d.find_elements(By.CSS_SELECTOR, ".pipeline-node")) > 5
            )
            # switch off the feature tour that covers part of the flowchart, then reload
            driver.execute_script(
                "const s = JSON.parse(localStorage.getItem('KedroViz') || '{}');"
                "s.showFeatureHints = false;"
                "localStorage.setItem('KedroViz', JSON.stringify(s));"
            )
            driver.refresh()
            WebDriverWait(driver, 60).until(
                lambda d: len(d.find_elements(By.CSS_SELECTOR, ".pipeline-node")) > 5
            )
            time.sleep(2.0)  # let the layout settle
            out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(out))
        finally:
            driver.quit()
            server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="__default__")
    parser.add_argument("--out", default=str(ROOT / "docs" / "pipeline.png"))
    args = parser.parse_args()
    site = build(ROOT)
    screenshot(site, args.pipeline, Path(args.out))
    sys.stdout.write(f"{args.out}\n")


if __name__ == "__main__":
    main()
