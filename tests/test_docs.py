"""Every Python block of README.md and docs/*.md runs as written (TF backend).

A page's blocks run in order in one fresh process, after tests/docs/preamble.py (the
user's data and models the prose takes as given). A block preceded by
`<!-- docs-test: skip (reason) -->` is not run; the reason is required and shown.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- docs-test: skip \((?P<why>.*?)\) -->\s*)?```python\n(?P<code>.*?)```",
                   re.S)

RUNNER = """
import sys, traceback
exec(compile(open(sys.argv[1]).read(), "tests/docs/preamble.py", "exec"), namespace := {})
for index, (name, code) in enumerate(BLOCKS):
    try:
        exec(compile(code, name, "exec"), namespace)
    except Exception:
        traceback.print_exc()
        sys.exit(f"FAILED: {name}")
print("ran", len(BLOCKS), "block(s)")
"""


def blocks(page):
    found = []
    for index, match in enumerate(BLOCK.finditer((ROOT / page).read_text(encoding="utf-8"))):
        found.append((f"{page} block {index}", match.group("code"), match.group("why")))
    return found


def test_every_page_has_runnable_blocks_and_skips_say_why():
    for page in PAGES:
        for name, code, why in blocks(page):
            assert why is None or len(why.strip()) > 10, name
    assert sum(len(blocks(p)) for p in PAGES) >= 15


@pytest.mark.parametrize("page", [p for p in PAGES if any(w is None for _, _, w in blocks(p))])
def test_python_blocks_run_as_written(page, tmp_path):
    pytest.importorskip("keras_hub")
    runnable = [(name, code) for name, code, why in blocks(page) if why is None]
    script = f"BLOCKS = {runnable!r}\n" + RUNNER
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, str(ROOT / "tests/docs/preamble.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=1200, env=env)
    assert done.returncode == 0, (done.stdout[-3000:] + done.stderr[-6000:])
    assert f"ran {len(runnable)} block(s)" in done.stdout
