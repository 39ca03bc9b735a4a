"""Stand-ins for the systems datadesk talks to, served over real HTTP/SMTP on loopback.

``botapi`` is Telegram's Bot API; ``sms_sink`` an SMS gateway; ``smtp`` a mail
server. Tests drive the real code through them and assert on what arrived.
"""
