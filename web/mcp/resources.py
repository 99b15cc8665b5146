"""What an agent can read to learn the rules: the test-mode magic numbers and the error table."""

from __future__ import annotations

from mcp.server import MCPServer

from core.errors import LipapushError
from web.guides import guides_dir

MAGIC_URI = "lipapush://guides/test-mode-magic-numbers"
ERRORS_URI = "lipapush://errors"


def _subclasses(cls: type[LipapushError]) -> list[type[LipapushError]]:
    found: list[type[LipapushError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def error_table() -> str:
    """Every error code the tools can answer with (the REST API's, same words), with its HTTP status."""
    rows: dict[str, tuple[int, str]] = {LipapushError.code: (LipapushError.status, "Any other refusal.")}
    for cls in _subclasses(LipapushError):
        doc = " ".join((cls.__doc__ or "").split()).split(". ")[0].rstrip(".")
        rows.setdefault(cls.code, (cls.status, doc))
    lines = [
        "# lipapush errors",
        "",
        "A tool that fails answers with an error result whose text is the message and `(error: <code>)`.",
        'The message says what was wrong and what to do. Codes are the REST API\'s (`{"error": code}`).',
        "",
        "- 4xx-like codes: change the arguments (invalid_input, not_found) or the key (permission_denied),",
        "  or wait (too_many_requests: the message says how long). Never retry request_payment without",
        "  the same idempotency_key: a retry with a new key prompts the customer again.",
        "- 5xx-like codes (daraja_unavailable, service_unavailable, busy): retry later with the same",
        "  idempotency_key.",
        "",
        "| code | HTTP status | meaning |",
        "|---|---|---|",
    ]
    for code, (status, doc) in sorted(rows.items()):
        lines.append(f"| `{code}` | {status} | {doc} |")
    return "\n".join(lines) + "\n"


def magic_numbers() -> str:
    directory = guides_dir()
    page = directory / "test-mode-magic-numbers.md" if directory else None
    if page is None or not page.is_file():
        return (
            "The test-mode guide is not installed with this server. With a test key (lp_test_), phone "
            "numbers ending 0111 succeed, 1032 are cancelled, 2001 fail; the server's page "
            "/docs/guides/test-mode-magic-numbers has them all.\n"
        )
    return page.read_text(encoding="utf-8")


def register(server: MCPServer) -> None:
    server.resource(
        MAGIC_URI,
        name="test-mode-magic-numbers",
        title="Test mode: phone numbers that end each way",
        description="With a test key, the simulator answers by the phone number's last digits: which end in "
        "success, a decline, a timeout or an error.",
        mime_type="text/markdown",
    )(magic_numbers)
    server.resource(
        ERRORS_URI,
        name="errors",
        title="Error codes and what to do",
        description="Every error code a tool can answer with, its HTTP status and meaning, and when to "
        "retry.",
        mime_type="text/markdown",
    )(error_table)
