"""What the browser tests share: the kernel-ready check, the pane's selector, and a way
to run code in the notebook's own kernel."""

from __future__ import annotations

import json
import urllib.request

from jupyter_client import BlockingKernelClient

KERNEL_READY = """() => {
  const w = window.jupyterapp?.shell?.currentWidget;
  const k = w?.sessionContext?.session?.kernel;
  return !!k && k.status === 'idle' && k.connectionStatus === 'connected';
}"""
PANE = ".armillary-dock .armillary-pane"


def kernel_eval(lab, code: str) -> str:
    """Run ``code`` in the notebook's own kernel and return what it printed."""
    with urllib.request.urlopen(f"{lab.url}/api/sessions?token={lab.token}") as r:
        sessions = json.load(r)
    (kernel_id,) = {s["kernel"]["id"] for s in sessions}
    client = BlockingKernelClient()
    client.load_connection_file(str(lab.runtime / f"kernel-{kernel_id}.json"))
    client.start_channels()
    try:
        out: list[str] = []
        reply = client.execute_interactive(
            code, timeout=60, output_hook=lambda m: out.append(m["content"].get("text", ""))
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        return "".join(out)
    finally:
        client.stop_channels()


def run_notebook(page, lab, name: str, workspace: str | None = None) -> None:
    """Open notebook ``name`` (in a workspace of its own, if named), run every cell, and
    wait until the pane shows a source and the kernel is idle again."""
    where = f"workspaces/{workspace}/tree" if workspace else "tree"
    page.goto(f"{lab.url}/lab/{where}/{name}?token={lab.token}")
    page.wait_for_function(KERNEL_READY, timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(f"{PANE}[data-candidate]:not([data-candidate=''])", timeout=180_000)
    page.wait_for_function(KERNEL_READY, timeout=180_000)
