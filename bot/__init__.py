"""datadesk bot: the chat channel. It holds conversation state and talks to the backend over HTTP."""
