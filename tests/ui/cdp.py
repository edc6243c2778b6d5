"""A headless Chromium driven over the Chrome DevTools Protocol, with no client library.

`websockets` comes with the webserver (uvicorn[standard]); a browser driver such as
selenium would be one more dependency for the few commands these tests need.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # CI containers run as root, where the sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",  # small /dev/shm in containers crashes tabs
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--disable-breakpad",  # no crash-report handler outliving the browser
    "--remote-debugging-port=0",  # the browser picks a free port and writes it down
)


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, binary: str, profile_dir: Path, *, width: int = 1600, height: int = 1000) -> None:
        self.profile_dir = Path(profile_dir)
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile_dir}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            # Its own process group, so that closing it also ends its helper processes.
            start_new_session=True,
        )
        self._ids = itertools.count(1)
        try:
            port = self._wait_for_port(timeout=30)
            self.socket = connect(self._page_socket_url(port), max_size=None, open_timeout=30)
            self.call("Page.enable")
            self.call("Runtime.enable")
            self.call("Emulation.setDeviceMetricsOverride",
                      width=width, height=height, deviceScaleFactor=1, mobile=False)
        except BaseException:
            self._stop(signal.SIGKILL)
            raise

    def _wait_for_port(self, timeout: float) -> int:
        marker = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker.is_file():
                first_line = marker.read_text().split("\n", 1)[0].strip()
                if first_line.isdigit():
                    return int(first_line)
            if self.process.poll() is not None:
                raise BrowserError(f"chromium exited: {self.process.stderr.read()[-2000:]}")
            time.sleep(0.1)
        raise BrowserError("chromium did not open its DevTools port")

    @staticmethod
    def _page_socket_url(port: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.loads(response.read())
        pages = [t for t in targets if t.get("type") == "page"]
        if not pages:
            raise BrowserError(f"no page target among {targets}")
        return pages[0]["webSocketDebuggerUrl"]

    def call(self, method: str, **params) -> dict:
        """Send one command and return its result; events received meanwhile are dropped."""
        message_id = next(self._ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") != message_id:
                continue
            if "error" in message:
                raise BrowserError(f"{method}: {message['error']}")
            return message["result"]

    def navigate(self, url: str) -> None:
        result = self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression in the page (promises are awaited)."""
        result = self.call("Runtime.evaluate", expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float = 30, what: str = ""):
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        # While a page loads, document.body may not exist yet: that is "not yet", not an error.
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return null; }} }})()"
        while True:
            try:
                value = self.evaluate(guarded)
            except BrowserError:
                value = None  # the page's JavaScript context was replaced by a navigation
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText : ''") or ""
                raise BrowserError(f"timed out waiting for {what or expression}; page text: {text[:1500]}")
            time.sleep(0.25)

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''")

    def screenshot(self, path: Path) -> bytes:
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(png)
        return png

    def close(self) -> None:
        try:
            self.socket.close()
        finally:
            self._stop(signal.SIGTERM)

    def _stop(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
