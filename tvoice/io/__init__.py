"""Audio and text inputs and outputs of a session."""

from ._io import AudioInput as AudioInput
from ._io import AudioOutput as AudioOutput
from ._io import ChannelAudioInput as ChannelAudioInput
from ._io import PlaybackFinished as PlaybackFinished
from ._io import PlaybackStarted as PlaybackStarted
from ._io import TextOutput as TextOutput
