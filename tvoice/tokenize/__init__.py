"""Sentence and word splitting for streamed text: what sits between an LLM and a TTS."""

from ._sentences import SentenceStream as SentenceStream
from ._sentences import SentenceTokenizer as SentenceTokenizer
from ._sentences import split_sentences as split_sentences
from ._words import Word as Word
from ._words import WordStream as WordStream
from ._words import WordTokenizer as WordTokenizer
from ._words import count_words as count_words
from ._words import split_words as split_words
