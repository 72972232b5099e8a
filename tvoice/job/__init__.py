"""Jobs: the context an entrypoint runs in, worker options, and the console's simulated call."""

from ..io import Participant as Participant
from ._console_room import ConsoleRoom as ConsoleRoom
from ._console_room import TurnRow as TurnRow
from ._context import JobContext as JobContext
from ._context import JobInfo as JobInfo
from ._context import JobProcess as JobProcess
from ._options import JobRequest as JobRequest
from ._options import WorkerOptions as WorkerOptions
from ._options import WorkerPermissions as WorkerPermissions
from ._options import WorkerType as WorkerType
