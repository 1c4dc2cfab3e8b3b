"""A document's bytes become its text, its title and its sections: plain text, Markdown, HTML, PDF.

Each format keeps what a citation needs: the title, the heading each part of the text is under,
and character offsets into the extracted text. What cannot be read (binary junk, a wrong encoding,
a PDF without a text layer, nothing but whitespace) raises ``DocumentError`` with a message that
says what to change.
"""

from __future__ import annotations

import html.parser
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from voicemesh.common.errors import InvalidRequest
from voicemesh.common.limits import MAX_DOCUMENT_BYTES, MAX_DOCUMENT_CHARS

MEDIA_TYPES = ("text/plain", "text/markdown", "text/html", "application/pdf")
_BY_EXTENSION = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".rst": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "text/html",
    ".pdf": "application/pdf",
}
_BLANK_LINES = re.compile(r"\n\s*\n")


class DocumentError(InvalidRequest):
    """This document cannot be ingested; the others of its request still can."""


@dataclass(frozen=True)
class Section:
    heading: str  # "" before a document's first heading
    start: int  # offsets into ParsedDocument.text
    end: int


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    text: str
    sections: list[Section]


@dataclass
class _Builder:
    """Text blocks appended under the current heading, with their offsets kept."""

    parts: list[str] = field(default_factory=list)
    size: int = 0
    sections: list[Section] = field(default_factory=list)
    heading: str = ""
    section_start: int = 0

    def block(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        if self.parts:
            self.parts.append("\n\n")
            self.size += 2
        self.parts.append(text)
        self.size += len(text)
        if self.size > MAX_DOCUMENT_CHARS:
            raise DocumentError(f"its text is over {MAX_DOCUMENT_CHARS} characters; split it into parts")

    def start_section(self, heading: str) -> None:
        self._close()
        self.heading = " ".join(heading.split())
        self.section_start = self.size + (2 if self.parts else 0)

    def build(self, title: str) -> ParsedDocument:
        self._close()
        text = "".join(self.parts)
        if not text.strip():
            raise DocumentError("it has no text")
        return ParsedDocument(" ".join(title.split()), text, self.sections)

    def _close(self) -> None:
        start = min(self.section_start, self.size)
        if self.size > start:
            self.sections.append(Section(self.heading, start, self.size))


def media_type_of(source: str, declared: str, data: bytes) -> str:
    """The declared type, else the source's extension, else what the bytes look like."""
    if declared:
        if declared not in MEDIA_TYPES:
            raise DocumentError(f"media type {declared!r} is not one of {', '.join(MEDIA_TYPES)}")
        return declared
    by_name = _BY_EXTENSION.get(PurePosixPath(source.lower()).suffix)
    if by_name:
        return by_name
    head = data[:1024].lstrip().lower()
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith((b"<!doctype html", b"<html")):
        return "text/html"
    return "text/plain"


def decode_text(data: bytes) -> str:
    """UTF-8 (or UTF-16/32 with a byte-order mark); anything else is refused, saying where."""
    for bom, encoding in (
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding, errors="strict")
    if b"\0" in data[:8192]:
        raise DocumentError("it is binary, not text; send text, Markdown, HTML or PDF")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"it is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); convert it to UTF-8"
        ) from None
    controls = sum(1 for c in text[:8192] if ord(c) < 32 and c not in "\n\r\t\f")
    if controls > 8:
        raise DocumentError("it is binary, not text; send text, Markdown, HTML or PDF")
    return text


def parse(source: str, title: str, media_type: str, data: bytes) -> ParsedDocument:
    """The document's text and sections; ``title`` empty takes the document's own, else its name."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(
            f"it is {len(data) / (1 << 20):.1f} MiB, over the {MAX_DOCUMENT_BYTES >> 20} MiB a document may "
            "be; split it"
        )
    kind = media_type_of(source, media_type, data)
    fallback = title or PurePosixPath(source).name or source
    if kind == "application/pdf":
        return _pdf(data, title, fallback)
    text = decode_text(data)
    if kind == "text/markdown":
        return _markdown(text, title, fallback)
    if kind == "text/html":
        return _html(text, title, fallback)
    builder = _Builder()
    for block in _BLANK_LINES.split(text):
        builder.block(block)
    return builder.build(fallback)


def _markdown(text: str, title: str, fallback: str) -> ParsedDocument:
    from markdown_it import MarkdownIt

    builder = _Builder()
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    first_heading = ""
    in_heading = False
    for token in tokens:
        if token.type == "heading_open":
            in_heading = True
        elif token.type == "heading_close":
            in_heading = False
        elif token.type == "inline" and in_heading:
            heading = _inline_text(token)
            first_heading = first_heading or heading
            builder.start_section(heading)
        elif token.type == "inline":
            builder.block(_inline_text(token))
        elif token.type in ("fence", "code_block"):
            builder.block(token.content)
    return builder.build(title or first_heading or fallback)


def _inline_text(token: object) -> str:
    children = getattr(token, "children", None) or []
    parts = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts) if children else str(getattr(token, "content", ""))


_SKIPPED = {"script", "style", "noscript", "template", "svg", "nav", "footer"}
_BLOCKS = {
    "p", "div", "li", "td", "th", "tr", "pre", "blockquote", "dd", "dt", "section", "article",
    "br", "table", "ul", "ol", "dl", "figcaption", "caption", "main", "aside", "header",
}  # fmt: skip
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


class _HtmlText(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.builder = _Builder()
        self.title = ""
        self.first_heading = ""
        self._skip = 0
        self._in_title = False
        self._heading: list[str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIPPED:
            self._skip += 1
        elif tag in _HEADINGS:
            self._flush()
            self._heading = []
        elif tag in _BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag in _HEADINGS and self._heading is not None:
            heading = " ".join("".join(self._heading).split())
            self._heading = None
            if heading:
                self.first_heading = self.first_heading or heading
                self.builder.start_section(heading)
        elif tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif self._skip:
            return
        elif self._heading is not None:
            self._heading.append(data)
        else:
            self._text.append(data)

    def _flush(self) -> None:
        self.builder.block(" ".join("".join(self._text).split()))
        self._text = []

    def close(self) -> None:
        super().close()
        self._flush()


def _html(text: str, title: str, fallback: str) -> ParsedDocument:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    return parser.builder.build(title or parser.title or parser.first_heading or fallback)


def _pdf(data: bytes, title: str, fallback: str) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # it warns about every quirk of a file
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError("it is an encrypted PDF; send it without a password")
        builder = _Builder()
        for number, page in enumerate(reader.pages, start=1):
            builder.start_section(f"page {number}")
            for block in _BLANK_LINES.split(page.extract_text() or ""):
                builder.block(" ".join(block.split()))
        own_title = (reader.metadata.title if reader.metadata is not None else None) or ""
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(f"it is not a readable PDF ({exc})") from None
    try:
        return builder.build(title or own_title or fallback)
    except DocumentError:
        raise DocumentError("no text in this PDF (a scan without a text layer?)") from None
