import itertools
import re

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvoice.tokenize import SentenceStream, SentenceTokenizer, split_sentences


def split(text: str) -> list[str]:
    """Boundaries only: no merging of short sentences."""
    return split_sentences(text, min_sentence_len=0)


def feed(stream: SentenceStream, chunks: list[str]) -> list[str]:
    out: list[str] = []
    for chunk in chunks:
        out += stream.push_text(chunk)
    return out + stream.flush()


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = [0, *sorted({c % (len(text) + 1) for c in cuts}), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(points)]


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


# Texts that touch every rule; the streaming tests run all of them.
TEXTS = [
    "Hi. How are you doing today? Fine.",
    "He said \"hi.\" Then he left. She said 'bye!' And went (home.) Done.",
    "Mr. Smith and Mrs. Jones met Dr. Who at 5 p.m. in the U.S. today. Then they left.",
    "J. R. R. Tolkien wrote it. Pi is 3.14 and we have 1.5k users on v2.0.1 now. Good.",
    "Visit example.com or mail a@b.co today. Open file.txt. Then close it.",
    "Wait... What happened? I don't know… Maybe. Really?! Yes!!! Ok.",
    "你好。我是学生！你呢？第一；第二。他说：“你好。”然后走了。",
    "First line\nSecond line\n\nThird paragraph.\r\nFourth.  \n  \n Fifth",
    "  Leading space.   Lots   of   space.    Trailing.   ",
    "Apples, pears, etc. are fruit, e.g. these. I.e. the good ones. No. 5 is mine. I said no. Ok.",
    "Acme Co. Ltd. and Foo Inc. sued Bar Corp. vs. Baz. Prof. X and Sr. Y and Jr. Z at St. Paul.",
    "The U.K. and U.S.A. agreed at 9 a.m. sharp. Then nothing.",
    "Ends with an abbreviation Mr.",
    'Trailing closers here.")] Next one.',
    "",
    "   \n\t  ",
]


def test_min_length_merges_short_sentences() -> None:
    assert split_sentences("Hi. How are you doing today? Fine.") == [
        "Hi. How are you doing today?",
        "Fine.",
    ]


def test_min_length_zero_keeps_every_sentence() -> None:
    assert split("Hi. How are you doing today? Fine.") == [
        "Hi.",
        "How are you doing today?",
        "Fine.",
    ]


def test_short_sentences_chain_until_long_enough() -> None:
    text = "One. Two. Three. Four. Five. Six is a longer sentence."
    assert split_sentences(text, min_sentence_len=12) == [
        "One. Two. Three.",
        "Four. Five. Six is a longer sentence.",
    ]


def test_sentence_exactly_min_length_is_not_merged() -> None:
    assert split_sentences("abcd. Next one.", min_sentence_len=5) == ["abcd.", "Next one."]
    assert split_sentences("abc. Next one.", min_sentence_len=5) == ["abc. Next one."]


def test_short_last_sentence_is_kept_at_flush() -> None:
    assert split_sentences("This sentence is long enough. Ok.") == [
        "This sentence is long enough.",
        "Ok.",
    ]
    assert split_sentences("Ok.") == ["Ok."]
    assert split_sentences("Hi. Ok.") == ["Hi. Ok."]


def test_merge_joins_with_one_space_whatever_the_whitespace() -> None:
    assert split_sentences("Hi.\n\n   Then more text here.", min_sentence_len=10) == [
        "Hi. Then more text here."
    ]
    assert split_sentences("Hi.\n\n\n  Bye.", min_sentence_len=10) == ["Hi. Bye."]


def test_merge_adds_no_space_between_cjk_sentences() -> None:
    assert split_sentences("你好。我是学生。") == ["你好。我是学生。"]
    assert split_sentences("你好。 我是学生。") == ["你好。 我是学生。"]


@pytest.mark.parametrize(
    "abbreviation",
    [
        "Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Sr.", "Jr.", "St.", "vs.", "etc.", "e.g.",
        "i.e.", "a.m.", "p.m.", "U.S.", "U.K.", "No.", "Inc.", "Ltd.", "Co.", "Ph.D.", "U.S.A.",
        "z.B.",
    ],
)  # fmt: skip
def test_abbreviations_do_not_end_a_sentence(abbreviation: str) -> None:
    text = f"We saw {abbreviation} Smith here. The end."
    assert split(text) == [f"We saw {abbreviation} Smith here.", "The end."]


def test_abbreviation_after_an_opening_bracket_or_quote() -> None:
    assert split('Fruit (e.g. apples) is good. "Mr." Smith said so. Yes.') == [
        "Fruit (e.g. apples) is good.",
        '"Mr." Smith said so.',
        "Yes.",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I said no. Then I left.", ["I said no.", "Then I left."]),
        ("Room No. 5 is free.", ["Room No. 5 is free."]),
        ("Go to St. Paul now.", ["Go to St. Paul now."]),
        ("It was the 1st. Then the 2nd.", ["It was the 1st.", "Then the 2nd."]),
        ("Call the co. Then wait.", ["Call the co.", "Then wait."]),
    ],
)
def test_abbreviations_are_case_sensitive(text: str, expected: list[str]) -> None:
    assert split(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Pi is 3.14 more or less.",
        "We have 1.5k users.",
        "Version v2.0.1 is out.",
        "Prices fell .5 points.",
        "Visit example.com today.",
        "Mail a@b.co today.",
        "Open file.txt today.",
        "See https://x.org/a.b?c=d!e today.",
        "He said “hi.”Then left.",
        "Hello!World and Why?Not.",
        "Wait…what.",
    ],
)
def test_end_mark_followed_by_non_space_is_not_a_boundary(text: str) -> None:
    assert split(text) == [text]


def test_initials() -> None:
    assert split("J. R. R. Tolkien wrote it. A. B. Smith too.") == [
        "J. R. R. Tolkien wrote it.",
        "A. B. Smith too.",
    ]


def test_lowercase_single_letter_ends_a_sentence() -> None:
    assert split("It is plan b. Then c.") == ["It is plan b.", "Then c."]


def test_numbers_before_a_space_end_a_sentence() -> None:
    assert split("It costs 5. Then 6.") == ["It costs 5.", "Then 6."]


def test_end_marks() -> None:
    assert split("One. Two! Three? Four… Five... Six?! Seven!!! Eight") == [
        "One.", "Two!", "Three?", "Four…", "Five...", "Six?!", "Seven!!!", "Eight",
    ]  # fmt: skip


def test_cjk_end_marks_need_no_space() -> None:
    assert split("你好。我是学生！你呢？第一；第二") == [
        "你好。",
        "我是学生！",
        "你呢？",
        "第一；",
        "第二",
    ]
    assert split("你好。 我是学生。") == ["你好。", "我是学生。"]
    assert split("これはペンです。あれは本です。") == ["これはペンです。", "あれは本です。"]


def test_cjk_closing_quotes_stay_with_the_sentence() -> None:
    assert split("他说：“你好。”然后走了。「はい。」と言った") == [
        "他说：“你好。”",
        "然后走了。",
        "「はい。」",
        "と言った",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('He said "hi." Then left.', ['He said "hi."', "Then left."]),
        ("He said 'stop!' Then left.", ["He said 'stop!'", "Then left."]),
        ("(See above.) Next.", ["(See above.)", "Next."]),
        ("[Really?] Yes.", ["[Really?]", "Yes."]),
        ("He said “hi.” Then left.", ["He said “hi.”", "Then left."]),
        ("**Done.** Next.", ["**Done.**", "Next."]),
        ('Nested.")] Next.', ['Nested.")]', "Next."]),
    ],
)
def test_closers_after_the_end_mark_belong_to_the_sentence(text: str, expected: list[str]) -> None:
    assert split(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("First line\nSecond line", ["First line", "Second line"]),
        ("Para one\n\nPara two", ["Para one", "Para two"]),
        ("Ends here.\n\nNext.", ["Ends here.", "Next."]),
        ("Ends here.  \n  Next.", ["Ends here.", "Next."]),
        ("Windows\r\nline\rends", ["Windows", "line", "ends"]),
        ("Mr.\nSmith", ["Mr.", "Smith"]),
        ("Wait…\nwhat", ["Wait…", "what"]),
        ("- item one\n- item two\n", ["- item one", "- item two"]),
        ("\n\n\nAlone\n\n\n", ["Alone"]),
    ],
)
def test_line_breaks_end_a_sentence(text: str, expected: list[str]) -> None:
    assert split(text) == expected


def test_whitespace_is_stripped_at_edges_and_kept_inside() -> None:
    assert split("  Hello   world.   Next \t one.  ") == ["Hello   world.", "Next \t one."]


@pytest.mark.parametrize("text", ["", " ", "   \n\t  ", "\n\n"])
def test_empty_and_blank_input(text: str) -> None:
    assert split_sentences(text) == []
    stream = SentenceTokenizer().stream()
    assert stream.push_text(text) == []
    assert stream.flush() == []


def test_flush_twice() -> None:
    stream = SentenceTokenizer(min_sentence_len=0).stream()
    assert stream.push_text("One. Two") == ["One."]
    assert stream.push_text(" ") == []
    assert stream.flush() == ["Two"]
    assert stream.flush() == []


def test_flush_returns_unconfirmed_sentence_and_pending_short_one() -> None:
    stream = SentenceTokenizer().stream()
    assert stream.push_text("Hi. Then there is more.  ") == []
    assert stream.flush() == ["Hi. Then there is more."]


def test_stream_is_reusable_after_flush() -> None:
    stream = SentenceTokenizer(min_sentence_len=10).stream()
    assert stream.push_text("Hi. First segment here.") == []
    assert stream.flush() == ["Hi. First segment here."]
    # nothing of the first segment leaks into the second: not the buffer, not the pending "Hi."
    assert stream.push_text("Yo. Second segment.") == []
    assert stream.push_text(" Third") == ["Yo. Second segment."]
    assert stream.flush() == ["Third"]


def test_push_empty_text() -> None:
    stream = SentenceTokenizer().stream()
    assert stream.push_text("") == []
    assert stream.flush() == []


def test_tokenize_twice_gives_the_same_result() -> None:
    tokenizer = SentenceTokenizer()
    assert tokenizer.tokenize(TEXTS[0]) == tokenizer.tokenize(TEXTS[0])


def test_latency_sentence_emitted_by_the_push_that_proves_it() -> None:
    stream = SentenceTokenizer(min_sentence_len=0).stream()
    assert stream.push_text("The first sentence is here") == []
    assert stream.push_text('."') == []
    assert stream.push_text("  ") == []
    # the next non-space character proves the end: returned now, not at the next end mark
    assert stream.push_text("T") == ['The first sentence is here."']
    assert stream.push_text("hen, after Mr.") == []
    assert stream.push_text(" ") == []
    assert stream.push_text("S") == []  # an abbreviation: still the same sentence
    assert stream.push_text("mith. 你好。") == ["Then, after Mr. Smith."]
    assert stream.push_text("我") == ["你好。"]
    assert stream.push_text("们\n") == ["我们"]  # a line break needs no look-ahead
    assert stream.flush() == []


def test_one_push_can_return_several_sentences() -> None:
    stream = SentenceTokenizer(min_sentence_len=0).stream()
    assert stream.push_text("One. Two! Three? Fo") == ["One.", "Two!", "Three?"]
    assert stream.flush() == ["Fo"]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("min_sentence_len", [0, 20])
def test_one_character_at_a_time_equals_tokenize(text: str, min_sentence_len: int) -> None:
    tokenizer = SentenceTokenizer(min_sentence_len=min_sentence_len)
    assert feed(tokenizer.stream(), list(text)) == tokenizer.tokenize(text)


@given(
    text=st.sampled_from(TEXTS),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=30),
    min_sentence_len=st.sampled_from([0, 10, 20, 60]),
    first_clause=st.booleans(),
)
def test_any_chunking_equals_tokenize(
    text: str, cuts: list[int], min_sentence_len: int, first_clause: bool
) -> None:
    tokenizer = SentenceTokenizer(min_sentence_len=min_sentence_len, first_clause=first_clause)
    assert feed(tokenizer.stream(), chunked(text, cuts)) == tokenizer.tokenize(text)


# Random text over an alphabet dense in the characters the rules look at.
PIECES = [*"aZ J.!?…。！；\"')”」*\n\r\t,:—", "Mr", "e.g", "3.1", "U.S", "21,000"]
TRICKY = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@given(
    text=TRICKY,
    cuts=st.lists(st.integers(min_value=0, max_value=100), max_size=20),
    min_sentence_len=st.sampled_from([0, 5, 20]),
    first_clause=st.booleans(),
)
def test_random_text_any_chunking_equals_tokenize(
    text: str, cuts: list[int], min_sentence_len: int, first_clause: bool
) -> None:
    tokenizer = SentenceTokenizer(min_sentence_len=min_sentence_len, first_clause=first_clause)
    assert feed(tokenizer.stream(), chunked(text, cuts)) == tokenizer.tokenize(text)


@given(text=TRICKY, min_sentence_len=st.sampled_from([0, 5, 20]), first_clause=st.booleans())
def test_nothing_lost_or_duplicated(text: str, min_sentence_len: int, first_clause: bool) -> None:
    tokenizer = SentenceTokenizer(min_sentence_len=min_sentence_len, first_clause=first_clause)
    sentences = tokenizer.tokenize(text)
    assert squash("".join(sentences)) == squash(text)
    assert all(s and s == s.strip() for s in sentences)
    assert all(len(s) >= min_sentence_len for s in sentences[:-1])


@given(text=TRICKY)
def test_every_sentence_emitted_no_later_than_the_character_that_proves_it(text: str) -> None:
    stream = SentenceTokenizer(min_sentence_len=0).stream()
    emitted_at: list[tuple[str, int]] = []
    for i, char in enumerate(text):
        emitted_at += [(s, i) for s in stream.push_text(char)]
    emitted_at += [(s, len(text)) for s in stream.flush()]
    cursor = 0
    for sentence, index in emitted_at:
        start = text.index(sentence, cursor)
        cursor = start + len(sentence)
        proof = next((j for j in range(cursor, len(text)) if not text[j].isspace()), len(text))
        assert index <= proof


# -- first_clause ---------------------------------------------------------------------------


def test_first_clause_ends_the_first_piece_at_a_comma() -> None:
    tokenizer = SentenceTokenizer(first_clause=True)
    assert tokenizer.tokenize("The weather in Paris is sunny, 21 degrees Celsius.") == [
        "The weather in Paris is sunny,",
        "21 degrees Celsius.",
    ]


def test_only_the_first_clause_is_cut() -> None:
    tokenizer = SentenceTokenizer(first_clause=True)
    text = "Well; the weather in Paris is sunny, warm: bright. Then, later, rain is coming."
    assert tokenizer.tokenize(text) == [
        "Well; the weather in Paris is sunny,",
        "warm: bright. Then, later, rain is coming.",
    ]


@pytest.mark.parametrize(
    "text", ["It costs 21,000 dollars or so today.", "We meet at 10:30 tomorrow morning."]
)
def test_a_clause_mark_inside_a_number_is_no_boundary(text: str) -> None:
    assert SentenceTokenizer(first_clause=True).tokenize(text) == [text]


def test_a_first_clause_shorter_than_min_sentence_len_is_not_cut() -> None:
    tokenizer = SentenceTokenizer(first_clause=True, min_sentence_len=20)
    assert tokenizer.tokenize("Sure, it is sunny in Paris today.") == [
        "Sure, it is sunny in Paris today."
    ]


def test_the_first_clause_comes_with_the_space_after_it() -> None:
    stream = SentenceTokenizer(first_clause=True).stream()
    assert stream.push_text("The weather in Paris is sunny,") == []  # "sunny,000"?
    # A model writes "sunny, 21" as ",", " ", "2", "1": the space settles it, a token sooner.
    assert stream.push_text(" ") == ["The weather in Paris is sunny,"]
    assert stream.push_text("2") == []
    assert stream.flush() == ["2"]
    # After a flush the next text has a first clause of its own.
    assert stream.push_text("And in London it is raining, sadly") == [
        "And in London it is raining,"
    ]


def test_language_tag_variants() -> None:
    text = "Dr. Smith is here. Bye now."
    for language in ["en", "en-US", "en_GB", "EN", "fr", "zh-Hans"]:
        assert split_sentences(text, language=language, min_sentence_len=0) == [
            "Dr. Smith is here.",
            "Bye now.",
        ]


def test_tokenizer_is_a_keyword_only_frozen_value() -> None:
    tokenizer = SentenceTokenizer(language="en", min_sentence_len=5)
    assert tokenizer == SentenceTokenizer(min_sentence_len=5)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        tokenizer.min_sentence_len = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        SentenceTokenizer("en")  # type: ignore[call-arg]
    assert tokenizer.stream().tokenizer is tokenizer


@pytest.mark.parametrize("bad", [-1, 2.5, "20"])
def test_min_sentence_len_is_validated(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        SentenceTokenizer(min_sentence_len=bad)  # type: ignore[arg-type]
