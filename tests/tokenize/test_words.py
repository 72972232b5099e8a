import itertools
import unicodedata

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvoice.tokenize import Word, WordStream, WordTokenizer, count_words, split_words


def texts(text: str, *, ignore_punctuation: bool = True) -> list[str]:
    return [w.text for w in split_words(text, ignore_punctuation=ignore_punctuation)]


def feed(stream: WordStream, chunks: list[str]) -> list[str]:
    out: list[str] = []
    for chunk in chunks:
        out += stream.push_text(chunk)
    return out + stream.flush()


def is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


def test_offsets_of_simple_words() -> None:
    assert split_words("Hello, world!") == [Word("Hello", 0, 5), Word("world", 7, 12)]


def test_keeping_punctuation() -> None:
    assert split_words("Hello, world!", ignore_punctuation=False) == [
        Word("Hello,", 0, 6),
        Word("world!", 7, 13),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("don't stop", ["don't", "stop"]),
        ("a well-known fact", ["a", "well-known", "fact"]),
        ("'quoted' (bracketed) \"double\"", ["quoted", "bracketed", "double"]),
        ("wait -- what ... ?!", ["wait", "what"]),
        ("rock'n'roll dogs' ¿qué?", ["rock'n'roll", "dogs", "qué"]),
        ("3.14 and $5, 50%.", ["3.14", "and", "$5", "50"]),
        ("U.S. e.g., etc.", ["U.S", "e.g", "etc"]),
        ("**bold** _it_ #tag @user", ["bold", "it", "tag", "user"]),
        ("emoji 👋 and + signs", ["emoji", "👋", "and", "+", "signs"]),
        ("café naïve", ["café", "naïve"]),
    ],
)
def test_punctuation_is_stripped_from_the_edges_only(text: str, expected: list[str]) -> None:
    assert texts(text) == expected


def test_pure_punctuation_tokens_are_kept_without_ignore() -> None:
    assert texts("wait -- what", ignore_punctuation=False) == ["wait", "--", "what"]


def test_cjk_characters_are_one_word_each() -> None:
    assert split_words("你好world 日本語です") == [
        Word("你", 0, 1),
        Word("好", 1, 2),
        Word("world", 2, 7),
        Word("日", 8, 9),
        Word("本", 9, 10),
        Word("語", 10, 11),
        Word("で", 11, 12),
        Word("す", 12, 13),
    ]


def test_cjk_punctuation() -> None:
    assert texts("你好。“是的”，カタカナ・テスト") == [
        "你", "好", "是", "的", "カ", "タ", "カ", "ナ", "テ", "ス", "ト",
    ]  # fmt: skip
    assert texts("你好。", ignore_punctuation=False) == ["你", "好", "。"]
    assert texts("你好，world!", ignore_punctuation=False) == ["你", "好", "，world!"]
    assert texts("你好，world!") == ["你", "好", "world"]


def test_rare_cjk_ranges_and_hangul() -> None:
    # Extension B ideographs and halfwidth katakana are words; Korean is split on spaces.
    assert texts("𠀀𠀁 ｶﾀ 안녕하세요 세계") == ["𠀀", "𠀁", "ｶ", "ﾀ", "안녕하세요", "세계"]


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "... -- !?", "。、"])
def test_no_words(text: str) -> None:
    assert split_words(text) == []
    assert count_words(text) == 0
    assert WordTokenizer().tokenize(text) == []


def test_count_words() -> None:
    assert count_words("Hello, world! It's a well-known fact -- 你好.") == 8


def test_truncating_at_a_word_end() -> None:
    text = 'He said: "I\'m fine, thanks." Then—nothing.'
    words = split_words(text)
    assert [w.text for w in words] == ["He", "said", "I'm", "fine", "thanks", "Then—nothing"]
    assert text[: words[3].end] == "He said: \"I'm fine"


def test_word_is_a_frozen_value() -> None:
    word = Word("hi", 0, 2)
    assert word == Word(text="hi", start=0, end=2)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        word.text = "ho"  # type: ignore[misc]


@given(text=st.text(), ignore_punctuation=st.booleans())
def test_offsets_are_exact(text: str, ignore_punctuation: bool) -> None:
    words = split_words(text, ignore_punctuation=ignore_punctuation)
    previous_end = 0
    for w in words:
        assert text[w.start : w.end] == w.text
        assert previous_end <= w.start < w.end
        assert not any(c.isspace() for c in w.text)
        previous_end = w.end
        if ignore_punctuation:
            assert not is_punctuation(w.text[0])
            assert not is_punctuation(w.text[-1])
    if not ignore_punctuation:
        # nothing but whitespace is dropped
        assert "".join(w.text for w in words) == "".join(text.split())


def test_tokenizer_matches_split_words() -> None:
    text = "Hello, world! 你好 don't"
    assert WordTokenizer().tokenize(text) == ["Hello", "world", "你", "好", "don't"]
    assert WordTokenizer(ignore_punctuation=False).tokenize(text) == texts(
        text, ignore_punctuation=False
    )


def test_tokenizer_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        WordTokenizer(False)  # type: ignore[call-arg]
    tokenizer = WordTokenizer(ignore_punctuation=False)
    assert tokenizer.stream().tokenizer is tokenizer


def test_stream_emits_a_word_when_whitespace_follows() -> None:
    stream = WordTokenizer().stream()
    assert stream.push_text("Hel") == []
    assert stream.push_text("lo,") == []
    assert stream.push_text(" wor") == ["Hello"]
    assert stream.push_text("ld") == []
    assert stream.push_text("\n") == ["world"]
    assert stream.push_text("-- ") == []  # punctuation alone is no word
    assert stream.push_text("last") == []
    assert stream.flush() == ["last"]


def test_stream_emits_cjk_characters_at_once() -> None:
    stream = WordTokenizer().stream()
    assert stream.push_text("你") == ["你"]
    assert stream.push_text("好wor") == ["好"]
    assert stream.push_text("ld世") == ["world", "世"]
    assert stream.push_text("。") == []
    assert stream.flush() == []


def test_stream_keeps_punctuation_when_asked() -> None:
    stream = WordTokenizer(ignore_punctuation=False).stream()
    assert stream.push_text("Hi, there") == ["Hi,"]
    assert stream.flush() == ["there"]


def test_stream_flush_twice_and_reuse() -> None:
    stream = WordTokenizer().stream()
    assert stream.push_text("one tw") == ["one"]
    assert stream.flush() == ["tw"]
    assert stream.flush() == []
    assert stream.push_text("o three") == ["o"]
    assert stream.flush() == ["three"]


def test_stream_push_empty_text() -> None:
    stream = WordTokenizer().stream()
    assert stream.push_text("") == []
    assert stream.flush() == []


WORDY = st.lists(
    st.sampled_from([*"ab '-.,!\n\t你。“”", "don't", "well-known", "3.14"]), max_size=40
).map("".join)


@given(
    text=WORDY | st.text(max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=100), max_size=20),
    ignore_punctuation=st.booleans(),
)
def test_any_chunking_equals_tokenize(text: str, cuts: list[int], ignore_punctuation: bool) -> None:
    tokenizer = WordTokenizer(ignore_punctuation=ignore_punctuation)
    points = [0, *sorted({c % (len(text) + 1) for c in cuts}), len(text)]
    chunks = [text[a:b] for a, b in itertools.pairwise(points)]
    assert feed(tokenizer.stream(), chunks) == tokenizer.tokenize(text)
