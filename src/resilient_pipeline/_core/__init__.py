"""The bottom layer every package builds on; private, so nothing here is public API.

* clocks (``SystemClock``, the swappable default) and shared deadlines;
* the event bus (``Event``, ``emit``, ``subscribe``) and its stdlib-logging sink;
* fields bound to a unit of work (``bind_context``), carried by a context variable;
* redaction of secrets in texts and errors;
* ``Retry-After`` parsing and the ``retry_after`` protocol;
* option checks and small helpers for callables and exception notes;
* the cross-cutting protocols (``Clock``, ``Policy``, ``SupportsRetryAfter``).

Other packages import from here, never from the modules behind it.
"""

from __future__ import annotations

from ._cancel import armed, cancel_scope, never_suspends
from ._clock import (
    DEFAULT_CLOCK,
    DEFAULT_MONOTONIC,
    SYSTEM_CLOCK,
    SystemClock,
    get_default_clock,
    resolve_clock,
    swap_default_clock,
)
from ._context import EMPTY_CONTEXT, bind_context, bound_context, current_context
from ._deadline import DEADLINE, deadline_scope, remaining_time, tightened
from ._events import (
    DEFAULT_HANDLERS,
    GLOBAL_HANDLERS,
    OBSERVED,
    Event,
    EventHandler,
    Subscription,
    emit,
    log_event,
    normalize_handlers,
    subscribe,
)
from ._options import (
    callable_or_none,
    exception_types,
    in_,
    integer,
    non_empty_str,
    number,
)
from ._protocols import Clock, Policy, SupportsRetryAfter
from ._redact import MASK, describe_error, is_secret_name, redact, redact_data
from ._retry_after import (
    RETRYABLE_STATUS_CODES,
    default_retry_after,
    parse_retry_after,
    to_number,
)
from ._twins import run_in_event_loop, run_in_worker_thread
from ._util import (
    add_note,
    check_callable,
    is_async,
    is_permanent,
    source_of,
)

__all__ = [
    "DEADLINE",
    "DEFAULT_CLOCK",
    "DEFAULT_HANDLERS",
    "DEFAULT_MONOTONIC",
    "EMPTY_CONTEXT",
    "GLOBAL_HANDLERS",
    "MASK",
    "OBSERVED",
    "RETRYABLE_STATUS_CODES",
    "SYSTEM_CLOCK",
    "Clock",
    "Event",
    "EventHandler",
    "Policy",
    "Subscription",
    "SupportsRetryAfter",
    "SystemClock",
    "add_note",
    "armed",
    "bind_context",
    "bound_context",
    "callable_or_none",
    "cancel_scope",
    "check_callable",
    "current_context",
    "deadline_scope",
    "default_retry_after",
    "describe_error",
    "emit",
    "exception_types",
    "get_default_clock",
    "in_",
    "integer",
    "is_async",
    "is_permanent",
    "is_secret_name",
    "log_event",
    "never_suspends",
    "non_empty_str",
    "normalize_handlers",
    "number",
    "parse_retry_after",
    "redact",
    "redact_data",
    "remaining_time",
    "resolve_clock",
    "run_in_event_loop",
    "run_in_worker_thread",
    "source_of",
    "subscribe",
    "swap_default_clock",
    "tightened",
    "to_number",
]
