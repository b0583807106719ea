"""``python -m ai_trade_bot`` is the ``ai-trade-bot`` command (see ``ai_trade_bot.commands``)."""

from ai_trade_bot.commands import main

if __name__ == "__main__":
    main()
