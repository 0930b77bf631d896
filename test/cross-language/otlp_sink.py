"""A stand-in OTLP/HTTP trace collector for the cross-language test: receives the broker's spans.

    python otlp_sink.py --out SPANS.jsonl --port-file PORT

Listens on 127.0.0.1 (a free port, written to PORT once listening) for POST /v1/traces with an
OTLP ExportTraceServiceRequest in protobuf (what @opentelemetry/exporter-trace-otlp-proto
sends), and appends each span to SPANS.jsonl in the format the three client programs use
(name, kind, ids, attributes), for check.py. It decodes the protobuf wire format itself, so it
needs the standard library only; runs until terminated.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import struct
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# OTLP Span.kind values.
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def fields(buf: bytes) -> list[tuple[int, Any]]:
    """The (field number, value) pairs of one protobuf message.

    Varint and fixed fields give ints, length-delimited ones bytes.
    """
    out: list[tuple[int, Any]] = []
    pos = 0

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7

    while pos < len(buf):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, varint()))
        elif wire == 1:
            out.append((number, struct.unpack_from("<Q", buf, pos)[0]))
            pos += 8
        elif wire == 2:
            size = varint()
            out.append((number, buf[pos : pos + size]))
            pos += size
        elif wire == 5:
            out.append((number, struct.unpack_from("<I", buf, pos)[0]))
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def any_value(buf: bytes) -> Any:
    """An OTLP AnyValue: string (1), bool (2), int (3) or double (4); others as None."""
    for number, value in fields(buf):
        if number == 1:
            return value.decode("utf-8")
        if number == 2:
            return bool(value)
        if number == 3:
            return value - (1 << 64) if value >= 1 << 63 else value
        if number == 4:
            return struct.unpack("<d", struct.pack("<Q", value))[0]
    return None


def span(buf: bytes) -> dict[str, Any]:
    """An OTLP Span as a record of the programs' span files."""
    record: dict[str, Any] = {
        "name": "",
        "kind": "unspecified",
        "trace_id": "",
        "span_id": "",
        "parent_span_id": "",
        "attributes": {},
    }
    for number, value in fields(buf):
        if number == 1:
            record["trace_id"] = value.hex()
        elif number == 2:
            record["span_id"] = value.hex()
        elif number == 4:
            record["parent_span_id"] = value.hex()
        elif number == 5:
            record["name"] = value.decode("utf-8")
        elif number == 6:
            record["kind"] = KINDS.get(value, str(value))
        elif number == 9:
            kv = dict(fields(value))
            record["attributes"][kv[1].decode("utf-8")] = any_value(kv.get(2, b""))
    return record


def spans(request: bytes) -> list[dict[str, Any]]:
    """The spans of an ExportTraceServiceRequest (resource_spans → scope_spans → spans)."""
    out = []
    for number, resource_spans in fields(request):
        if number != 1:
            continue
        for number2, scope_spans in fields(resource_spans):
            if number2 != 2:
                continue
            for number3, s in fields(scope_spans):
                if number3 == 2:
                    out.append(span(s))
    return out


def main() -> None:
    """Serves until terminated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))
            # Node's http client sends the export chunked: size line, data, CRLF; size 0 ends.
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)

        def do_POST(self) -> None:
            body = self.body()
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            with open(args.out, "a", encoding="utf-8") as f:
                for record in spans(body):
                    f.write(json.dumps(record) + "\n")
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    # Renamed into place, so that the reader never sees a partly written port.
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
