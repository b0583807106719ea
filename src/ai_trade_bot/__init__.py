"""ai_trade_bot"""

__version__ = "0.1"
