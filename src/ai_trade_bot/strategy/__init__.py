"""The trading policy in one room: model outputs and market state to target positions
(:mod:`.step`), and the risk clamp every order passes (the engine's
:func:`ai_trade_bot.backtest.engine.clamp_target`, through :mod:`.risk`)."""
