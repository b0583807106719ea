"""Many symbols as one book: the portfolio risk limits (see ``limits``)."""
