"""Marked sections of a generated Markdown report that other commands own.

``curate compare --report`` rewrites its report from the workspace; a section written by another
command (``curate train-bench --report``, e.g. the GPU recipe's estimate) sits between
``<!-- section:KEY -->`` and ``<!-- /section:KEY -->`` and is carried over on each rewrite.
"""
from __future__ import annotations

import re
from pathlib import Path

_BLOCK = re.compile(r"<!-- section:(?P<key>[\w.-]+) -->\n.*?<!-- /section:(?P=key) -->\n", re.S)


def marked_sections(text: str) -> list[str]:
    """Every marked section of ``text``, markers included, in order."""
    return [m.group(0) for m in _BLOCK.finditer(text)]


def put_section(text: str, key: str, body: str) -> str:
    """``text`` with the section ``key`` replaced by ``body`` (appended when it is not there yet)."""
    if not re.fullmatch(r"[\w.-]+", key):
        raise ValueError(f"section key {key!r}: use letters, digits, '.', '-' or '_'")
    block = f"<!-- section:{key} -->\n{body.rstrip()}\n<!-- /section:{key} -->\n"
    for m in _BLOCK.finditer(text):
        if m["key"] == key:
            return text[:m.start()] + block + text[m.end():]
    return text.rstrip() + ("\n\n" if text.strip() else "") + block


def existing_sections(path: Path) -> list[str]:
    """The marked sections of the file at ``path`` (none when it does not exist)."""
    path = Path(path)
    return marked_sections(path.read_text(encoding="utf-8")) if path.exists() else []
