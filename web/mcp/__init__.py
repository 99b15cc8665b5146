"""The MCP server: lipapush's tools for AI agents, over Streamable HTTP at /mcp and over stdio
(`lipapush mcp`). A front end like the others: it parses a tool call, calls one core use case as the
key's actor, and renders the result (core.agents holds which tools a key may call and what each call
records). Built on the official `mcp` SDK (MCPServer)."""
