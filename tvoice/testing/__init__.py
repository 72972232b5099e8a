"""Scripted fakes and conformance suites: test voice agents on trio's autojump clock.

Not imported by ``import tvoice``.
"""

from ._conformance import check_llm as check_llm
from ._conformance import check_stt as check_stt
from ._conformance import check_tts as check_tts
from ._conformance import check_vad as check_vad
from ._fake_io import FakeAudioInput as FakeAudioInput
from ._fake_io import FakeAudioOutput as FakeAudioOutput
from ._fake_io import FakeTextOutput as FakeTextOutput
from ._fake_io import Playback as Playback
from ._fake_models import FakeLLM as FakeLLM
from ._fake_models import FakeSTT as FakeSTT
from ._fake_models import FakeTTS as FakeTTS
from ._fake_models import FakeVAD as FakeVAD
from ._livekit_server import LiveKitServer as LiveKitServer
from ._livekit_server import LiveKitServerConfig as LiveKitServerConfig
from ._livekit_server import LiveKitServerError as LiveKitServerError
from ._livekit_server import free_loopback_port as free_loopback_port
from ._livekit_server import run_livekit_server as run_livekit_server
from ._script import LLMReply as LLMReply
from ._script import Script as Script
from ._script import ScriptError as ScriptError
from ._script import TTSReply as TTSReply
from ._script import UserSpeech as UserSpeech
from ._session import TimelineSession as TimelineSession
from ._timeline import Timeline as Timeline
