"""ByteBuffer: sizes after every operation, identity of whole chunks, and find across chunks."""

from __future__ import annotations

import pytest

from reactor.buffer import MERGE_LIMIT_BYTES, ByteBuffer

BIG = MERGE_LIMIT_BYTES  # appends of at least this size are never merged


def chunked(*parts: bytes) -> ByteBuffer:
    """A buffer holding exactly ``parts`` as separate chunks (``append_unsent`` never merges)."""
    buffer = ByteBuffer()
    for part in parts:
        buffer.append_unsent(part, 0)
    assert [bytes(chunk) for chunk in buffer.head_chunks(10**6)] == [p for p in parts if p]
    return buffer


def contents(buffer: ByteBuffer) -> bytes:
    return b"".join(bytes(chunk) for chunk in buffer.head_chunks(10**6))


# -- sizes ------------------------------------------------------------------------------------


def test_new_buffer_is_empty_and_false() -> None:
    buffer = ByteBuffer()
    assert len(buffer) == 0
    assert not buffer
    assert buffer.head_chunks(10) == []
    assert buffer.take() == b""
    assert buffer.peek() == b""


def test_initial_data_is_appended() -> None:
    buffer = ByteBuffer(b"abc")
    assert len(buffer) == 3
    assert buffer
    assert buffer.peek() == b"abc"


def test_append_grows_length_by_each_append() -> None:
    buffer = ByteBuffer()
    buffer.append(b"ab")
    assert len(buffer) == 2
    buffer.append(b"c" * BIG)
    assert len(buffer) == 2 + BIG
    buffer.append(b"")
    assert len(buffer) == 2 + BIG
    assert contents(buffer) == b"ab" + b"c" * BIG


def test_empty_append_adds_no_chunk() -> None:
    buffer = ByteBuffer()
    buffer.append(b"")
    buffer.append(bytearray())
    buffer.append_unsent(b"", 0)
    assert buffer.head_chunks(10) == []
    assert len(buffer) == 0


def test_peek_returns_head_without_removing_it() -> None:
    buffer = chunked(b"a" * BIG, b"b" * BIG)
    assert buffer.peek(3) == b"aaa"
    assert buffer.peek(BIG + 2) == b"a" * BIG + b"bb"
    assert buffer.peek() == b"a" * BIG + b"b" * BIG
    assert buffer.peek(10**9) == b"a" * BIG + b"b" * BIG
    assert buffer.peek(0) == b""
    assert len(buffer) == 2 * BIG


def test_take_removes_bytes_from_the_head_in_order() -> None:
    buffer = chunked(b"0123456789" * 200, b"abcdefghij" * 200)
    assert buffer.take(5) == b"01234"
    assert len(buffer) == 3995
    assert buffer.take(1995) == (b"0123456789" * 200)[5:]
    assert len(buffer) == 2000
    assert buffer.take(3) == b"abc"
    assert len(buffer) == 1997
    assert buffer.take() == (b"abcdefghij" * 200)[3:]
    assert len(buffer) == 0
    assert not buffer


def test_take_spanning_chunks_joins_them() -> None:
    buffer = chunked(b"a" * BIG, b"b" * BIG, b"c" * BIG)
    assert buffer.take(BIG + 1) == b"a" * BIG + b"b"
    assert len(buffer) == 2 * BIG - 1
    assert contents(buffer) == b"b" * (BIG - 1) + b"c" * BIG


def test_take_more_than_held_returns_everything() -> None:
    buffer = ByteBuffer(b"xyz")
    assert buffer.take(100) == b"xyz"
    assert len(buffer) == 0


def test_take_zero_returns_empty_and_keeps_length() -> None:
    buffer = ByteBuffer(b"xyz")
    assert buffer.take(0) == b""
    assert len(buffer) == 3


def test_take_of_exactly_one_whole_chunk_returns_the_same_object() -> None:
    first = b"f" * 4096
    second = b"s" * 4096
    buffer = ByteBuffer()
    buffer.append(first)
    buffer.append(second)
    assert buffer.take(4096) is first
    assert len(buffer) == 4096
    assert buffer.take() is second
    assert len(buffer) == 0


def test_peek_of_exactly_one_whole_chunk_returns_the_same_object() -> None:
    data = b"p" * 4096
    buffer = ByteBuffer(data)
    assert buffer.peek(4096) is data
    assert len(buffer) == 4096


def test_append_keeps_a_large_bytes_object_without_copying() -> None:
    data = b"k" * 4096
    buffer = ByteBuffer()
    buffer.append(data)
    assert buffer.head_chunks(1)[0] is data


def test_consume_partial_head_leaves_a_view_of_the_rest() -> None:
    data = b"0123456789" * 200
    buffer = ByteBuffer(data)
    buffer.consume(10)
    assert len(buffer) == 1990
    head = buffer.head_chunks(1)[0]
    assert isinstance(head, memoryview)
    assert head.obj is data
    assert buffer.peek() == data[10:]
    assert buffer.take() == data[10:]
    assert len(buffer) == 0


def test_consume_across_chunks_drops_whole_chunks_first() -> None:
    buffer = chunked(b"a" * BIG, b"b" * BIG, b"c" * BIG)
    buffer.consume(BIG + 10)
    assert len(buffer) == 2 * BIG - 10
    assert len(buffer.head_chunks(10)) == 2
    assert contents(buffer) == b"b" * (BIG - 10) + b"c" * BIG


def test_consume_everything_or_more_empties_the_buffer() -> None:
    buffer = chunked(b"a" * BIG, b"b" * BIG)
    buffer.consume(10**9)
    assert len(buffer) == 0
    assert buffer.head_chunks(10) == []


def test_clear_drops_everything() -> None:
    buffer = chunked(b"a" * BIG, b"b" * BIG)
    buffer.clear()
    assert len(buffer) == 0
    assert not buffer
    assert buffer.head_chunks(10) == []
    buffer.append(b"again")
    assert buffer.take() == b"again"


def test_repr_shows_bytes_and_chunks() -> None:
    buffer = chunked(b"a" * BIG, b"b" * BIG)
    assert repr(buffer) == f"<ByteBuffer {2 * BIG} bytes in 2 chunks>"


# -- what append accepts ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["text", ByteBuffer(b"buffer"), 42, None])
def test_append_rejects_non_bytes_like_with_type_error(bad: object) -> None:
    buffer = ByteBuffer(b"kept")
    with pytest.raises(TypeError):
        buffer.append(bad)  # type: ignore[arg-type]
    assert len(buffer) == 4
    assert buffer.peek() == b"kept"


def test_bytearray_input_is_copied() -> None:
    data = bytearray(b"a" * 2000)
    buffer = ByteBuffer()
    buffer.append(data)
    data[:] = b"z" * 2000
    data.extend(b"more")
    assert len(buffer) == 2000
    assert buffer.take() == b"a" * 2000


def test_small_bytearray_merged_into_tail_is_copied() -> None:
    data = bytearray(b"xy")
    buffer = ByteBuffer(b"ab")
    buffer.append(data)
    data[0] = ord("Z")
    assert buffer.take() == b"abxy"


def test_memoryview_input_is_copied() -> None:
    backing = bytearray(b"m" * 2000)
    buffer = ByteBuffer()
    buffer.append(memoryview(backing)[:1500])
    backing[:] = b"q" * 2000
    assert buffer.take() == b"m" * 1500


def test_small_appends_merge_so_chunk_count_stays_bounded() -> None:
    buffer = ByteBuffer()
    expected = bytes(i % 251 for i in range(64 * 1024))
    for i in range(len(expected)):
        buffer.append(expected[i : i + 1])
    chunks = buffer.head_chunks(10**6)
    assert len(buffer) == 64 * 1024
    assert len(chunks) < 1000
    assert len(chunks) <= 64 * 1024 // MERGE_LIMIT_BYTES + 1
    assert all(len(chunk) > 0 for chunk in chunks)
    assert buffer.take() == expected


def test_large_append_is_never_merged_into_the_tail() -> None:
    buffer = ByteBuffer(b"small")
    big = b"B" * BIG
    buffer.append(big)
    chunks = buffer.head_chunks(10)
    assert len(chunks) == 2
    assert chunks[1] is big


# -- append_unsent and head_chunks -------------------------------------------------------------


def test_append_unsent_keeps_a_view_of_the_unsent_tail_of_bytes() -> None:
    data = b"0123456789" * 1000
    buffer = ByteBuffer()
    buffer.append_unsent(data, 4000)
    assert len(buffer) == 6000
    chunk = buffer.head_chunks(1)[0]
    assert isinstance(chunk, memoryview)
    assert chunk.obj is data
    assert buffer.take() == data[4000:]


def test_append_unsent_with_nothing_sent_keeps_the_object() -> None:
    data = b"n" * 100
    buffer = ByteBuffer()
    buffer.append_unsent(data, 0)
    assert len(buffer) == 100
    assert buffer.head_chunks(1)[0] is data


def test_append_unsent_when_everything_was_sent_adds_nothing() -> None:
    buffer = ByteBuffer()
    buffer.append_unsent(b"all gone", 8)
    assert len(buffer) == 0
    assert buffer.head_chunks(10) == []


def test_append_unsent_copies_mutable_input() -> None:
    data = bytearray(b"0123456789")
    buffer = ByteBuffer()
    buffer.append_unsent(data, 4)
    data[:] = b"XXXXXXXXXX"
    assert len(buffer) == 6
    assert buffer.take() == b"456789"


def test_head_chunks_returns_at_most_limit_chunks_in_order() -> None:
    parts = [bytes([65 + i]) * BIG for i in range(5)]
    buffer = chunked(*parts)
    assert [bytes(c) for c in buffer.head_chunks(3)] == parts[:3]
    assert [bytes(c) for c in buffer.head_chunks(5)] == parts
    assert [bytes(c) for c in buffer.head_chunks(99)] == parts
    assert len(buffer) == 5 * BIG


# -- find and take_line ------------------------------------------------------------------------


def test_find_in_a_single_chunk() -> None:
    buffer = ByteBuffer(b"hello\nworld\n")
    assert buffer.find(b"\n") == 5
    assert buffer.find(b"world") == 6
    assert buffer.find(b"missing") == -1
    assert len(buffer) == 12


def test_find_multi_byte_needle_straddling_a_chunk_boundary() -> None:
    buffer = chunked(b"a" * 2000 + b"\r", b"\n" + b"b" * 2000)
    assert buffer.find(b"\r\n") == 2000
    assert len(buffer) == 4002


def test_find_needle_spanning_three_chunks() -> None:
    buffer = chunked(b"xxab", b"c", b"dyy")
    assert buffer.find(b"abcd") == 2
    assert buffer.find(b"bcdy") == 3
    assert buffer.find(b"abcdyy") == 2
    assert buffer.find(b"abcdyyz") == -1


def test_find_with_start_skips_earlier_matches() -> None:
    buffer = chunked(b"ab\r\nc", b"d\r", b"\nef\r\n")
    assert buffer.find(b"\r\n") == 2
    assert buffer.find(b"\r\n", 3) == 6
    assert buffer.find(b"\r\n", 7) == 10
    assert buffer.find(b"\r\n", 11) == -1
    assert buffer.find(b"\r\n", 100) == -1


def test_find_with_start_inside_a_boundary_needle() -> None:
    buffer = chunked(b"xx\r", b"\nyy")
    assert buffer.find(b"\r\n", 2) == 2
    assert buffer.find(b"\r\n", 3) == -1


def test_find_after_partial_consume_searches_the_view() -> None:
    buffer = ByteBuffer(b"skip;" + b"z" * 2000 + b";end")
    buffer.consume(5)
    assert buffer.find(b";") == 2000
    assert buffer.find(b";end") == 2000


def test_find_rejects_an_empty_needle() -> None:
    with pytest.raises(ValueError):
        ByteBuffer(b"abc").find(b"")


def test_find_in_empty_buffer_is_minus_one() -> None:
    assert ByteBuffer().find(b"x") == -1


FIND_DATA = b"ab\r\nab\r\r\n\nba"


@pytest.mark.parametrize("needle", [b"\r\n", b"ab", b"\r\r\n", b"b\r\n", b"\n\nb", b"a", b"zz"])
def test_find_agrees_with_bytes_find_at_every_split_and_start(needle: bytes) -> None:
    n = len(FIND_DATA)
    for i in range(n + 1):
        for j in range(i, n + 1):
            buffer = chunked(FIND_DATA[:i], FIND_DATA[i:j], FIND_DATA[j:])
            for start in range(n + 2):
                assert buffer.find(needle, start) == FIND_DATA.find(needle, start), (i, j, start)


def test_take_line_returns_line_without_delimiter_and_removes_both() -> None:
    buffer = ByteBuffer(b"one\ntwo\npartial")
    assert buffer.take_line() == b"one"
    assert len(buffer) == 11
    assert buffer.take_line() == b"two"
    assert len(buffer) == 7
    assert buffer.take_line() is None
    assert len(buffer) == 7
    buffer.append(b"\n")
    assert buffer.take_line() == b"partial"
    assert len(buffer) == 0


def test_take_line_with_multi_byte_delimiter_across_chunks() -> None:
    buffer = chunked(b"a" * 2000 + b"\r", b"\nrest")
    assert buffer.take_line(b"\r\n") == b"a" * 2000
    assert len(buffer) == 4
    assert buffer.peek() == b"rest"


def test_take_line_with_start_still_returns_from_the_head() -> None:
    buffer = ByteBuffer(b"abcdef\n")
    assert buffer.take_line(b"\n", start=3) == b"abcdef"
    assert len(buffer) == 0


def test_take_line_of_empty_line() -> None:
    buffer = ByteBuffer(b"\nx")
    assert buffer.take_line() == b""
    assert len(buffer) == 1
