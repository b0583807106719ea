"""The ``ai-trade-bot`` command (also ``python -m ai_trade_bot``).

- ``ai-trade-bot live``: the live runner (paper trading unless ``--live``).
- ``ai-trade-bot serve``: the status API and dashboard over a runner's state file.
- ``ai-trade-bot status``, ``trades``, ``ledger``, ``export``: what a runner's state file
  holds (status, closed trades with P&L, the prediction ledger, CSV exports).
- ``ai-trade-bot rollback``: move the ``champion`` alias back to the previous champion.
- ``ai-trade-bot retrain``: the scheduled loop (pull, ingest, drift, retrain, gate, push).
- ``ai-trade-bot run ...``: ``kedro run`` for this project.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from ai_trade_bot.settings import PROJECT_ROOT

DEFAULT_STATE = "data/09_live/state.db"
DEFAULT_MODEL = "models:/ai_trade_bot@champion"
DEFAULT_UNIVERSE_MODEL = "models:/ai_trade_bot_universe@champion"


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` or the project's SQLite store (as conf/base/mlflow.yml)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_ROOT}/mlruns/mlflow.db"


def live_argv(*args: str, **options: object) -> list[str]:
    """The ``ai-trade-bot live`` command line for ``options`` (``replay="x.csv"`` becomes
    ``--replay x.csv``; True is a bare flag, False and None are left out), run by this
    interpreter: how tests and benchmarks start the runner."""
    argv = [sys.executable, "-m", "ai_trade_bot", "live", *args]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not None and value is not False:
            argv += [flag, str(value)]
    return argv


def project_parameters() -> dict:
    """The project's parameters as ``kedro run`` resolves them: conf/base, then
    conf/local over it (soft merge)."""
    from kedro.config import OmegaConfigLoader

    from ai_trade_bot.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(conf_source=str(PROJECT_ROOT / "conf"), **CONFIG_LOADER_ARGS)
    return dict(loader["parameters"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """ai_trade_bot: research pipelines (kedro) and the live runner."""


@main.command()
@click.option("--feed", type=click.Choice(["replay", "ccxt"]), default="replay", show_default=True)
@click.option(
    "--replay",
    "replay_source",
    default="sp500",
    show_default=True,
    help="Bundled data (sp500, eurusd) or a CSV/Parquet/Feather file to replay.",
)
@click.option("--start", default=None, help="First candle to trade (row number or date); "
              "default: after the first 80% of the replay (the rest is history).")  # fmt: skip
@click.option("--speed", type=float, default=0.0, show_default=True,
              help="Replay speed in candles per second (0: as fast as possible).")  # fmt: skip
@click.option("--model", "model_uri", default=DEFAULT_MODEL, show_default=True,
              help="An MLflow model URI or a local bundle directory.")  # fmt: skip
@click.option("--state", "state_path", default=DEFAULT_STATE, show_default=True)
@click.option("--tracking-uri", default=None, help="MLflow tracking/registry URI.")
@click.option("--exchange", default="binance", show_default=True)
@click.option("--symbol", default=None,
              help="The exchange's market (ccxt feed and real orders), e.g. BTC/USDT.")  # fmt: skip
@click.option("--timeframe", default="1h", show_default=True)
@click.option("--exchange-url", default=None, help="Point the exchange's API at another host.")
@click.option("--poll-seconds", type=float, default=5.0, show_default=True)
@click.option("--stale-after", type=float, default=120.0, show_default=True)
@click.option("--notify", "notify_urls", multiple=True, metavar="URL",
              help="Also send alerts to this Apprise URL (json://host/path, slack://..., "
              "tgram://...); configured ones: conf/local/credentials.yml "
              "notifications.urls or AI_TRADE_BOT_NOTIFY_URLS.")  # fmt: skip
@click.option("--inference-timeout", type=float, default=None,
              help="Seconds the model may take on a candle (live.inference_timeout).")  # fmt: skip
@click.option("--inference", type=click.Choice(["onnx", "torch"]), default=None,
              help="The networks' runtime (live.inference; default onnx).")  # fmt: skip
@click.option("--memory-cap-mb", type=float, default=None,
              help="Stop cleanly above this resident memory (live.memory_cap_mb).")  # fmt: skip
@click.option("--max-candles", type=int, default=None)
@click.option("--reload-check-seconds", type=float, default=30.0, show_default=True)
@click.option("--api", "with_api", is_flag=True, help="Serve the status API and dashboard too.")
@click.option("--api-bind", default="127.0.0.1", show_default=True)
@click.option("--api-port", type=int, default=8765, show_default=True)
@click.option("--fallback", type=click.Choice(["none", "rsi"]), default=None,
              help="Without a usable model: make no new entries (none, the default) or trade "
              "the RSI fallback at most evaluate.fallback.max_position of equity.")  # fmt: skip
@click.option("--max-order-notional", type=float, default=None,
              help="Cap every order at this much quote currency (live.max_order_notional; "
              "required with --live).")  # fmt: skip
@click.option("--map-symbol", "symbol_maps", multiple=True, metavar="MODEL=EXCHANGE",
              help="Let the model trained on MODEL trade the market EXCHANGE.")  # fmt: skip
@click.option("--live", "live_orders", is_flag=True,
              help="Send real orders (credentials: conf/local or the environment).")  # fmt: skip
@click.option("--confirm-ungated", is_flag=True,
              help="With --live and --fallback rsi: trade the ungated fallback without a "
              "champion.")  # fmt: skip
@click.option("--universe", is_flag=True,
              help="Paper trade the universe as one book (the universe pipeline's champion, "
              "models:/ai_trade_bot_universe@champion); --replay basket (the bundled "
              "basket), a long candles file or a folder of one file per symbol; --feed ccxt "
              "with --symbols.")  # fmt: skip
@click.option("--symbols", default=None,
              help="With --universe --feed ccxt: the markets, space-separated.")  # fmt: skip
def live(
    feed: str,
    replay_source: str,
    start: str | None,
    speed: float,
    model_uri: str,
    state_path: str,
    tracking_uri: str | None,
    exchange: str,
    symbol: str | None,
    timeframe: str,
    exchange_url: str | None,
    poll_seconds: float,
    stale_after: float,
    notify_urls: tuple[str, ...],
    inference_timeout: float | None,
    inference: str | None,
    memory_cap_mb: float | None,
    max_candles: int | None,
    reload_check_seconds: float,
    with_api: bool,
    api_bind: str,
    api_port: int,
    fallback: str | None,
    max_order_notional: float | None,
    symbol_maps: tuple[str, ...],
    live_orders: bool,
    confirm_ungated: bool,
    universe: bool,
    symbols: str | None,
) -> None:
    """Trade closed candles with the champion model; paper trading by default."""
    if universe:
        if live_orders:
            raise click.UsageError(
                "--universe trades a book on paper only: real orders for a book are not built"
            )
        _live_book(
            feed=feed, replay_source=replay_source, start=start, speed=speed,
            model_uri=None if model_uri == DEFAULT_MODEL else model_uri, state_path=state_path,
            tracking_uri=tracking_uri, exchange=exchange, symbols=symbols, timeframe=timeframe,
            exchange_url=exchange_url, poll_seconds=poll_seconds, stale_after=stale_after,
            max_candles=max_candles, with_api=with_api, api_bind=api_bind, api_port=api_port,
            reload_check_seconds=reload_check_seconds, notify_urls=notify_urls,
        )  # fmt: skip
        return
    from ai_trade_bot.errors import AiTradeBotError
    from ai_trade_bot.evaluation.settings import parse_evaluate_config
    from ai_trade_bot.live.alerts import Alerts
    from ai_trade_bot.live.broker import CcxtBroker, load_credentials, redact_logs
    from ai_trade_bot.live.config import LiveConfig, RunnerConfig
    from ai_trade_bot.live.feeds import CcxtFeed
    from ai_trade_bot.live.feeds import replay_source as make_replay
    from ai_trade_bot.live.model import ModelSource
    from ai_trade_bot.live.runner import MemoryCapError, Runner
    from ai_trade_bot.live.store import StateStore
    from ai_trade_bot.strategy.config import strategy_of

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if live_orders and feed == "replay":
        raise click.UsageError(
            "--live sends real orders, and a replay is not the market: it is refused. Use "
            "--feed ccxt with --symbol, or drop --live to paper trade the replay."
        )
    if live_orders and not symbol:
        raise click.UsageError("--live needs --symbol: the exchange market to trade")
    params = project_parameters()
    settings = LiveConfig.parse(params.get("live"))
    if max_order_notional is None:
        max_order_notional = settings.max_order_notional
    symbol_map = dict(settings.symbol_map)
    for item in symbol_maps:
        model, sep, market = item.partition("=")
        if not sep or not model or not market:
            raise click.BadParameter(f"{item!r}: expected MODEL=EXCHANGE", param_hint="map-symbol")
        symbol_map[model] = market
    credentials = {}
    if live_orders:
        credentials = load_credentials(PROJECT_ROOT / "conf" / "local")
        redact_logs(list(credentials.values()))
    if feed == "replay":
        source = make_replay(replay_source, start=start, speed=speed)
    else:
        from ai_trade_bot.data.sources import make_exchange

        client = make_exchange(exchange, api_host=exchange_url, credentials=credentials)
        source = CcxtFeed(
            client,
            symbol=symbol or "BTC/USDT",
            timeframe=timeframe,
            poll_seconds=poll_seconds,
            stale_after=stale_after,
        )
    broker = None
    if live_orders:
        from ai_trade_bot.data.sources import make_exchange

        broker = CcxtBroker(
            make_exchange(exchange, api_host=exchange_url, credentials=credentials), symbol
        )
    # One candle is a batch of one window per agent: handing it to a second thread (which
    # sleeps between candles) costs more than it saves (measured: 8.5 -> 7.9 ms a candle).
    import torch

    torch.set_num_threads(1)
    # the API process gets its token and report folder from here, before any model loads
    api = _start_api(state_path, api_bind, api_port, settings.api_hosts) if with_api else None
    store = StateStore(state_path)
    notifier = _notifier(settings, notify_urls)
    runner = Runner(
        source,
        store,
        ModelSource(model_uri, tracking_uri or default_tracking_uri()),
        RunnerConfig(
            symbol=source.symbol,
            timeframe=source.timeframe,
            mode="live" if live_orders else "paper",
            reload_check_seconds=reload_check_seconds,
            settings=strategy_of(parse_evaluate_config(params.get("evaluate") or {})),
            use_fallback=(fallback or settings.fallback) == "rsi",
            allow_ungated_live=confirm_ungated,
            symbol_map=symbol_map,
            max_order_notional=max_order_notional,
            inference_timeout=inference_timeout or settings.inference_timeout,
            memory_cap_mb=memory_cap_mb or settings.memory_cap_mb,
            inference=inference or settings.inference,
        ),
        alerts=Alerts(store, source.symbol, notifier=notifier),
        broker=broker,
    )
    stopped = "the replay ended" if feed == "replay" else "the feed ended"
    exit_code = 0
    try:
        with _sigterm_as_interrupt():
            try:
                runner.start()
            except AiTradeBotError as exc:
                raise click.ClickException(str(exc)) from exc
            runner.run(max_candles=max_candles)
    except KeyboardInterrupt:
        stopped = "stopped by a signal"
        click.echo(f"stopped; resume with the same command (state in {state_path})")
    except MemoryCapError as exc:
        stopped = f"memory cap: {exc}"
        exit_code = 3
        click.echo(f"stopped: {exc}; resume with the same command (state in {state_path})")
    finally:
        if getattr(runner, "state", None):
            runner.stop(stopped)
        store.close()
        if api is not None:
            api.terminate()
        if notifier is not None:
            notifier.close()
    if runner.latencies:
        import numpy as np

        lat = np.array(runner.latencies)
        stages = ", ".join(
            f"{name} {np.median(ms):.1f}" for name, ms in runner.stage_ms.items() if ms
        )
        click.echo(
            f"{runner.processed} candles; decision latency p50 {np.percentile(lat, 50):.1f} ms, "
            f"p99 {np.percentile(lat, 99):.1f} ms (median ms by stage: {stages}); "
            f"state in {state_path}"
        )
    if exit_code:
        sys.exit(exit_code)


def universe_candles(source: str) -> Any:
    """Long aligned candles for a book replay: ``basket`` (the bundled basket, as the
    universe pipeline ingests it), a folder or glob of one file per symbol (validated as
    ingestion does), or a long Parquet/CSV file (``timestamp, symbol, OHLCV``)."""
    import pandas as pd

    from ai_trade_bot.data.ingest import parse_ingestion_config
    from ai_trade_bot.universe.ingest import load_universe
    from ai_trade_bot.universe.panel import align, to_long

    path = Path(source)
    if source == "basket":
        config = parse_ingestion_config({"source": "bundled", "bundled": "basket"})
    elif path.is_file():
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        if "missing" in frame:
            return frame
        clean = {s: g.set_index("timestamp").drop(columns="symbol").sort_index()
                 for s, g in frame.groupby("symbol")}  # fmt: skip
        return to_long(align(clean))
    else:
        config = parse_ingestion_config({"source": "file", "path": source})
    result = load_universe(config)
    return to_long(align(result.clean))


def _live_book(**o: Any) -> None:
    """``ai-trade-bot live --universe``: the book runner (:mod:`ai_trade_bot.live.book`)."""
    import numpy as np
    import pandas as pd

    from ai_trade_bot.errors import AiTradeBotError
    from ai_trade_bot.live.book import (
        BookConfig,
        BookRunner,
        BookStore,
        MultiFeed,
        ReplayBookFeed,
        UniverseModelSource,
    )
    from ai_trade_bot.live.config import LiveConfig

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = LiveConfig.parse(project_parameters().get("live"))
    uri = o["model_uri"] or DEFAULT_UNIVERSE_MODEL
    source = UniverseModelSource(uri, o["tracking_uri"] or default_tracking_uri())
    bundle, version = None, "none"
    try:
        bundle, version = source.load()
    except Exception as exc:  # no champion yet, no registry: the book makes no new entries
        click.echo(f"no universe model at {uri} ({type(exc).__name__}: {exc}); the book makes "
                   "no new entries until one is deployed", err=True)  # fmt: skip
    if o["feed"] == "replay":
        candles = universe_candles(o["replay_source"] if o["replay_source"] != "sp500"
                                   else "basket")  # fmt: skip
        names = sorted(candles["symbol"].unique()) if bundle is None else bundle.symbols
        times = pd.DatetimeIndex(sorted(candles["timestamp"].unique()))
        start = o["start"]
        if start is None:
            first = times[int(len(times) * 0.8)]
        elif str(start).isdigit():
            first = times[int(start)]
        else:
            first = pd.Timestamp(start, tz="UTC") if pd.Timestamp(start).tzinfo is None else (
                pd.Timestamp(start))  # fmt: skip
        feed = ReplayBookFeed(candles[candles["symbol"].isin(names)], names, first,
                              speed=o["speed"])  # fmt: skip
    else:
        from ai_trade_bot.data.sources import make_exchange
        from ai_trade_bot.live.feeds import CcxtFeed

        names = (o["symbols"] or "").split() or (bundle.symbols if bundle else [])
        if not names:
            raise click.UsageError("--universe --feed ccxt needs --symbols (space-separated)")
        client = make_exchange(o["exchange"], api_host=o["exchange_url"], credentials={})
        feed = MultiFeed(
            {s: CcxtFeed(client, symbol=s, timeframe=o["timeframe"],
                         poll_seconds=o["poll_seconds"], stale_after=o["stale_after"])
             for s in names},
            bar_timeout=settings.bar_timeout,
        )  # fmt: skip
    api = (
        _start_api(o["state_path"], o["api_bind"], o["api_port"], settings.api_hosts)
        if o["with_api"]
        else None
    )
    store = BookStore(o["state_path"])
    config = BookConfig(
        bar_timeout=settings.bar_timeout, reload_check_seconds=o["reload_check_seconds"]
    )
    notifier = _notifier(settings, o["notify_urls"])
    runner = BookRunner(feed, store, bundle, config, version=version, symbols=names,
                        source=source, notifier=notifier)  # fmt: skip
    stopped = "the replay ended" if o["feed"] == "replay" else "the feed ended"
    try:
        with _sigterm_as_interrupt():
            try:
                runner.start()
            except AiTradeBotError as exc:
                raise click.ClickException(str(exc)) from exc
            runner.run(max_steps=o["max_candles"])
    except KeyboardInterrupt:
        stopped = "stopped by a signal"
        click.echo(f"stopped; resume with the same command (state in {o['state_path']})")
    finally:
        if store.book() is not None:
            runner.stop(stopped)
        store.close()
        if api is not None:
            api.terminate()
        if notifier is not None:
            notifier.close()
    if runner.latencies:
        lat = np.array(runner.latencies)
        click.echo(
            f"{runner.processed} steps of {len(runner.symbols)} symbols; step latency p50 "
            f"{np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms; state in "
            f"{o['state_path']}"
        )


def _notifier(settings: Any, urls: tuple[str, ...]) -> Any:
    """The Apprise notifier from the configured URLs and ``--notify`` (None without any)."""
    from ai_trade_bot.live.notify import notifier_from

    try:
        return notifier_from(settings.notify, urls, PROJECT_ROOT / "conf" / "local")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="live.notify") from exc


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (``kill``, a service manager) stops the runner like Ctrl-C: the same stop
    line and a clean, resumable state."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve_api(state_path: str, host: str, port: int, parent: int, options: dict) -> None:
    """The API in its own process (its requests never wait on the runner's GIL); it ends
    when the runner's process does. ``options`` (tokens, report folder, hosts) come from
    the runner's process, so the child reads nothing from its own import path."""
    import threading
    import time

    from ai_trade_bot.live.api import serve

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    serve(state_path, host=host, port=port, **options)


def _api_options(allowed_hosts: list[str]) -> dict:
    from ai_trade_bot.live.api import load_tokens

    return {
        "tokens": load_tokens(PROJECT_ROOT / "conf" / "local"),
        "drift_dir": str(PROJECT_ROOT / "data" / "08_reporting"),
        "allowed_hosts": list(allowed_hosts),
    }


def _start_api(state_path: str, host: str, port: int, allowed_hosts: list[str]):
    import multiprocessing

    options = _api_options(allowed_hosts)
    process = multiprocessing.get_context("spawn").Process(
        target=_serve_api, args=(state_path, host, port, os.getpid(), options), daemon=True
    )
    process.start()
    click.echo(
        f"status API and dashboard on http://{host}:{port}/ "
        f"(commands {'on' if options['tokens'] else 'off: no token configured'})"
    )
    return process


@main.command()
@click.option("--state", "state_path", default=DEFAULT_STATE, show_default=True)
@click.option("--bind", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
def serve(state_path: str, bind: str, port: int) -> None:
    """Serve the status API and dashboard over a runner's state file."""
    from ai_trade_bot.live.api import serve as run_server
    from ai_trade_bot.live.config import LiveConfig

    settings = LiveConfig.parse(project_parameters().get("live"))
    options = _api_options(settings.api_hosts)
    click.echo(
        f"status API and dashboard on http://{bind}:{port}/ "
        f"(commands {'on' if options['tokens'] else 'off: no token configured'})"
    )
    run_server(state_path, host=bind, port=port, **options)


# -- operator commands: what the runner's state file holds, in the terminal ------------------
_STATE_OPTION = click.option("--state", "state_path", default=DEFAULT_STATE, show_default=True)


def _operator(fn):
    """Run an operator command; a missing state file or a bad option is one clear line."""
    from ai_trade_bot.errors import AiTradeBotError

    try:
        return fn()
    except AiTradeBotError as exc:
        raise click.ClickException(str(exc)) from exc


def _table(frame: Any, empty: str) -> str:
    if frame.empty:
        return empty
    import pandas as pd

    with pd.option_context(
        "display.max_rows",
        500,
        "display.width",
        200,
        "display.max_columns",
        30,
        "display.float_format",
        "{:.6g}".format,
    ):
        return frame.to_string(index=False)


@main.command()
@_STATE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the JSON /status gives.")
def status(state_path: str, as_json: bool) -> None:
    """What /status says of each runner (and the book), in the terminal."""
    import json

    from ai_trade_bot.live.operator import status as read_status

    data = _operator(lambda: read_status(state_path))
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if not data["symbols"] and "book" not in data:
        click.echo(f"{state_path}: no runner has started")
    for row in data["symbols"]:
        halted = f" halted: {row['halted_reason']}" if row["halted"] else ""
        click.echo(
            f"{row['symbol']} {row['timeframe']} {row['mode']} {row['runner']}"
            f"{' (' + row['stop_reason'] + ')' if row['stop_reason'] else ''}: "
            f"model {row['model_version']} ({row['model_state']}); trading: {row['trading']}; "
            f"last candle {row['last_candle']}; feed {row['feed_state']}{halted}; "
            f"equity {row['equity']}; units {row['units']}"
        )
        if row["last_alert"]:
            click.echo(f"  last alert: {row['last_alert']['kind']}: {row['last_alert']['message']}")
    if "book" in data:
        book = data["book"]
        click.echo(
            f"book ({len(book['symbols'])} symbols) {book['mode']} {book['status']}: model "
            f"{book['model_version']} ({book['model_state']}); last candle "
            f"{book['last_candle']}; equity {book['equity']}"
        )


@main.command()
@_STATE_OPTION
@click.option("--symbol", default=None)
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False),
              help="Write them to this CSV file instead of printing.")  # fmt: skip
def trades(state_path: str, symbol: str | None, csv_path: str | None) -> None:
    """Closed round trips with their P&L, newest first."""
    from ai_trade_bot.live.operator import trades as read_trades

    frame = _operator(lambda: read_trades(state_path, symbol))
    if csv_path:
        frame.to_csv(csv_path, index=False)
        click.echo(f"{len(frame)} trades -> {csv_path}")
        return
    click.echo(_table(frame, "no closed trades yet"))
    if not frame.empty:
        pnl, fees = frame["pnl"].sum(), frame["fees"].sum()
        click.echo(f"{len(frame)} trades, P&L {pnl:.6g} after {fees:.6g} fees")


@main.command()
@_STATE_OPTION
@click.option(
    "--since", default=None, help="From this candle time: a date, an ISO time or a duration (7d)."
)
@click.option("--symbol", default=None)
@click.option("--agent", default=None, help="One agent's rows (meta: the meta-agent's).")
@click.option("--window", type=int, default=200, show_default=True,
              help="Scored predictions the rolling figures read.")  # fmt: skip
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False),
              help="Write the rows to this CSV file (the summary is still printed).")  # fmt: skip
@click.option("--rows", "show_rows", type=int, default=20, show_default=True,
              help="The latest rows to print.")  # fmt: skip
def ledger(state_path: str, since: str | None, symbol: str | None, agent: str | None,
           window: int, csv_path: str | None, show_rows: int) -> None:  # fmt: skip
    """The prediction ledger: each forecast with its target time and, once that candle
    closed, its outcome, hit and log-loss; then the rolling figures per symbol and agent."""
    from ai_trade_bot.live.operator import ledger as read_ledger
    from ai_trade_bot.live.operator import ledger_summary

    frame = _operator(lambda: read_ledger(state_path, since=since, symbol=symbol, agent=agent))
    if csv_path:
        frame.drop(columns=["ts", "target_ts", "scored_ts"]).to_csv(csv_path, index=False)
        click.echo(f"{len(frame)} predictions -> {csv_path}")
    else:
        columns = ["symbol", "time", "agent", "target_time", "down", "flat", "up",
                   "expected_return", "outcome", "hit", "log_loss", "realised_return"]  # fmt: skip
        shown = frame[columns]
        click.echo(_table(shown.tail(show_rows), "no predictions recorded"))
    click.echo("")
    click.echo(_table(ledger_summary(frame, window), "nothing scored yet"))


@main.command()
@_STATE_OPTION
@click.option("--out", "out_dir", default="data/09_live/export", show_default=True,
              type=click.Path(file_okay=False))  # fmt: skip
@click.option("--since", default=None, help="The ledger from this candle time.")
def export(state_path: str, out_dir: str, since: str | None) -> None:
    """CSV files of the trades, the equity curves and the prediction ledger."""
    from ai_trade_bot.live.operator import export as do_export

    for path in _operator(lambda: do_export(state_path, out_dir, since=since)):
        click.echo(str(path))


@main.command()
@click.option("--name", default="ai_trade_bot", show_default=True)
@click.option("--tracking-uri", default=None, help="MLflow tracking/registry URI.")
def rollback(name: str, tracking_uri: str | None) -> None:
    """Move the champion alias back to the previous champion."""
    from ai_trade_bot.registry.deploy import DeployError
    from ai_trade_bot.registry.deploy import rollback as do_rollback

    try:
        result = do_rollback(name, tracking_uri or default_tracking_uri())
    except DeployError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{name}: champion moved from v{result['from']} back to v{result['to']}")


@main.command()
@click.option("--project", default=".", show_default=True, type=click.Path(file_okay=False))
def retrain(project: str) -> None:
    """The retrain loop: pull, ingest, drift, retrain when needed, gate, push (one line)."""
    from ai_trade_bot.monitoring.retrain import main as retrain_main

    sys.exit(retrain_main(["--project", project]))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def run(ctx: click.Context) -> None:
    """``kedro run`` for this project (arguments are passed on)."""
    from kedro.framework.cli.utils import find_run_command
    from kedro.framework.project import configure_project

    configure_project("ai_trade_bot")
    os.chdir(Path(PROJECT_ROOT))
    find_run_command("ai_trade_bot")(args=ctx.args, standalone_mode=True)


if __name__ == "__main__":
    main(sys.argv[1:])
