"""The agent console: server-rendered pages under ``/console/`` with a websocket for live updates.

| module   | does                                                              |
|----------|-------------------------------------------------------------------|
| web      | the sub-application, its guard (session, role, CSRF, origin)      |
| auth     | argon2id passwords, server-side sessions, CSRF tokens, logging in |
| login_limits | which counters a login attempt takes; device cookies        |
| limits   | atomic counters in the database (login attempts, reveals)        |
| proxies  | the client address behind trusted reverse proxies                |
| pages    | login/logout, the queue, a chat: take over, reply, reveal, hand back |
| reveal   | who may see a customer field in clear, how often; its audit entry |
| review   | the supervisors' review queue: approve, reject with a reason code |
| agents   | managing console users: the rules, one function per change, audited |
| agents_page | the supervisors' Agents page over ``agents``                  |
| password | an agent changes their own password (forced after a reset)        |
| chatview | a chat's heading, the customer's requests, notes (chat and history pages) |
| chat_actions | internal notes; supervisors reassign a chat, retry or cancel a request |
| history  | closed chats: search, read-only transcript                        |
| shift    | the queue's counts per reason and language, the oldest wait       |
| live     | the websocket: queue changes and a chat's new messages            |
| canned   | canned responses from ``canned.yaml``, translated by the catalogs |
| cli      | ``datadesk agents add|list|disable|enable|remove|reset-password|role`` |

``backend.console.web`` is listed in ``backend.api.app.ROUTE_MODULES``. The
limits are argued in ``docs/console-login-limits.md``, managing agents in
``docs/console-agents.md``.
"""
