"""Student actions in JupyterLab, driven through Playwright: open a notebook and wait for its kernel, Run All Cells,
read the error outputs. Used by ``reprolab bench`` (the α-slider latency) and tests/test_browser.py.
"""

from __future__ import annotations

import json

from reprolab.bench.jupyter_lab import NB, JupyterLab

KERNEL_READY = """() => {
  if (document.querySelector('.jp-Dialog')) return 'dialog';
  const name = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName');
  const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return !!(name && name.textContent.trim() && !/No Kernel/i.test(name.textContent)
            && ind && ind.getAttribute('data-status') === 'idle') && 'ready';
}"""


def open_notebook(page, lab: JupyterLab, relpath: str, timeout_ms: int = 180_000) -> None:
    """Open ``relpath`` (relative to the server root) in JupyterLab and wait until its kernel is up and idle.

    A "Select Kernel" dialog (JupyterLab shows it when the kernelspecs load after the notebook, on a busy
    machine) is answered with its default, the notebook's own kernel; any other dialog fails the test.
    """
    page.goto(lab.url(f"lab/tree/{relpath}") + "&reset", timeout=timeout_ms)  # reset: no tabs from before
    page.locator(f"{NB} .jp-Cell").first.wait_for(timeout=timeout_ms)
    for _ in range(3):
        if page.wait_for_function(KERNEL_READY, timeout=timeout_ms, polling=250).json_value() == "ready":
            return
        dialog = page.locator(".jp-Dialog").first
        text = dialog.inner_text()
        if "kernel" not in text.lower() or not dialog.locator(".jp-mod-accept").count():
            raise AssertionError(f"unexpected JupyterLab dialog while opening {relpath}: {text!r}")
        dialog.locator(".jp-mod-accept").first.click()
        dialog.wait_for(state="detached", timeout=30_000)
    raise AssertionError(f"{relpath}: no kernel after answering three kernel dialogs")


# tracebacks are rendered as stderr outputs (so is tqdm, hence the pattern)
ERR_OUT = '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
ERROR_RE = r"Traceback \(most recent call last\)|^\w*(Error|Exception)\b"

PROMPTS = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]
                   .map(p => p.textContent.trim())"""

RUN_FINISHED = """() => {
  const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  if (!ind || ind.getAttribute('data-status') !== 'idle') return false;
  const prompts = (%s)();
  if (!prompts.length || prompts.some(t => t.includes('*'))) return false;
  const failed = [...document.querySelectorAll(%s)].some(e => new RegExp(%s, 'm').test(e.innerText));
  return failed || prompts.every(t => /\\[\\d+\\]/.test(t));
}""" % (PROMPTS, json.dumps(ERR_OUT), json.dumps(ERROR_RE))  # noqa: UP031 (JS braces)

RUN_STARTED = """() => (%s)().some(t => /\\[(\\*|\\d+)\\]/.test(t))""" % PROMPTS  # noqa: UP031


def run_all_cells(page, timeout_ms: int) -> None:
    """Run → Run All Cells (menu), then wait until the kernel is idle and no cell is queued or running."""
    from playwright.sync_api import TimeoutError as PWTimeout

    for _ in range(3):  # a click while the page is still settling can be lost: check that cells started
        dialog = page.locator(".jp-Dialog")
        if dialog.count():
            raise AssertionError(f"unexpected JupyterLab dialog before Run All Cells: {dialog.first.inner_text()!r}")
        page.locator(f"{NB} .jp-Notebook").first.click(position={"x": 5, "y": 5})
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(RUN_STARTED, timeout=20_000, polling=250)
            break
        except PWTimeout:
            page.keyboard.press("Escape")
    try:
        page.wait_for_function(RUN_FINISHED, timeout=timeout_ms, polling=1000)
    except PWTimeout:
        prompts = page.evaluate(PROMPTS)
        raise AssertionError(
            f"Run All Cells did not finish within {timeout_ms / 1000:.0f} s; execution prompts "
            f"{prompts}; errors so far: {cell_errors(page)}"
        ) from None


def cell_errors(page) -> list[str]:
    """Text of error outputs (tracebacks) in the open notebook, last 1500 characters each."""
    return page.evaluate(
        """([sel, re]) => [...document.querySelectorAll(sel)].map(e => e.innerText)
                            .filter(t => new RegExp(re, 'm').test(t)).map(t => t.slice(-1500))""",
        [ERR_OUT, ERROR_RE],
    )


def unrun_cells(page) -> list[str]:
    """First lines of code cells without an execution count."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')]
                 .filter(c => !/\\[\\d+\\]/.test(c.querySelector('.jp-InputPrompt').textContent))
                 .map(c => c.querySelector('.jp-InputArea-editor').innerText.slice(0, 200))"""
    )
