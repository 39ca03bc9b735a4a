"""The backend's HTTP API (aiohttp): bot-facing JSON under /api/v1, the agent console under /console."""
