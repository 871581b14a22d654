"""One self-contained HTML page: inline CSS, images as data URIs, no script and no remote resource,
so the file can be mailed, archived or opened from any folder."""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em 2em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; } .note { background: #fff6d6; padding: .5em .8em; border-left: 4px solid #e0b000; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #fdecec; } tr.other td { background: #fff8e0; }
img { max-width: 100%; border: 1px solid #eee; margin: .3em 0; }
img.grid { image-rendering: pixelated; width: min(100%, 512px); }
code { background: #f3f3f3; padding: 0 .25em; }
"""


def esc(text) -> str:
    return html.escape(str(text))


def fmt(value) -> str:
    """A number as the tables show it: 4 significant digits, integers as they are, '' for none."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


def image(png: bytes, alt: str, cls: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def _numeric(v) -> bool:
    """A number, or a number with a note after it ("0.3 (best 0.4)"): right-aligned."""
    if isinstance(v, bool):
        return False
    return isinstance(v, (int, float)) or bool(re.match(r"-?\d[\d.e+-]* \(", str(v)))


def table(headers: Sequence[str], rows: Sequence[Sequence], row_classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(f'<td class="num">{esc(fmt(v))}</td>' if _numeric(v) else f"<td>{esc(fmt(v))}</td>"
                        for v in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(title: str, subtitle: str, body: Sequence[str]) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n<h1>{esc(title)}</h1>\n<p class=\"sub\">{esc(subtitle)}</p>\n"
            + "\n".join(body) + "\n</body></html>\n")
