"""Headless Chromium: the FiftyOne App shows the sample grid; every report image decodes in the browser.

Skipped with a reason when Chromium is absent (CI installs it: ``apt-get install -y chromium``).
Servers started here are stopped by pid: the ``curate review open`` process and every
descendant (FiftyOne's server and MongoDB run in their own process groups).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from review_fixtures import review_ws  # noqa: F401 (fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install -y chromium); "
                                                          "CI installs it")]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium(args: list[str], profile: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_tree(proc: subprocess.Popen) -> None:
    """Terminate a process and all its descendants, each by pid; kill what survives."""
    import psutil

    try:
        root = psutil.Process(proc.pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=15)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def wait_http(url: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s")


def grid_tiles(png: Path) -> tuple[int, int]:
    """(textured tiles, distinct tiles) in the sample-grid area of an App screenshot."""
    from PIL import Image

    img = np.asarray(Image.open(png).convert("L"), dtype=np.float32)
    area = img[150:880, 320:1380]
    tile = 120
    stats = []
    for y in range(0, area.shape[0] - tile + 1, tile):
        for x in range(0, area.shape[1] - tile + 1, tile):
            block = area[y:y + tile, x:x + tile]
            stats.append((block.std(), block.mean()))
    textured = [(s, m) for s, m in stats if s > 25]
    distinct = len({(round(s / 4), round(m / 8)) for s, m in textured})
    return len(textured), distinct


@pytest.mark.slow
def test_app_shows_the_sample_grid(review_ws, tmp_path):
    from curate.review.dataset import dataset_name

    port = free_port()
    log = tmp_path / "app.log"
    env = {**os.environ, "FIFTYONE_DO_NOT_TRACK": "true", "CURATE_QUIET": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "curate.cli", "review", "open", "-w", str(review_ws.root),
                                 "--port", str(port), "--quiet"], stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url, timeout=240)
        deadline = time.time() + 60
        while f"App for {review_ws.root}" not in log.read_text() and time.time() < deadline:
            time.sleep(0.5)
        assert re.search(rf"FiftyOne App for .*: http://127\.0\.0\.1:{port}/", log.read_text()), log.read_text()
        shot = tmp_path / "app.png"
        result = chromium(["--window-size=1400,900", "--virtual-time-budget=15000", f"--screenshot={shot}",
                           f"{url}datasets/{dataset_name(review_ws)}"], tmp_path / "profile")
        assert shot.exists(), result.stderr[-2000:]
        keep = os.environ.get("CURATE_KEEP_SCREENSHOTS")
        if keep:
            shutil.copy(shot, Path(keep) / "app_grid.png")
        textured, distinct = grid_tiles(shot)
        assert textured >= 12 and distinct >= 8, f"no sample grid in {shot}: {textured} textured, {distinct} distinct tiles"
    finally:
        stop_tree(proc)
    assert proc.poll() is not None


CHECK_SCRIPT = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 40));
  const pre = document.createElement('pre'); pre.id = 'imgcheck';
  pre.textContent = JSON.stringify({total: imgs.length, bad: bad});
  document.body.appendChild(pre);
});</script>"""


def test_report_images_decode_in_the_browser(review_ws, tmp_path):
    from curate.report.api import report_step

    report_step(review_ws, {})
    html = review_ws.path("report/index.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", CHECK_SCRIPT + "</body>"))
    t0 = time.perf_counter()
    result = chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path / "profile")
    seconds = time.perf_counter() - t0
    found = re.search(r'<pre id="imgcheck">(.*?)</pre>', result.stdout)
    assert found, result.stderr[-2000:]
    check = json.loads(found.group(1).replace("&quot;", '"'))
    assert check["total"] == html.count("<img") > 50
    assert check["bad"] == [], f"images that did not decode: {check['bad'][:5]}"
    assert seconds < 60
    shot = tmp_path / "report.png"
    chromium(["--window-size=1300,1800", f"--screenshot={shot}", review_ws.path("report/index.html").as_uri()],
             tmp_path / "profile2")
    keep = os.environ.get("CURATE_KEEP_SCREENSHOTS")
    if keep:
        shutil.copy(shot, Path(keep) / "report.png")
    from PIL import Image

    assert np.asarray(Image.open(shot).convert("L")).std() > 20, "the report renders content, not a blank page"
