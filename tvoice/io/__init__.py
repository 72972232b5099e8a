"""Audio and text inputs and outputs of a session."""

from ._clocked import ClockedAudioOutput as ClockedAudioOutput
from ._clocked import HeardSpan as HeardSpan
from ._clocked import Playback as Playback
from ._clocked import render_playbacks as render_playbacks
from ._file import FileAudioInput as FileAudioInput
from ._io import AudioInput as AudioInput
from ._io import AudioOutput as AudioOutput
from ._io import ChannelAudioInput as ChannelAudioInput
from ._io import Participant as Participant
from ._io import PlaybackFinished as PlaybackFinished
from ._io import PlaybackStarted as PlaybackStarted
from ._io import RoomIO as RoomIO
from ._io import RoomSession as RoomSession
from ._io import SessionRoom as SessionRoom
from ._io import TextOutput as TextOutput
