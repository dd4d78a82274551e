"""Self-contained HTML for the audit report: inline CSS, base64 PNG plots and thumbnails."""
from __future__ import annotations

import base64
import html
import io
from typing import Any, Callable

import numpy as np
import pandas as pd

CSS = """
:root{--bg:#f6f7f9;--card:#fff;--ink:#1d2330;--mute:#667085;--line:#e4e7ec;--acc:#3559c7;--warn:#c4462d;--ok:#2f855a}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:var(--bg);color:var(--ink)}
header{background:#1d2330;color:#fff;padding:22px 32px}header h1{margin:0 0 4px;font-size:22px}header p{margin:0;color:#c7cdd8}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);padding:8px 32px;display:flex;gap:16px;flex-wrap:wrap}
nav a{color:var(--acc);text-decoration:none;font-weight:600}main{padding:20px 32px;max-width:1400px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin:0 0 20px}
h2{margin:0 0 12px;font-size:18px}h2 .count{font-weight:500;color:var(--mute);font-size:14px;margin-left:6px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px}
.kpi{border:1px solid var(--line);border-radius:8px;padding:10px 14px}.kpi b{display:block;font-size:22px}.kpi span{color:var(--mute)}
table{border-collapse:collapse;margin:6px 0}td,th{border-bottom:1px solid var(--line);padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}th{color:var(--mute);font-weight:600}
details{border:1px solid var(--line);border-radius:8px;margin:8px 0;background:#fcfcfd}
summary{cursor:pointer;padding:9px 12px;font-weight:600}summary .count{color:var(--mute);font-weight:500}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(128px,1fr));gap:10px;padding:6px 12px 14px}
figure{margin:0;background:#fff;border:1px solid var(--line);border-radius:8px;padding:6px;text-align:center}
figure img{width:96px;height:96px;image-rendering:auto;border-radius:4px;display:block;margin:0 auto}
figcaption{font-size:11px;color:var(--mute);margin-top:4px;word-break:break-word}figcaption b{color:var(--ink)}
.score{display:inline-block;background:#fdecea;color:var(--warn);border-radius:10px;padding:0 6px;font-weight:600}
.cluster{display:flex;gap:10px;align-items:flex-start;border-top:1px solid var(--line);padding:10px 12px;overflow-x:auto}
.cluster .meta{min-width:130px;font-size:12px;color:var(--mute)}.cluster figure{min-width:120px}
.tag{display:inline-block;border-radius:10px;padding:0 7px;font-size:11px;font-weight:600;background:#eef2ff;color:var(--acc)}
.tag.inter_class{background:#fdecea;color:var(--warn)}.tag.cross_split{background:#fff4e5;color:#b45309}.tag.drop{background:#f2f4f7;color:var(--mute)}
.plot{max-width:100%;height:auto}.muted{color:var(--mute)}.note{color:var(--mute);font-size:12px}
.grid.photos{grid-template-columns:repeat(auto-fill,minmax(300px,1fr))}.cluster figure.photo{min-width:300px}
figure.photo .media{display:flex;gap:6px;align-items:center;justify-content:center;min-height:120px}
figure.photo img.orig{width:auto;height:auto;max-width:calc(100% - 78px);max-height:256px;margin:0}
figure.photo img.crop{width:72px;height:72px;margin:0;flex:none}
.box-main{color:#00a800;font-weight:700}.box-other{color:#e02020;font-weight:700}
.warn{color:var(--warn);font-weight:600}
"""


def b64_png(data: bytes) -> str:
    """A data URI for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


class Thumbnails:
    """Base64 PNG thumbnails of pixel rows, upscaled (bicubic) so 48x48 faces are readable; cached."""

    def __init__(self, pixels: np.ndarray, *, size: int):
        self.pixels, self.size, self._cache = pixels, size, {}

    def __call__(self, row: int) -> str:
        if row not in self._cache:
            from PIL import Image

            img = Image.fromarray(np.asarray(self.pixels[row]), mode="L")
            img = img.resize((self.size, self.size), Image.BICUBIC)
            buf = io.BytesIO()
            img.save(buf, format="PNG", optimize=False)
            self._cache[row] = b64_png(buf.getvalue())
        return self._cache[row]


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def kpis(data: dict[str, Any]) -> str:
    dup = data["duplicates"]
    dec = data["decisions"]
    items = [(f"{data['images']:,}", "images"), (f"{data['flagged_images']:,}", "flagged by a check"),
             (f"{dup['images']:,}", f"in {sum(dup['counts'].values()):,} duplicate clusters"),
             (f"{dup['counts'].get('inter_class', 0):,}", "inter-class clusters"),
             (f"{dup['counts'].get('cross_split', 0):,}", "cross-split clusters"),
             (f"{dec['images']:,}", "images with a review decision"),
             (f"{data['after_images']:,}", "images after cleaning")]
    if data["oof"] and data["oof"]["accuracy"] is not None:
        items.append((f"{100 * data['oof']['accuracy']:.1f}%", "out-of-fold accuracy"))
    cards = "".join(f'<div class="kpi"><b>{v}</b><span>{esc(k)}</span></div>' for v, k in items)
    return f'<div class="kpis">{cards}</div>'


def frame_table(df: pd.DataFrame, *, total: bool = True) -> str:
    """An HTML table of a counts frame (index = first column), with a total row."""
    if total:
        df = pd.concat([df, pd.DataFrame([df.sum()], index=["total"])])
    head = "".join(f"<th>{esc(c)}</th>" for c in [df.index.name or ""] + list(df.columns))
    body = "".join("<tr><td>" + esc(idx) + "</td>" + "".join(f"<td>{int(v):,}</td>" for v in row) + "</tr>"
                   for idx, row in zip(df.index, df.to_numpy()))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def card(thumb: str, lines: list[str], *, photo: bool = False) -> str:
    """A gallery card: ``thumb`` is a crop thumbnail's data URI, or (``photo``) the photo card's media markup."""
    if photo:
        return f'<figure class="photo">{thumb}<figcaption>{"<br>".join(lines)}</figcaption></figure>'
    return f'<figure><img src="{thumb}" alt="" loading="eager"><figcaption>{"<br>".join(lines)}</figcaption></figure>'


def is_photo(thumb: Callable[[int], str], row: int) -> bool:
    """True when ``thumb`` (a :class:`curate.report.photos.PhotoThumbnails`) shows ``row`` as a photo."""
    check = getattr(thumb, "is_photo", None)
    return bool(check is not None and check(row))


def row_card(thumb: Callable[[int], str], row: int, lines: list[str]) -> str:
    """The card of manifest row ``row``: the crop thumbnail, or the photo with its face boxes."""
    if is_photo(thumb, row):
        return card(thumb.html(row), lines, photo=True)
    return card(thumb(row), lines)


def check_gallery(check: dict[str, Any], thumb: Callable[[int], str], open_: bool) -> str:
    cards = []
    for it in check["items"]:
        lines = [f'<span class="score">{it["score"]:.3f}</span> <b>{esc(it["label"])}</b> · {esc(it["split"])}']
        if it["suggested"]:
            lines.append(f"suggest: <b>{esc(it['suggested'])}</b>")
        if it["evidence"]:
            lines.append(esc(it["evidence"]))
        lines.append(f'<span class="muted">{esc(it["image_id"])}</span>')
        cards.append(row_card(thumb, it["row"], lines))
    shown = f"top {len(check['items'])} of " if check["flagged"] > len(check["items"]) else ""
    grid = "grid photos" if any(is_photo(thumb, it["row"]) for it in check["items"]) else "grid"
    body = f'<div class="{grid}">{"".join(cards)}</div>' if cards else '<p class="note" style="padding:0 12px">nothing flagged</p>'
    reason = check.get("not_judged")
    if reason:  # the check ran but could not judge: its message instead of a gallery
        body = f'<p class="warn" style="padding:0 12px">{esc(reason)}</p>'
    count = "not judged" if reason else f"{shown}{check['flagged']:,} flagged"
    return (f'<details{" open" if open_ else ""}><summary>{esc(check["check"])} '
            f'<span class="count">{count} of {check["scored"]:,} scored</span></summary>'
            f"{body}</details>")


def cluster_row(cluster: dict[str, Any], thumb: Callable[[int], str]) -> str:
    labels = sorted({m["label"] for m in cluster["members"]})
    splits = sorted({m["split"] for m in cluster["members"]})
    meta = (f'<div class="meta"><span class="tag {esc(cluster["type"])}">{esc(cluster["type"])}</span><br>'
            f'cluster {cluster["cluster_id"]} · {len(cluster["members"])} images<br>labels: {esc(", ".join(labels))}'
            f'<br>splits: {esc(", ".join(splits))}</div>')
    figs = []
    for m in cluster["members"]:
        action = m["action"]
        tag = "tag drop" if action != "keep" else "tag"
        figs.append(row_card(thumb, m["row"], [f"<b>{esc(m['label'])}</b> · {esc(m['split'])}",
                                           f'<span class="{tag}">{esc(action)}</span>'
                                           + (" ★" if m["representative"] else ""),
                                           f'<span class="muted">{esc(m["image_id"])}</span>']))
    return f'<div class="cluster">{meta}{"".join(figs)}</div>'


def runs_table(runs: list[dict[str, Any]]) -> str:
    head = "<tr><th>run</th><th>recipe</th><th>split</th><th>accuracy</th><th>macro F1</th><th>seconds</th><th>images/s</th></tr>"
    rows = []
    for r in runs:
        if "error" in r:
            rows.append(f'<tr><td>{esc(r["name"])}</td><td colspan="6" class="muted">{esc(r["error"])}</td></tr>')
            continue

        def pct(v):
            return f"{100 * float(v):.2f}%" if v is not None else "–"

        rows.append(f"<tr><td>{esc(r['name'])}</td><td>{esc(r.get('recipe'))}</td><td>{esc(r.get('split'))}</td>"
                    f"<td>{pct(r.get('accuracy'))}</td><td>{pct(r.get('macro_f1'))}</td>"
                    f"<td>{esc(r.get('seconds'))}</td><td>{esc(r.get('images_per_s'))}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def page(title: str, subtitle: str, sections: list[tuple[str, str, str, str]]) -> str:
    """The whole document; sections are (anchor, heading, count text, body html)."""
    nav = "".join(f'<a href="#{a}">{esc(h)}</a>' for a, h, _, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{esc(h)}<span class="count">{esc(c)}</span></h2>{b}</section>'
                   for a, h, c, b in sections)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>'
            f"<body><header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><nav>{nav}</nav>"
            f"<main>{body}</main></body></html>")
