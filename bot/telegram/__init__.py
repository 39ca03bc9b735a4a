"""The Telegram channel: python-telegram-bot in, ``bot.channel`` events out, and back.

    app.py            TelegramChannel: builds the PTB Application, runs polling or webhook
    processor.py      per-chat ordering with a global concurrency bound
    events.py         Update → bot.channel.Event (pure)
    render.py         bot.channel.Reply → Bot API sendMessage arguments (pure)
    webhook.py        the aiohttp server Telegram POSTs updates to, secret checked
    notifications.py  long-polls the backend's outbox and delivers to chats
    limiter.py        the token's flood limit: replies before notices, chats in turn
    registry.py       the token's live bot processes (bot database) and each one's share
    inbox.py          webhook updates through the bot database: one chat, in order, once

Nothing in here knows the dialogs: every decision is ``Conversations``' job.
"""
