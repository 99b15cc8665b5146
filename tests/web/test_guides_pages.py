"""The developer guides at /docs/guides (web/guides.py): every sample on a page is its file's text, every
guide has each step in Python, Node.js and PHP, and the pages hold no code that is not a file the
e2e tests run (tests/e2e/test_guides.py)."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from markdown_it import MarkdownIt

from sim.daraja.app import OUTCOMES
from tests.support.guides import CODE, GUIDES, LANGS, magic_endings, magic_table, program
from web.guides import GuideError, install_guides, list_guides, read_sample

SLUGS = [
    "accept-a-payment",
    "receive-and-verify-webhooks",
    "errors-retries-and-idempotency",
    "test-mode-magic-numbers",
    "use-lipapush-from-an-ai-agent",
]
# The REST API guides show every step in each language; the AI-agent guide's program uses the official
# MCP SDK, which is Python's (tests/e2e/test_guide_mcp.py runs it and checks the rest of that guide).
EVERY_LANGUAGE = SLUGS[:4]


@pytest.fixture
async def docs() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI(description="The API.")
    install_guides(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://docs") as c:
        yield c


def include_fences(path: Path) -> list[list[str]]:
    """Each ```include fence of a guide: its lines (code/<lang>/<file>[#region])."""
    tokens = MarkdownIt("commonmark").enable("table").parse(path.read_text(encoding="utf-8"))
    return [t.content.split() for t in tokens if t.type == "fence" and t.info.strip() == "include"]


class TestTheGuidesThemselves:
    def test_the_index_lists_the_guides_in_order(self) -> None:
        assert [g.slug for g in list_guides(GUIDES)] == SLUGS
        assert [g.title for g in list_guides(GUIDES)] == [
            "Accept a payment",
            "Receive and verify webhooks",
            "Errors, retries and idempotency",
            "Test mode magic numbers",
            "Use lipapush from an AI agent",
        ]
        assert sorted(p.stem for p in GUIDES.glob("*.md") if p.name != "README.md") == sorted(SLUGS)

    def test_code_is_only_ever_an_include(self) -> None:
        for path in GUIDES.glob("*.md"):
            tokens = MarkdownIt("commonmark").enable("table").parse(path.read_text(encoding="utf-8"))
            for t in tokens:
                assert t.type != "code_block", f"{path.name}: indented code; include a file instead"
                if t.type == "fence":
                    assert t.info.strip() == "include", (
                        f"{path.name}: ```{t.info} block; include a file instead"
                    )

    @pytest.mark.parametrize("slug", EVERY_LANGUAGE)
    def test_every_step_is_shown_in_python_node_and_php(self, slug: str) -> None:
        fences = include_fences(GUIDES / f"{slug}.md")
        assert len(fences) >= 2, slug
        for lines in fences:
            assert [line.split("/")[1] for line in lines] == list(LANGS), lines
            # The same step: the same region name (or the whole file) in each language.
            assert len({line.partition("#")[2] for line in lines}) == 1, lines
            for line in lines:
                assert read_sample(GUIDES, line).code.strip(), line

    def test_every_program_is_shown_in_some_guide(self) -> None:
        shown = {
            line.partition("#")[0]
            for path in GUIDES.glob("*.md")
            for lines in include_fences(path)
            for line in lines
        }
        files = {str(p.relative_to(GUIDES)) for p in CODE.rglob("*") if p.is_file()}
        assert files == shown

    def test_the_magic_number_table_is_the_simulators(self) -> None:
        table = magic_table()
        assert set(table) == set(OUTCOMES) | {"0111"}
        assert "0111" not in OUTCOMES  # the "any other" row really is an ordinary number
        for lang in LANGS:
            assert magic_endings(program(lang, "magic_numbers")) == list(table), lang


class TestRegions:
    def test_a_region_is_its_lines_dedented_and_a_whole_file_loses_its_markers(self, tmp_path: Path) -> None:
        (tmp_path / "code" / "node").mkdir(parents=True)
        (tmp_path / "code" / "node" / "x.mjs").write_text(
            "const a = 1;\n// region two\nif (a) {\n  go();\n}\n// endregion\nend();\n"
        )
        assert read_sample(tmp_path, "code/node/x.mjs#two").code == "if (a) {\n  go();\n}\n"
        assert read_sample(tmp_path, "code/node/x.mjs").code == "const a = 1;\nif (a) {\n  go();\n}\nend();\n"

    @pytest.mark.parametrize(
        ("reference", "message"),
        [
            ("code/node/x.mjs#three", "x.mjs has no `region three`"),
            ("code/node/y.mjs", "no file"),
            ("code/node/x.py", "with the language's own extension"),
            ("code/ruby/x.rb", "expected code/<python|node|php>/<file>[#region]"),
            ("code/node/../../x.mjs", "expected code/"),
        ],
    )
    def test_a_wrong_include_names_the_problem(self, tmp_path: Path, reference: str, message: str) -> None:
        (tmp_path / "code" / "node").mkdir(parents=True)
        (tmp_path / "code" / "node" / "x.mjs").write_text("// region two\nx();\n// endregion\n")
        with pytest.raises(GuideError, match=re.escape(message)):
            read_sample(tmp_path, reference)


class TestServedPages:
    async def test_the_index_links_every_guide(self, docs: httpx.AsyncClient) -> None:
        r = await docs.get("/docs/guides")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert '<h1 id="developer-guides">Developer guides</h1>' in r.text
        for slug in SLUGS:
            assert f'href="/docs/guides/{slug}"' in r.text
        assert 'href="/static/guides.css"' in r.text
        assert not re.search(r'(src|href)="https?://', r.text)  # nothing from elsewhere, no CDN

    @pytest.mark.parametrize("slug", SLUGS)
    async def test_a_guide_shows_each_included_file_as_it_is_now(
        self, docs: httpx.AsyncClient, slug: str
    ) -> None:
        r = await docs.get(f"/docs/guides/{slug}")
        assert r.status_code == 200
        for lines in include_fences(GUIDES / f"{slug}.md"):
            for line in lines:
                sample = read_sample(GUIDES, line)
                assert html.escape(sample.code) in r.text, line
                assert f'href="/docs/guides/code/{sample.lang}/{sample.name}"' in r.text
        assert "```include" not in r.text
        assert not re.search(r"(#|//) (region \w+|endregion)", r.text)  # markers are not shown

    async def test_one_language_at_a_time(self, docs: httpx.AsyncClient) -> None:
        everything = (await docs.get("/docs/guides/accept-a-payment")).text
        php = (await docs.get("/docs/guides/accept-a-payment", params={"lang": "php"})).text
        assert everything.count('data-lang="python"') == everything.count('data-lang="php"') >= 4
        assert php.count('data-lang="php"') == everything.count('data-lang="php"')
        assert 'data-lang="python"' not in php and 'data-lang="node"' not in php
        assert '<a href="/docs/guides/accept-a-payment?lang=php" aria-current="page">PHP</a>' in php
        # A language we do not have shows them all rather than an empty page.
        assert (await docs.get("/docs/guides/accept-a-payment", params={"lang": "cobol"})).text == everything

    async def test_links_between_guides_point_at_the_served_pages(self, docs: httpx.AsyncClient) -> None:
        r = await docs.get("/docs/guides/accept-a-payment")
        assert 'href="/docs/guides/receive-and-verify-webhooks"' in r.text
        assert '.md"' not in r.text

    async def test_the_raw_program_is_the_file(self, docs: httpx.AsyncClient) -> None:
        r = await docs.get("/docs/guides/code/php/verify_webhook.php")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert r.text == (CODE / "php" / "verify_webhook.php").read_text(encoding="utf-8")
        for path in (
            "/docs/guides/code/php/nothing.php",
            "/docs/guides/code/ruby/verify_webhook.rb",
            "/docs/guides/code/php/verify_webhook.py",
            "/docs/guides/code/php/.env",
        ):
            r = await docs.get(path)
            assert r.status_code == 404, path
            assert "No guide program" in r.text
        # An escaped slash is decoded before routing: no route, so nothing is read.
        r = await docs.get("/docs/guides/code/php/..%2F..%2F..%2Fpyproject.toml")
        assert r.status_code == 404 and "lipapush" not in r.text

    async def test_an_unknown_guide_is_404(self, docs: httpx.AsyncClient) -> None:
        r = await docs.get("/docs/guides/refunds")
        assert r.status_code == 404
        assert "No guide at /docs/guides/refunds: the list is at /docs/guides." in r.text

    async def test_the_api_description_links_the_guides(self, docs: httpx.AsyncClient) -> None:
        info = (await docs.get("/openapi.json")).json()["info"]
        assert info["description"] == (
            "The API.\n\nStep-by-step guides with runnable Python, Node.js and PHP: "
            "[Developer guides](docs/guides)."
        )
