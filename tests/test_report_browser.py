"""The report in a real browser: headless Chromium (Debian's `chromium`, installed here when missing) renders the
default suite's report from disk; the DOM must hold the leaderboard, plots and gallery, the page must log nothing
to the console (script errors, blocked requests) and load no resource from anywhere."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from robustbench_gan.cli import main

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--host-resolver-rules=MAP * ~NOTFOUND"]

# Appended to a copy of the report: after load, list every resource the page fetched (Resource Timing).
PROBE = """<script>window.addEventListener("load", function () {
  var pre = document.createElement("pre"); pre.id = "rb-resources";
  pre.textContent = JSON.stringify(performance.getEntriesByType("resource").map(function (e) { return e.name; }));
  document.body.appendChild(pre);
});</script>"""


def _install_chromium() -> str | None:
    """Path of chromium, installing Debian's package when missing and possible (root with apt-get)."""
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=900, check=True)
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def chromium() -> str:
    path = _install_chromium()
    if path is None:
        pytest.skip("chromium is missing and cannot be installed here (needs root and apt-get)")
    return path


def browse(chromium: str, page: Path, tmp: Path, *args: str) -> tuple[str, str]:
    """Run headless Chromium on ``page``; return (stdout, stderr) with the page's console lines in stderr."""
    cmd = [chromium, *FLAGS, f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
           *args, page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


# Appended to a copy of the report: after load, how wide the leaderboard is against the room it has.
WIDTH_PROBE = """<script>window.addEventListener("load", function () {
  var w = document.querySelector("#leaderboard .table-wrap"); var pre = document.createElement("pre");
  pre.id = "rb-width"; pre.textContent = JSON.stringify([w.scrollWidth, w.clientWidth, window.innerWidth]);
  document.body.appendChild(pre);
});</script>"""


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_default_report_in_chromium(default_run, chromium, tmp_path):
    report = default_run / "index.html"
    html = report.read_text(encoding="utf-8")
    assert "default-src 'none'" in html  # the page's own CSP: any fetch would be blocked and logged
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom, err = browse(chromium, probe, tmp_path, "--dump-dom")
    assert console_lines(err) == []
    resources = json.loads(re.search(r'<pre id="rb-resources">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"'))
    assert resources == []  # images are data: URIs, CSS and JS inline: nothing is fetched
    leaderboard = re.search(r'<section id="leaderboard">(.*?)</section>', dom, re.S).group(1)
    assert leaderboard.count("<tr") == 1 + 8  # header + one row per model x defense
    assert "worst case" in leaderboard and "⚠" in leaderboard  # distillation is flagged
    for section in ("curves", "transfer", "blackbox", "flags", "gan", "gallery", "attacks", "manifest"):
        assert f'<section id="{section}"' in dom
    curves = re.search(r'<section id="curves">(.*?)</section>', dom, re.S).group(1)
    assert curves.count("data:image/png;base64,") == 2  # one figure per model
    gallery = re.search(r'<section id="gallery">(.*?)</section>', dom, re.S).group(1)
    assert gallery.count("<img") >= 8
    width = tmp_path / "width.html"
    width.write_text(html.replace("</body>", WIDTH_PROBE + "</body>"), encoding="utf-8")
    dom, _ = browse(chromium, width, tmp_path, "--window-size=1400,2400", "--dump-dom")
    scroll, client, window = json.loads(re.search(r'<pre id="rb-width">(.*?)</pre>', dom, re.S).group(1))
    assert window == 1400 and scroll <= client, (scroll, client)  # no horizontal scrolling at 1,400 px
    shot = tmp_path / "report.png"
    _, err = browse(chromium, report, tmp_path, "--window-size=1400,2400", f"--screenshot={shot}")
    assert console_lines(err) == []
    assert shot.stat().st_size > 50_000


def test_hostile_suite_name_stays_text_in_chromium(chromium, tmp_path):
    evil = "<script>alert(1)</script>"
    suite = tmp_path / "evil.toml"
    suite.write_text(f"""name = "{evil}"
[data]
dataset = "digits"
[[models]]
name = "{evil}"
arch = "logistic"
epochs = 1
[[attacks]]
name = "fgsm"
eps = [0.1]
[evaluation]
n = 50
""")
    out = tmp_path / "out"
    assert main(["-q", "run", str(suite), "--out", str(out), "--device", "cpu", "--no-cache"]) == 0
    dom, err = browse(chromium, out / "index.html", tmp_path, "--dump-dom")
    assert console_lines(err) == []
    assert "<script>alert(1)</script>" not in dom  # never parsed as an element
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>" in dom  # shown as text
