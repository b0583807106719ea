"""Notifications through Apprise: one URL per channel (``slack://``, ``tgram://``,
``discord://``, ``mailto://``, ``pagerduty://``, ``json://`` for a plain JSON POST, and
every other service Apprise knows).

- **Where the URLs come from:** ``notifications.urls`` in ``conf/local/credentials.yml``
  (git-ignored) and the environment variable ``AI_TRADE_BOT_NOTIFY_URLS`` (space
  separated), plus ``--notify URL`` on the command line. URLs carry tokens: they are
  never logged (a log filter masks them in every record, Apprise's own included), never
  stored in the state file and never sent to MLflow.
- **What goes out:** the alert kinds in ``NOTIFY_KINDS`` (the kill switch, the model
  falling back and coming back, a stale feed, a limit breach, a model change, a drift
  retrain, an inference timeout, the memory cap, the daily summary); the others stay in
  the log and the state file.
- **Deduplicated and rate-limited:** the same kind, symbol and message inside
  ``dedupe_seconds`` is sent once; one kind and symbol at most once per
  ``min_interval`` seconds, what was held back summed up in the next message of that
  kind.
- **Never in the way of trading:** messages go through a bounded queue to one background
  thread; a channel that fails or hangs (``timeout``) is logged, counted and skipped.

Apprise does the delivery to each service; only the queue, the rate limit and the
deduplication are ours (Apprise has neither across calls).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ENV_URLS = "AI_TRADE_BOT_NOTIFY_URLS"
NOTIFY_KINDS = (
    "kill_switch",
    "fallback",
    "model_back",
    "stale_feed",
    "limit_breach",
    "model_change",
    "retrain",
    "inference_timeout",
    "memory_cap",
    "daily_summary",
)
_TYPES = {"kill_switch": "failure", "memory_cap": "failure", "fallback": "warning",
          "stale_feed": "warning", "limit_breach": "warning", "inference_timeout": "warning",
          "model_back": "success", "daily_summary": "info"}  # fmt: skip


@dataclass
class NotifyConfig:
    """How notifications are sent (``live.notify`` in parameters; the URLs are secrets
    and live in credentials or the environment, see the module docstring)."""

    kinds: tuple[str, ...] = NOTIFY_KINDS
    min_interval: float = 60.0  # seconds between two messages of one kind and symbol
    dedupe_seconds: float = 3600.0  # the same message again inside this is dropped
    timeout: float = 5.0  # seconds a channel may take
    queue_size: int = 1000
    urls: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, block: dict[str, Any] | None, urls: Iterable[str] = ()) -> NotifyConfig:
        from ai_trade_bot.config import parse_config

        block = dict(block or {})
        if "urls" in block:
            raise ValueError(
                "live.notify.urls: notification URLs carry tokens; put them in "
                f"conf/local/credentials.yml (notifications.urls) or {ENV_URLS}, not in "
                "parameters (which are logged to MLflow)"
            )
        config = parse_config(cls, block, name="live.notify")
        unknown = set(config.kinds) - set(NOTIFY_KINDS)
        if unknown:
            raise ValueError(
                f"live.notify.kinds: unknown {sorted(unknown)}; valid: {list(NOTIFY_KINDS)}"
            )
        config.kinds = tuple(config.kinds)
        config.urls = [u for u in [*config.urls, *urls] if u]
        return config


def configured_urls(conf_local: str | Path = "conf/local") -> list[str]:
    """Notification URLs from ``conf/local/credentials.yml`` (``notifications.urls``)
    and ``AI_TRADE_BOT_NOTIFY_URLS``."""
    import yaml

    urls: list[str] = []
    path = Path(conf_local) / "credentials.yml"
    if path.exists():
        data = yaml.safe_load(path.read_text()) or {}
        block = data.get("notifications") or {}
        found = block.get("urls") or []
        urls += [found] if isinstance(found, str) else list(found)
    urls += os.environ.get(ENV_URLS, "").split()
    return [u for u in urls if u]


_MASKED: set[str] = set()
_FACTORY_INSTALLED = False


def mask(text: str) -> str:
    """``text`` with the registered secrets (:func:`mask_in_logs`) replaced by ``***``."""
    for secret in sorted(_MASKED, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def mask_in_logs(secrets: Iterable[str]) -> None:
    """Mask ``secrets`` in every log record made from now on, whichever logger makes it
    (Apprise's, urllib3's) and whichever handler prints it: a log record factory, since a
    filter on one logger misses its children's records and handlers added later."""
    global _FACTORY_INSTALLED
    _MASKED.update(s for s in secrets if len(s) >= 6)
    if _FACTORY_INSTALLED:
        return
    _FACTORY_INSTALLED = True
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if _MASKED:
            try:
                text = record.getMessage()
            except Exception:  # a bad format string: leave the record to the handler
                return record
            masked = mask(text)
            if masked != text:
                record.msg, record.args = masked, None
        return record

    logging.setLogRecordFactory(factory)


def _secret_parts(url: str) -> list[str]:
    """The URL, and its parts past the scheme that may be tokens (user, password, host
    path segments, query values)."""
    from urllib.parse import parse_qsl, urlsplit

    parts = [url]
    try:
        split = urlsplit(url)
    except ValueError:
        return parts
    parts += [split.username or "", split.password or ""]
    parts += [seg for seg in split.path.split("/") if len(seg) >= 6]
    parts += [v for _, v in parse_qsl(split.query) if len(v) >= 6]
    if split.netloc:
        parts.append(split.netloc)
    return [p for p in parts if p]


class Notifier:
    """See the module docstring. ``notify`` returns at once; ``close`` drains the queue."""

    def __init__(self, config: NotifyConfig) -> None:
        import apprise

        self.config = config
        self.apprise = apprise.Apprise()
        mask_in_logs([p for u in config.urls for p in _secret_parts(u)])
        refused = [i for i, url in enumerate(config.urls, 1) if not self.apprise.add(url)]
        if refused:
            # the URL itself may hold a token: name it by position and scheme only
            schemes = [config.urls[i - 1].split(":", 1)[0] for i in refused]
            logger.warning("notification URL(s) %s not understood by Apprise (schemes %s)",
                           refused, schemes)  # fmt: skip
        self.sent = 0
        self.failed = 0
        self.suppressed = 0
        self._last: dict[tuple[str, str], float] = {}
        self._seen: dict[tuple[str, str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}
        self._queue: queue.Queue[tuple[str, str, str] | None] = queue.Queue(config.queue_size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return len(self.apprise) > 0

    def notify(
        self, kind: str, symbol: str | None, message: str, *, now: float | None = None
    ) -> bool:
        """Queue one alert (True) unless it is not a notified kind, a duplicate or rate
        limited (False). Never raises."""
        if not self.active or kind not in self.config.kinds:
            return False
        now = time.time() if now is None else now
        who = symbol or "all"
        with self._lock:
            key = (kind, who, message)
            if now - self._seen.get(key, -1e18) < self.config.dedupe_seconds:
                self.suppressed += 1
                return False
            if now - self._last.get((kind, who), -1e18) < self.config.min_interval:
                self._held[(kind, who)] = self._held.get((kind, who), 0) + 1
                self.suppressed += 1
                return False
            self._seen[key] = now
            self._last[(kind, who)] = now
            held = self._held.pop((kind, who), 0)
        if held:
            message += f" ({held} more {kind} alert(s) for {who} held back by the rate limit)"
        title = f"ai_trade_bot {kind}" + (f" [{symbol}]" if symbol else "")
        try:
            self._queue.put_nowait((kind, title, message))
        except queue.Full:
            self.failed += 1
            logger.warning("notification queue full: %s dropped", kind)
            return False
        self._start()
        return True

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._send(*item)
            finally:
                self._queue.task_done()

    def _send(self, kind: str, title: str, body: str) -> None:
        try:
            ok = bool(
                self.apprise.notify(
                    body=body,
                    title=title,
                    notify_type=_TYPES.get(kind, "info"),
                    timeout=self.config.timeout,
                )
            )
        except Exception as exc:  # a channel never stops trading
            ok = False
            logger.warning("notification %s failed: %s", kind, type(exc).__name__)
        if ok:
            self.sent += 1
        else:
            self.failed += 1
            logger.warning("notification %s: a channel did not accept it", kind)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (up to ``timeout`` seconds), then stop the thread."""
        if self._thread is None or not self._thread.is_alive():
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


def notifier_from(block: dict[str, Any] | None, extra_urls: Iterable[str] = (),
                  conf_local: str | Path = "conf/local") -> Notifier | None:  # fmt: skip
    """The configured notifier (None without a URL)."""
    config = NotifyConfig.parse(block, [*configured_urls(conf_local), *extra_urls])
    return Notifier(config) if config.urls else None
