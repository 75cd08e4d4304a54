"""wsgi.input and wsgi.errors as plain objects, with a scripted pull()."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import ClientDisconnected
from bridge.wsgi_streams import ErrorStream, FileWrapper, StreamingInput


class Pulls:
    count = 0


def make_input(chunks: list[bytes], limit: int | None = None, *, truncated: bool = False) -> StreamingInput:
    """A stream whose first chunk is chunks[0]; the rest arrive one pull at a time."""
    rest = list(chunks[1:])
    state = {"ended": False}
    Pulls.count = 0

    def pull() -> tuple[bytes, bool]:
        Pulls.count += 1
        assert not state["ended"], "pulled past the end of the body"
        if not rest:
            if truncated:
                raise ClientDisconnected("gone")
            state["ended"] = True
            return b"", False
        chunk = rest.pop(0)
        more = bool(rest) or truncated
        state["ended"] = not more
        return chunk, more

    return StreamingInput(chunks[0], pull, limit)


def test_read_all() -> None:
    stream = make_input([b"ab", b"cd", b"", b"ef"])
    assert stream.read() == b"abcdef"
    assert stream.read() == b""
    assert stream.read(10) == b""


@pytest.mark.parametrize("arg", [-1, None])
def test_read_everything_variants(arg: int | None) -> None:
    assert make_input([b"ab", b"cd"]).read(arg) == b"abcd"


def test_read_sized_pulls_lazily() -> None:
    stream = make_input([b"abc", b"def", b"ghi"])
    assert stream.read(2) == b"ab"
    assert Pulls.count == 0
    assert stream.read(2) == b"cd"
    assert Pulls.count == 1
    assert stream.read(0) == b""
    assert stream.read(100) == b"efghi"


def test_readline_with_size() -> None:
    # Checklist row 43.
    stream = make_input([b"abcd", b"efgh\n", b"xy"])
    assert stream.readline(5) == b"abcde"
    assert stream.readline(5) == b"fgh\n"
    assert stream.readline(5) == b"xy"
    assert stream.readline(5) == b""


def test_readline_and_iteration() -> None:
    stream = make_input([b"one\ntw", b"o\n", b"three"])
    assert list(stream) == [b"one\n", b"two\n", b"three"]
    assert make_input([b""]).readline() == b""
    assert make_input([b"abc"]).readline(0) == b""


def test_readlines_hint_is_bytes() -> None:
    stream = make_input([b"aa\nbb\ncc\n", b"dd\n"])
    assert stream.readlines(4) == [b"aa\n", b"bb\n"]  # 3 bytes < 4, so a second line
    assert stream.readlines() == [b"cc\n", b"dd\n"]
    assert make_input([b""]).readlines(1) == []
    assert make_input([b"a\nb\n"]).readlines(0) == [b"a\n", b"b\n"]


def test_never_past_content_length() -> None:
    stream = make_input([b"abc", b"defgh", b"more"], limit=5)
    assert stream.read() == b"abcde"
    assert stream.at_eof
    assert Pulls.count == 1


def test_truncated_body_raises_oserror() -> None:
    stream = make_input([b"abc", b"def"], truncated=True)
    assert stream.read(3) == b"abc"
    with pytest.raises(OSError):
        stream.read()
    stream = make_input([b"abc"], truncated=True)
    with pytest.raises(ClientDisconnected):
        stream.readline()


def test_returns_exactly_bytes() -> None:
    stream = make_input([b"a\nb", b"c"])
    for value in (stream.readline(), stream.read(1), stream.read()):
        assert type(value) is bytes


def test_close_is_a_no_op() -> None:
    stream = make_input([b"abc"])
    stream.close()
    assert stream.read() == b"abc"


@given(
    st.lists(st.binary(max_size=12), min_size=1, max_size=8),
    st.lists(st.tuples(st.sampled_from(["read", "readline", "readlines"]), st.integers(-1, 10)), max_size=12),
)
def test_behaves_like_bytesio(chunks: list[bytes], calls: list[tuple[str, int]]) -> None:
    stream = make_input(chunks)
    reference = io.BytesIO(b"".join(chunks))
    for method, arg in calls:
        assert getattr(stream, method)(arg) == getattr(reference, method)(arg), (method, arg)
    assert stream.read() == reference.read()


def test_error_stream_logs_lines(caplog: pytest.LogCaptureFixture) -> None:
    stream = ErrorStream()
    with caplog.at_level(logging.INFO, logger="bridge.wsgi.errors"):
        print("first line", file=stream)
        stream.write("partial ")
        stream.writelines(["still ", "partial"])
        assert [r.getMessage() for r in caplog.records] == ["first line"]
        stream.write(" done\r\nsecond ünïcode ✓\n\n")
        stream.write("tail")
        stream.flush()
    assert [r.getMessage() for r in caplog.records] == [
        "first line",
        "partial still partial done",
        "second ünïcode ✓",
        "tail",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    with pytest.raises(TypeError):
        stream.write(b"bytes")  # type: ignore[arg-type]


def test_error_stream_works_as_logging_handler_stream(caplog: pytest.LogCaptureFixture) -> None:
    stream = ErrorStream()
    app_logger = logging.getLogger("tests.app")
    handler = logging.StreamHandler(stream)
    app_logger.addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="bridge.wsgi.errors"):
            app_logger.error("from the app")
    finally:
        app_logger.removeHandler(handler)
    assert "from the app" in [r.getMessage() for r in caplog.records]


def test_file_wrapper(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    data = bytes(range(256)) * 1000
    path.write_bytes(data)
    handle = path.open("rb")
    handle.seek(10)
    wrapper = FileWrapper(handle, 4096)
    chunks = list(wrapper)
    assert b"".join(chunks) == data[10:]
    assert all(len(c) >= 64 * 1024 for c in chunks[:-1])
    wrapper.close()
    assert handle.closed


def test_file_wrapper_without_close() -> None:
    class Source:
        def __init__(self) -> None:
            self.parts = [b"ab", b""]

        def read(self, size: int) -> bytes:
            return self.parts.pop(0)

    wrapper = FileWrapper(Source())  # type: ignore[arg-type]
    assert list(wrapper) == [b"ab"]
    assert not hasattr(wrapper, "close")
