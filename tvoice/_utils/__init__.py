"""Small pieces shared by every layer: task ownership, retries, clocks, ids."""

from ._clock import now as now
from ._events import EventEmitter as EventEmitter
from ._fallback import FallbackPool as FallbackPool
from ._ids import short_id as short_id
from ._retry import DEFAULT_API_CONNECT_OPTIONS as DEFAULT_API_CONNECT_OPTIONS
from ._retry import FALLBACK_CONNECT_OPTIONS as FALLBACK_CONNECT_OPTIONS
from ._retry import APIConnectOptions as APIConnectOptions
from ._retry import call_with_retry as call_with_retry
from ._retry import retry_delay as retry_delay
from ._service import BackgroundTasks as BackgroundTasks
from ._stream import InputStream as InputStream
from ._stream import OutputStream as OutputStream
