"""``--coverage-html DIR``: the flow diagram with the arrows a suite took and those it never took.

The drawing is `ivr.states.diagram`'s Mermaid chart, rendered in the browser by the Mermaid copy
the trainer console already ships, so the page works offline and without Graphviz.
"""

from __future__ import annotations

import html
import shutil
from importlib.resources import as_file, files
from typing import TYPE_CHECKING, Final

from ivr.replay.coverage import CATEGORIES
from ivr.states.diagram import mermaid

if TYPE_CHECKING:
    from pathlib import Path

    from ivr.replay.coverage import Coverage

__all__ = ["write_html"]

_STATIC: Final = ("mermaid.min.js", "mermaid.LICENSE")

_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ivr replay coverage</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 2em; color: #102027; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #b0bec5; padding: 4px 10px; text-align: left; }}
.legend span {{ display: inline-block; width: 2em; height: 4px; vertical-align: middle; margin: 0 4px 0 12px; }}
</style>
</head>
<body>
<h1>Replay coverage</h1>
<table>
<tr><th>items</th><th>covered</th><th>total</th></tr>
{figures}
</table>
<h2>The flow</h2>
<p class="legend"><span style="background:#2e7d32"></span>an arrow some call took
<span style="background:#c62828"></span>an arrow no call took</p>
<pre class="mermaid">
{diagram}</pre>
{missing}
<script src="mermaid.min.js"></script>
<script>mermaid.initialize({{ startOnLoad: true, securityLevel: "strict" }});</script>
</body>
</html>
"""


def write_html(coverage: Coverage, folder: Path) -> Path:
    """Write ``index.html`` (and the Mermaid script it loads) into ``folder``; return the page's path."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = []
    missing = []
    for name in CATEGORIES:
        summary = coverage.category(name).to_json()
        figures.append(f"<tr><td>{name}</td><td>{summary['covered']}</td><td>{summary['total']}</td></tr>")
        if summary["missing"]:
            items = "".join(f"<li>{html.escape(item)}</li>" for item in summary["missing"])
            missing.append(f"<h2>Never reached: {name}</h2>\n<ul>{items}</ul>")
    page = _PAGE.format(
        figures="\n".join(figures),
        diagram=html.escape(mermaid(covered=coverage.walked)),
        missing="\n".join(missing),
    )
    static = files("ivr") / "web" / "static"
    for name in _STATIC:
        with as_file(static / name) as source:
            shutil.copyfile(source, folder / name)
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
