"""The report in a real browser: headless Chromium opens ``reports/index.html`` from file:// and we check what a
reader would see: every image decoded, one leaderboard row per loss x model x dataset, no console errors.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``: fd 3 in, fd 4 out),
which needs nothing beyond the browser itself: no websocket client, no browser download. Debian's ``chromium``
is installed by ``.ci/run``; outside CI the test skips (saying so) when it is absent, in CI it fails.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from faulty_plugins import faulty_losses
from PIL import Image

from lossbench.cli import main
from lossbench.results.store import Store

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
]

NAN_LOSS = faulty_losses(nan_call=8)  # registers boom and nan-later; this test trains nan-later


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(
                "Chromium is not installed but CI is set: the browser test must run in CI "
                "(apt-get install -y chromium, as .ci/run does)"
            )
        pytest.skip("Chromium is not installed (apt-get install -y chromium); the browser test is skipped outside CI")
    return path


class DevTools:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (NUL-separated JSON)."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire() -> None:  # in the child: the protocol's fixed descriptors
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=wire,
            pass_fds=(3, 4),
            close_fds=True,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._lock = threading.Condition()
        self.events: queue.Queue[dict] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            self.stderr.append(line.decode(errors="replace"))

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                break
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        self._replies[message["id"]] = message
                        self._lock.notify_all()
                else:
                    self.events.put(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._next_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    stderr = "".join(self.stderr)[-3000:]
                    raise AssertionError(f"no DevTools reply to {method}; browser stderr:\n{stderr}")
                self._lock.wait(min(left, 0.5))
            reply = self._replies.pop(self._next_id)
        if "error" in reply:
            raise AssertionError(f"DevTools {method} failed: {reply['error']}")
        return reply.get("result", {})

    def wait_for(self, method: str, session: str, seen: list[dict], timeout: float = 60) -> dict:
        """Wait for an event, keeping every event met on the way (console messages arrive meanwhile)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        raise AssertionError(f"no {method} within {timeout}s")

    def drain(self, seen: list[dict], settle: float = 0.5) -> None:
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            try:
                seen.append(self.events.get(timeout=0.1))
            except queue.Empty:
                pass

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except AssertionError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)


def console_errors(events: list[dict]) -> list[str]:
    """Console errors, uncaught exceptions and browser log errors (e.g. a file that failed to load)."""
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            words = (str(a.get("value", a.get("description"))) for a in params["args"])
            errors.append("console.error: " + " ".join(words))
        elif method == "Runtime.exceptionThrown":
            errors.append("exception: " + json.dumps(params.get("exceptionDetails", {}))[:500])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"log: {entry.get('text')} ({entry.get('url', '')})")
    return errors


CHECKS = """(() => {
  const images = Array.from(document.images);
  const rows = Array.from(document.querySelectorAll('table.leaderboard tbody tr.leaderboard-row'));
  return {
    images: images.map(i => ({src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth,
                              height: i.naturalHeight, alt: i.getAttribute('alt') || ''})),
    rows: rows.map(r => [r.dataset.dataset, r.dataset.model, r.dataset.loss]),
    runs: Array.from(document.querySelectorAll('#runs-table tbody tr.run-row'))
      .map(r => [r.dataset.runId, r.dataset.status]),
    articles: Array.from(document.querySelectorAll('article.run')).map(a => [a.dataset.runId, a.dataset.status]),
    filtered: (() => {  // the runs table's filter: only the rows of one loss stay visible
      const box = document.getElementById('run-filter');
      if (!box) return null;
      box.value = 'nan-later';
      box.dispatchEvent(new Event('input'));
      const visible = Array.from(document.querySelectorAll('#runs-table tbody tr.run-row')).filter(r => !r.hidden);
      box.value = '';
      box.dispatchEvent(new Event('input'));
      return visible.map(r => r.dataset.runId);
    })(),
    sorted: (() => {  // click "status" twice: descending text order puts "ok" first
      const th = Array.from(document.querySelectorAll('#runs-table thead th')).find(h => h.textContent === 'status');
      if (!th) return null;
      th.click(); th.click();
      return Array.from(document.querySelectorAll('#runs-table tbody tr.run-row')).map(r => r.dataset.status);
    })(),
    height: document.documentElement.scrollHeight,
    title: document.title,
  };
})()"""


def open_report(binary: str, index: Path, profile: Path, screenshot: Path) -> tuple[dict, list[str]]:
    """Load the page from file://, return what the checks script saw and the console errors; save a screenshot."""
    tools = DevTools(binary, profile)
    events: list[dict] = []
    try:
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            tools.send(f"{domain}.enable", session=session)
        tools.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        tools.send("Page.navigate", {"url": index.resolve().as_uri()}, session=session)
        tools.wait_for("Page.loadEventFired", session, events)
        tools.drain(events)
        seen = tools.send("Runtime.evaluate", {"expression": CHECKS, "returnByValue": True}, session=session)
        assert "exceptionDetails" not in seen, seen
        page = seen["result"]["value"]
        height = min(int(page["height"]), 12000)
        shot = tools.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1},
            },
            session=session,
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        tools.drain(events, 0.2)
    finally:
        tools.close()
    return page, console_errors(events)


@pytest.mark.slow
def test_report_in_headless_chromium(browser: str, tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "nan_later.py").write_text(NAN_LOSS)
    results, reports = tmp_path / "results", tmp_path / "reports"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--grid",
            "--preset",
            "smoke",
            "--steps",
            "20",
            "-l",
            "nonsaturating",
            "-l",
            "wgan-gp",
            "-l",
            "nan-later",
            "-m",
            "mlp",
            "-d",
            "ring8",
            "--seeds",
            "0",
            "--results",
            str(results),
            "--reports",
            str(reports),
            "--plugins-dir",
            str(plugins),
            "--device",
            "cpu",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    with Store.open(results, create=False) as store:
        runs = store.runs()
    combos = {tuple(r) for r in runs[["dataset", "model", "loss"]].itertuples(index=False)}
    assert set(runs["status"]) == {"ok", "diverged"}

    screenshot = tmp_path / "report-screenshot.png"
    page, errors = open_report(browser, reports / "index.html", tmp_path / "profile", screenshot)

    assert errors == [], errors
    assert page["title"] == "lossbench report"
    assert page["images"], "the report shows no image"
    broken = [image["src"] for image in page["images"] if not (image["complete"] and image["width"] > 0)]
    assert broken == [], f"images that did not decode: {broken}"
    assert all(image["alt"].strip() for image in page["images"]), "every image needs alt text"
    rows = [tuple(row) for row in page["rows"]]
    assert len(rows) == len(combos) and set(rows) == combos, rows  # one row per loss x model x dataset
    assert sorted(map(tuple, page["runs"])) == sorted(runs[["run_id", "status"]].itertuples(index=False, name=None))
    assert page["articles"] == []  # each run's section is its own page
    diverged = runs.loc[runs["status"] == "diverged", "run_id"].tolist()
    assert page["filtered"] == diverged  # the filter keeps the one nan-later run
    assert page["sorted"] == ["ok", "ok", "diverged"]
    run_page, run_errors = open_report(
        browser, reports / "runs" / f"{diverged[0]}.html", tmp_path / "profile2", tmp_path / "run-screenshot.png"
    )
    assert run_errors == [], run_errors
    assert run_page["articles"] == [[diverged[0], "diverged"]]
    assert run_page["images"] and all(i["complete"] and i["width"] > 0 for i in run_page["images"]), run_page["images"]
    with open(screenshot, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    with Image.open(screenshot) as image:
        assert image.width == 1280 and image.height >= 1000
        assert len(np.unique(np.asarray(image.convert("L")))) > 20  # a rendered page, not a blank one
    print(f"screenshot: {screenshot}")
