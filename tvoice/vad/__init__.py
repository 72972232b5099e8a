"""Voice activity detection."""

from ._vad import VAD as VAD
from ._vad import VADCapabilities as VADCapabilities
from ._vad import VADDetector as VADDetector
from ._vad import VADEvent as VADEvent
from ._vad import VADEventType as VADEventType
from ._vad import VADStream as VADStream
