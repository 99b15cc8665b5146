"""AI agents (the MCP server's callers): which tools a key may see and call, and what every call
leaves behind (an audit row and a usage row). The MCP front end (web/mcp) parses and renders; these
rules are here so the tool list, the refusal and the record agree with the use cases they front."""
