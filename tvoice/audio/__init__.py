"""Audio frames, resampling and framing: the currency of every stage of a voice pipeline."""

from ._frame import AudioFrame as AudioFrame
from ._frame import Int16Array as Int16Array
from ._frame import TimedText as TimedText
from ._frame import combine_frames as combine_frames
from ._framing import AudioChunker as AudioChunker
from ._resample import AudioResampler as AudioResampler
from ._resample import resample as resample
from ._wav import read_wav as read_wav
from ._wav import wav_bytes as wav_bytes
from ._wav import write_wav as write_wav
