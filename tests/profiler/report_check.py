"""Checks of exported reports for test_export: `html FILE` parses an HTML file strictly (every
element closed in order, no scripts, no network references) and prints counts as JSON; `png FILE`
decodes a PNG (8-bit, no interlace) with the standard library and prints its colour statistics
as JSON. Exit status 1 with a message on stderr when the file is malformed."""

import collections
import html.parser
import json
import struct
import sys
import zlib

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class StrictParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.errors = []
        self.counts = collections.Counter()
        self.ids = []
        self.doctype = False
        self.text = []

    def handle_decl(self, decl):
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        self.counts[tag] += 1
        for name, value in attrs:
            if name == "id":
                self.ids.append(value)
            if name in ("src", "href") or (value and "url(" in value):
                self.errors.append(f"external reference {name}={value!r} in <{tag}>")
        if tag == "script":
            self.errors.append("a <script> element")
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        self.counts[tag] += 1
        if tag not in VOID and tag not in ("rect", "line", "path", "circle"):
            self.errors.append(f"self-closed <{tag}/> at {self.getpos()}")

    def handle_endtag(self, tag):
        if tag in VOID:
            self.errors.append(f"end tag of void element </{tag}> at {self.getpos()}")
            return
        if not self.stack:
            self.errors.append(f"</{tag}> at {self.getpos()} closes nothing")
            return
        open_tag, where = self.stack.pop()
        if open_tag != tag:
            self.errors.append(f"</{tag}> at {self.getpos()} closes <{open_tag}> from {where}")

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] not in ("style", "title"):
            self.text.append(data)


def check_html(path):
    with open(path, encoding="utf-8") as f:  # fails on invalid UTF-8
        source = f.read()
    parser = StrictParser()
    parser.feed(source)
    parser.close()
    errors = list(parser.errors)
    if not parser.doctype:
        errors.append("no <!DOCTYPE html>")
    for tag, where in parser.stack:
        errors.append(f"<{tag}> from {where} is never closed")
    if errors:
        sys.stderr.write("\n".join(errors[:20]) + "\n")
        return 1
    print(json.dumps({"counts": parser.counts, "ids": parser.ids, "text": "".join(parser.text)}))
    return 0


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def check_png(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.stderr.write("not a PNG file\n")
        return 1
    pos, idat, header = 8, b"", None
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    if header is None:
        sys.stderr.write("no IHDR chunk\n")
        return 1
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        sys.stderr.write(f"unsupported PNG: depth {depth}, colour type {colour}, interlace "
                         f"{interlace}\n")
        return 1
    raw = zlib.decompress(idat)
    stride = width * channels
    if len(raw) != height * (stride + 1):
        sys.stderr.write("image data has the wrong size\n")
        return 1
    prior = bytearray(stride)
    colours = collections.Counter()
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for x in range(channels, stride):
                line[x] = (line[x] + line[x - channels]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prior))
        elif kind == 3:
            for x in range(stride):
                left = line[x - channels] if x >= channels else 0
                line[x] = (line[x] + ((left + prior[x]) >> 1)) & 255
        elif kind == 4:
            for x in range(stride):
                left = line[x - channels] if x >= channels else 0
                upper_left = prior[x - channels] if x >= channels else 0
                line[x] = (line[x] + paeth(left, prior[x], upper_left)) & 255
        elif kind != 0:
            sys.stderr.write(f"row {y}: unknown filter {kind}\n")
            return 1
        row = bytes(line)
        colours.update(row[x:x + channels] for x in range(0, stride, channels))
        prior = line
    most = colours.most_common(1)[0][1]
    print(json.dumps({"width": width, "height": height, "colours": len(colours),
                      "dominant_share": most / (width * height)}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("html", "png"):
        sys.stderr.write("usage: report_check.py html|png FILE\n")
        sys.exit(2)
    try:
        sys.exit(check_html(sys.argv[2]) if sys.argv[1] == "html" else check_png(sys.argv[2]))
    except (OSError, UnicodeDecodeError, zlib.error, struct.error) as error:
        sys.stderr.write(f"{sys.argv[2]}: {error}\n")
        sys.exit(1)
