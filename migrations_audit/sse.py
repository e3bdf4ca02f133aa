"""The one Server-Sent Events parser of the product, after the WHATWG rules.

Capture, replay, diff and the pages all read streams through it. It is incremental: `feed()` takes
bytes as they arrive (lines may be split anywhere, even inside a CRLF) and returns the events they
complete, so the proxy can time each event. CRLF, LF and CR all end a line; lines starting with ':'
are comments; several `data:` lines join with '\n'; a stream that ends without a final blank line
still dispatches its last event (`close()`), unlike a browser, because a recorder must not lose it.
"""

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str | None
    data: str
    id: str | None = None
    retry: int | None = None

    def as_dict(self, *, t_ms: float | None = None) -> dict:
        """The stored form of an event (in Exchange.response_events and ReplayResult.response_events)."""
        stored = {"event": self.event, "data": self.data}
        if self.id is not None:
            stored["id"] = self.id
        if t_ms is not None:
            stored["t_ms"] = round(t_ms, 3)
        return stored


class SseParser:
    def __init__(self):
        self._buffer = ""
        self._pending_cr = False
        self._decoder_tail = b""
        self._started = False
        self._reset_event()

    def _reset_event(self):
        self._event = None
        self._data: list[str] = []
        self._has_data = False
        self._id = None
        self._retry = None
        self._has_fields = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        text = self._decode(chunk)
        if not text:
            # An empty chunk must not forget a CR left pending by the previous one.
            return []
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = False
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")  # WHATWG: one leading BOM is ignored
        buffer = self._buffer + text
        events: list[SseEvent] = []
        start = 0
        end = len(buffer)
        # Walk the buffer with an index instead of re-slicing it for each line: a whole recorded
        # stream fed at once stays linear in its size.
        cr = buffer.find("\r")
        lf = buffer.find("\n")
        while True:
            # Search again only past a consumed line end, so a long LF-only stream is not rescanned
            # for a CR on every line.
            if -1 < cr < start:
                cr = buffer.find("\r", start)
            if -1 < lf < start:
                lf = buffer.find("\n", start)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                index, width = lf, 1
            elif cr + 1 < end and buffer[cr + 1] == "\n":
                index, width = cr, 2
            else:
                index, width = cr, 1
                if index == end - 1:
                    # A CR at the end of a chunk may be the first half of a CRLF split across chunks.
                    self._pending_cr = True
            event = self._line(buffer[start:index])
            if event is not None:
                events.append(event)
            start = index + width
        self._buffer = buffer[start:]
        return events

    def close(self) -> list[SseEvent]:
        """End of stream: the last line and event, even without the final blank line."""
        events = []
        tail = self._decode(b"", final=True)
        self._buffer += tail
        if self._buffer:
            event = self._line(self._buffer)
            self._buffer = ""
            if event is not None:
                events.append(event)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _decode(self, chunk: bytes, *, final: bool = False) -> str:
        data = self._decoder_tail + chunk
        if final:
            self._decoder_tail = b""
            return data.decode("utf-8", errors="replace")
        # Keep an incomplete multi-byte sequence for the next chunk.
        for back in range(1, min(4, len(data)) + 1):
            byte = data[-back]
            if byte & 0xC0 != 0x80:
                needed = (
                    2
                    if byte & 0xE0 == 0xC0
                    else 3
                    if byte & 0xF0 == 0xE0
                    else 4
                    if byte & 0xF8 == 0xF0
                    else 1
                )
                if needed > back:
                    self._decoder_tail = data[-back:]
                    return data[:-back].decode("utf-8", errors="replace")
                break
        self._decoder_tail = b""
        return data.decode("utf-8", errors="replace")

    def _line(self, line: str) -> SseEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        self._has_fields = True
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._has_fields:
            return None
        # WHATWG drops an event with no data line; a recorder keeps a named one, since a named
        # event without data still tells the diff which events came.
        if not self._has_data and self._event is None:
            self._reset_event()
            return None
        event = SseEvent(event=self._event, data="\n".join(self._data), id=self._id, retry=self._retry)
        self._reset_event()
        return event


def parse_sse(data: bytes) -> list[SseEvent]:
    """Parse a whole stream at once."""
    parser = SseParser()
    return parser.feed(data) + parser.close()


def stream_malformation(events: list[dict]) -> str:
    """Why the event stream of a JSON API is malformed, or '' when it is not: an event whose data is
    not JSON. Keep-alive pings and the `[DONE]` sentinel are exempt: the legacy streams send a bare
    timestamp as a ping's data. Such a stream is an error of the upstream (or of something between),
    not an answer to compare."""
    for number, event in enumerate(events, start=1):
        data = event.get("data", "")
        if data == "[DONE]" or event.get("event") == "ping":
            continue
        try:
            json.loads(data)
        except (ValueError, RecursionError):
            name = event.get("event") or "unnamed"
            return f"malformed event stream: event {number} ({name}) does not carry JSON"
    return ""
