"""A real JupyterLab on 127.0.0.1 and Debian's Chromium, driven by playwright-python."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(
                "Debian's chromium is missing: .ci/test installs it (apt-get install chromium)"
            )
        pytest.skip(
            "browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
        )
    return CHROMIUM


class Lab:
    """A running ``jupyter lab`` server in its own folder, with its own runtime dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.runtime = root / ".runtime"
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = ARTIFACTS / "jupyterlab.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(self.runtime), "PYTHONUNBUFFERED": "1"}
        cmd = [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            f"--IdentityProvider.token={self.token}", "--allow-root",
            "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={self.root}",
            f"--LabApp.workspaces_dir={self.root / '.workspaces'}",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited; see {self.log}")
            try:
                urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"jupyter lab did not start in 90 s; see {self.log}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, chromium_path: Path):
    """JupyterLab serving a copy of the quickstart beside a small example catalogue."""
    from armillary.datasets import make_catalogue

    root = tmp_path_factory.mktemp("lab")
    shutil.copy(REPO / "examples" / "quickstart.ipynb", root / "quickstart.ipynb")
    make_catalogue(n=20_000, seed=1, path=root / "data" / "catalogue.fits")
    server = Lab(root)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(chromium_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=str(chromium_path),
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
            ],
        )  # fmt: skip
        yield b
        b.close()
