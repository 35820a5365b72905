"""The documentation: the site (mkdocs.yml, the API reference from the docstrings) builds with
`--strict`, and every relative link of README.md and docs/**/*.md reaches an existing file and,
where it names one, an existing heading anchor."""

from __future__ import annotations

import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(r"\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXPLICIT_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def prose_lines(text: str, keep_code: bool = False) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, inline code spans removed unless `keep_code`."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line if keep_code else CODE_SPAN.sub("", line)))
    return lines


def heading_text(raw: str) -> str:
    """A heading's text as rendered: code spans' contents, links' texts, no emphasis marks."""
    text = re.sub(r"`+([^`]*)`+", r"\1", raw)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"(\*\*|__|\*)", "", text)
    return html.unescape(text)


def github_slug(text: str) -> str:
    """GitHub's anchor: lower case, punctuation other than '-' and '_' dropped, each space a '-'."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def mkdocs_slug(text: str) -> str:
    """Python-Markdown's toc anchor (the site's): punctuation dropped, runs of spaces and '-' one '-'."""
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def anchors(path: Path) -> tuple[set[str], set[str]]:
    """The anchors of a Markdown file as GitHub and as the site name them (repeats numbered)."""
    github: set[str] = set()
    site: set[str] = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8"), keep_code=True):
        if match := HEADING.match(line):
            text = heading_text(match.group(2))
            for slug, seen, sep in ((github_slug(text), github, "-"), (mkdocs_slug(text), site, "_")):
                unique, n = slug, 0
                while unique in seen:
                    n += 1
                    unique = f"{slug}{sep}{n}"
                seen.add(unique)
    explicit = set(EXPLICIT_ANCHOR.findall(path.read_text(encoding="utf-8")))
    return github | explicit, site | explicit


def relative_links(path: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        targets = INLINE_LINK.findall(line)
        if match := REFERENCE_DEFINITION.match(line):
            targets.append(match.group(1))
        found += [(number, t) for t in targets if not SCHEME.match(t) and not t.startswith("//")]
    return found


def broken_links() -> list[str]:
    broken = []
    for source in markdown_files():
        where = source.relative_to(ROOT)
        for number, link in relative_links(source):
            target, _, anchor = link.partition("#")
            path = (source.parent / target).resolve() if target else source
            if not path.exists():
                broken.append(f"{where}:{number}: {link} (no such file)")
                continue
            if anchor and path.suffix == ".md":
                github, site = anchors(path)
                if anchor not in github or anchor not in site:
                    broken.append(f"{where}:{number}: {link} (no heading with that anchor, on GitHub and on the site)")
    return broken


def test_every_relative_link_resolves():
    assert broken_links() == []


def test_the_link_check_finds_broken_links(tmp_path, monkeypatch):
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text("# A title: with, punctuation\n\n## Second `code`\n\n[ok](#a-title-with-punctuation) [ok](page.md#second-code)\n"
                    "[bad](missing.md) [bad](#nowhere) `[code](missing.md)`\n\n```\n[fenced](missing.md)\n```\n",
                    encoding="utf-8")
    (tmp_path / "README.md").write_text("[ok](docs/page.md) [web](https://example.org/x.md)\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert broken_links() == ["docs/page.md:6: missing.md (no such file)",
                              "docs/page.md:6: #nowhere (no heading with that anchor, on GitHub and on the site)"]


def test_the_docs_site_builds_strictly(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed: pip install -e '.[docs]' (the test extra includes it)")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index.html", "design/index.html", "api/index.html", "results/index.html"):
        assert (site / page).is_file(), page
    assert 'id="hypermeta.config.TrainConfig"' in (site / "api" / "index.html").read_text(encoding="utf-8")
