"""The developer guides at /docs/guides: docs/guides/*.md rendered to HTML on each request.

A guide never holds code of its own. Its samples are ```include fences naming files under
docs/guides/code/<language>/ (optionally one `# region <name>` … `# endregion` part of a file), and
the page shows those files' current text. The same files are the programs tests/e2e/test_guides.py
runs against a real `lipapush serve`, so a page cannot show code that does not work.

The guides stay plain Markdown that reads well on a code host too (an include fence there shows the
file names); README.md is the index, and the order of its links is the order of the guides.
"""

from __future__ import annotations

import html
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from markdown_it import MarkdownIt

from web.panel.templating import render

GUIDES_URL = "/docs/guides"
INDEX = "README.md"
# Where the guides live: the checkout this module belongs to (`pip install -e`, `lipapush serve` from
# source), else docs/guides under the working directory (an image that copies docs/ beside its install).
CANDIDATE_DIRS = (Path(__file__).resolve().parents[1] / "docs" / "guides", Path("docs") / "guides")

LANGUAGES = {"python": "Python", "node": "Node.js", "php": "PHP"}
EXTENSIONS = {"python": ".py", "node": ".mjs", "php": ".php"}
_INCLUDE = re.compile(r"^code/(?P<lang>[a-z]+)/(?P<name>[a-z0-9_]+\.[a-z]+)(?:#(?P<region>[a-z0-9_]+))?$")
# `# region push` / `// region push` … `# endregion`: a part of a file a guide can show on its own.
_MARKER = re.compile(r"^\s*(?:#|//)\s*(?:region\s+(?P<name>[a-z0-9_]+)|endregion)\s*$")
_GUIDE_LINK = re.compile(r"^(?P<slug>[a-z0-9-]+)\.md(?P<anchor>#[\w-]+)?$")


class GuideError(ValueError):
    """A guide names a file or region that does not exist: fix the guide (the tests render them all)."""


@dataclass(frozen=True, slots=True)
class Guide:
    slug: str
    title: str
    path: Path


@dataclass(frozen=True, slots=True)
class Sample:
    lang: str
    name: str
    region: str | None
    code: str


def guides_dir() -> Path | None:
    return next((d for d in CANDIDATE_DIRS if (d / INDEX).is_file()), None)


def _markdown() -> MarkdownIt:
    # Raw HTML in a guide is shown as text, not passed through: the pages carry nothing but Markdown.
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def _title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return fallback


def list_guides(directory: Path) -> list[Guide]:
    """The guides in the order the index links them."""
    slugs: list[str] = []
    for token in _markdown().parse((directory / INDEX).read_text(encoding="utf-8")):
        for child in token.children or []:
            if child.type == "link_open" and (match := _GUIDE_LINK.match(str(child.attrGet("href")))):
                slugs.append(match["slug"])
    found: list[Guide] = []
    for slug in dict.fromkeys(slugs):
        path = directory / f"{slug}.md"
        if path.is_file():
            found.append(Guide(slug, _title(path.read_text(encoding="utf-8"), slug), path))
    return found


def _strip_markers(lines: list[str]) -> str:
    kept = [line for line in lines if not _MARKER.match(line)]
    text = textwrap.dedent("\n".join(kept)).strip("\n")
    return re.sub(r"\n{4,}", "\n\n\n", text) + "\n"  # markers removed leave no gaps wider than PEP 8's


def _reference(directory: Path, reference: str) -> tuple[re.Match[str], Path]:
    match = _INCLUDE.match(reference.strip())
    if not match or match["lang"] not in LANGUAGES or not match["name"].endswith(EXTENSIONS[match["lang"]]):
        raise GuideError(
            f"include {reference!r}: expected code/<{'|'.join(LANGUAGES)}>/<file>[#region] "
            "with the language's own extension"
        )
    path = directory / "code" / match["lang"] / match["name"]
    if not path.is_file():
        raise GuideError(f"include {reference!r}: no file {path}")
    return match, path


def read_sample(directory: Path, reference: str) -> Sample:
    """The code an include line names: a whole file, or one region of it (markers left out)."""
    match, path = _reference(directory, reference)
    lines = path.read_text(encoding="utf-8").splitlines()
    region = match["region"]
    if region is None:
        return Sample(match["lang"], match["name"], None, _strip_markers(lines))
    start = next(
        (i for i, line in enumerate(lines) if (m := _MARKER.match(line)) and m["name"] == region), None
    )
    if start is None:
        raise GuideError(f"include {reference!r}: {match['name']} has no `region {region}`")
    end = next((i for i in range(start + 1, len(lines)) if _MARKER.match(lines[i])), len(lines))
    return Sample(match["lang"], match["name"], region, _strip_markers(lines[start + 1 : end]))


def _sample_html(sample: Sample, root: str) -> str:
    part = f" · {sample.region}" if sample.region else ""
    href = f"{root}{GUIDES_URL}/code/{sample.lang}/{sample.name}"
    return (
        f'<figure class="sample" data-lang="{sample.lang}">'
        f'<figcaption><span class="lang">{LANGUAGES[sample.lang]}</span> '
        f'<a href="{html.escape(href)}">{html.escape(sample.name)}</a>{html.escape(part)}</figcaption>'
        f'<pre class="code"><code class="language-{sample.lang}">{html.escape(sample.code)}</code></pre>'
        "</figure>\n"
    )


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _rewrite_link(href: str, root: str) -> str:
    """Links between guides and to code files, as the Markdown has them for a code host, become the
    served pages' URLs; anything else (absolute URLs, anchors) is left alone."""
    if href == INDEX:
        return f"{root}{GUIDES_URL}"
    if match := _GUIDE_LINK.match(href):
        return f"{root}{GUIDES_URL}/{match['slug']}{match['anchor'] or ''}"
    if _INCLUDE.match(href) and "#" not in href:
        return f"{root}{GUIDES_URL}/{href}"
    return href


def render_markdown(directory: Path, text: str, *, lang: str | None = None, root: str = "") -> str:
    """A guide's HTML: includes read from their files (only `lang`'s when given), headings with ids,
    links pointing at the served pages."""
    md = _markdown()
    tokens = md.parse(text)
    for i, token in enumerate(tokens):
        if token.type == "fence" and token.info.strip() == "include":
            samples = [read_sample(directory, line) for line in token.content.splitlines() if line.strip()]
            # A step only one language shows (the AI-agent guide's MCP SDK is Python's) stays shown
            # whichever language the reader picked: an empty step would read as a broken page.
            shown = [s for s in samples if lang is None or s.lang == lang] or samples
            token.type, token.content = "html_block", "".join(_sample_html(s, root) for s in shown)
        elif token.type == "heading_open" and i + 1 < len(tokens):
            token.attrSet("id", _anchor(tokens[i + 1].content))
        for child in token.children or []:
            if child.type == "link_open":
                child.attrSet("href", _rewrite_link(str(child.attrGet("href") or ""), root))
    return str(md.renderer.render(tokens, md.options, {}))


def _root(request: Request) -> str:
    # root_path: behind a proxy that mounts the app under a prefix, links must carry it.
    return str(request.scope.get("root_path", "")).rstrip("/")


def install_guides(app: FastAPI) -> None:
    """/docs/guides, /docs/guides/{slug} and /docs/guides/code/{lang}/{name} (the raw files), and a
    link to the guides in the API description /docs shows."""
    app.description = (
        f"{app.description}\n\n" if app.description else ""
    ) + "Step-by-step guides with runnable Python, Node.js and PHP: [Developer guides](docs/guides)."

    def page(request: Request, *, title: str, body: str, current: str | None, status: int = 200) -> Response:
        directory = guides_dir()
        lang = request.query_params.get("lang")
        return render(
            request,
            "guides/page.html",
            {
                "title": title,
                "body": body,
                "current": current,
                "guides": list_guides(directory) if directory else [],
                "languages": LANGUAGES,
                "lang": lang if lang in LANGUAGES else None,
                "root": _root(request),
            },
            status=status,
        )

    def missing(request: Request, what: str) -> Response:
        return page(
            request,
            title="Not found",
            body=f"<h1>Not found</h1><p>{html.escape(what)}</p>",
            current=None,
            status=404,
        )

    # Plain functions: FastAPI runs them in its thread pool, so reading the files never blocks the loop.
    @app.get(GUIDES_URL, include_in_schema=False, response_class=HTMLResponse)
    def guides_index(request: Request) -> Response:
        directory = guides_dir()
        if directory is None:
            return missing(request, "The guides are not installed with this copy of lipapush (docs/guides).")
        text = (directory / INDEX).read_text(encoding="utf-8")
        body = render_markdown(directory, text, root=_root(request))
        return page(request, title=_title(text, "Developer guides"), body=body, current=None)

    @app.get(GUIDES_URL + "/{slug}", include_in_schema=False, response_class=HTMLResponse)
    def guide(request: Request, slug: str) -> Response:
        directory = guides_dir()
        found = next((g for g in list_guides(directory) if g.slug == slug), None) if directory else None
        if directory is None or found is None:
            return missing(request, f"No guide at {GUIDES_URL}/{slug}: the list is at {GUIDES_URL}.")
        lang = request.query_params.get("lang")
        text = found.path.read_text(encoding="utf-8")
        body = render_markdown(directory, text, lang=lang if lang in LANGUAGES else None, root=_root(request))
        return page(request, title=found.title, body=body, current=found.slug)

    @app.get(GUIDES_URL + "/code/{lang}/{name}", include_in_schema=False, response_class=PlainTextResponse)
    def guide_code(request: Request, lang: str, name: str) -> Response:
        directory = guides_dir()
        try:
            if directory is None:
                raise GuideError("the guides are not installed")
            _, path = _reference(directory, f"code/{lang}/{name}")
        except GuideError:
            return missing(request, f"No guide program code/{lang}/{name}.")
        # The file exactly as the tests run it, region markers and all.
        text = path.read_text(encoding="utf-8")
        return PlainTextResponse(text, headers={"Content-Disposition": f'inline; filename="{name}"'})
