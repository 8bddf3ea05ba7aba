"""docs/mcp.md: the server built with the MCP integration is a snippet that runs, not an excerpt;
the API page documents the integration.

Issue 13 asks that the page's snippets run as pasted; ``test_snippets.py`` runs every Python
block that is not marked illustrative, and this pins that the integration's blocks are among them.
"""

from __future__ import annotations

from .test_api_reference import DOCUMENTED
from .test_snippets import EXECUTED, ROOT

PAGE = ROOT / "docs" / "mcp.md"


def test_mcp_page_builds_the_server_in_an_executed_snippet() -> None:
    executed = [block.text for block, _ in EXECUTED if block.page == PAGE]
    builds = [text for text in executed if "dcr_middleware.integrations.mcp import" in text]
    assert builds, "docs/mcp.md: the server snippet must run (not be marked illustrative)"
    assert any("DCRMiddleware(server.streamable_http_app()" in text for text in builds)
    assert any("mount_auth_routes(" in text for text in builds)
    # The continued block registers a client through the app and reads it back.
    assert any("get_client(" in text for text in executed)


def test_api_page_documents_the_mcp_integration() -> None:
    assert "dcr_middleware.integrations.mcp" in DOCUMENTED


def test_mcp_page_runs_the_sdk_client_with_a_client_metadata_url() -> None:
    executed = [block.text for block, _ in EXECUTED if block.page == PAGE]
    assert any("client_metadata_url=" in text for text in executed)
    assert any("client_id_metadata_document_supported is True" in text for text in executed)
