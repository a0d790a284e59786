"""Files sent through the online service: known by their content (never by their name), scanned by clamd,
kept under the SHA-256 of their bytes, and served only while the bytes still match it."""

from __future__ import annotations

import hashlib
import io
import logging
import socket
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from notifications.folder import write_atomically

from .config import UploadSettings
from .errors import DamagedFile, InvalidInput

log = logging.getLogger(__name__)

MB = 1024 * 1024
CHUNK = 64 * 1024  # what clamd's INSTREAM is sent in (its StreamMaxLength limits the whole file, not a chunk)
REPLY_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class Kind:
    """What a file's content is: its media type, the extension it is kept and served with, and in words."""

    media_type: str
    extension: str
    words: str  # "a PDF", "a PNG image": what a family reads in a message


@dataclass(frozen=True, slots=True)
class Stored:
    """A file kept: its hash and size, what it is, and the absolute path of its bytes."""

    sha256: str
    size: int
    media_type: str
    extension: str
    path: str


PDF = Kind("application/pdf", "pdf", "a PDF")
DOCX = Kind("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx", "a Word document")
DOC = Kind("application/msword", "doc", "a Word 97-2003 document")
PNG = Kind("image/png", "png", "a PNG image")
JPEG = Kind("image/jpeg", "jpg", "a JPEG image")
GIF = Kind("image/gif", "gif", "a GIF image")
WEBP = Kind("image/webp", "webp", "a WebP image")
HEIC = Kind("image/heic", "heic", "a HEIC image")
HEIF = Kind("image/heif", "heif", "a HEIF image")
MP3 = Kind("audio/mpeg", "mp3", "an MP3 recording")
M4A = Kind("audio/mp4", "m4a", "an M4A recording")
WAV = Kind("audio/wav", "wav", "a WAV recording")
OGG = Kind("audio/ogg", "ogg", "an OGG recording")
KINDS = (PDF, DOCX, DOC, PNG, JPEG, GIF, WEBP, HEIC, HEIF, MP3, M4A, WAV, OGG)
ALIASES = {"jpeg": "jpg", "heif": "heic"}  # two names for one kind of content
EXTENSIONS = frozenset({kind.extension for kind in KINDS} | set(ALIASES))
ACCEPTED = (
    "Send a PDF, a Word document (.docx or .doc), a picture (JPEG, PNG, GIF, WebP or HEIC) "
    "or a sound recording (MP3, M4A, WAV or OGG)"
)
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Word 97-2003, and Excel's and PowerPoint's files of the time
WORD_STREAM = "WordDocument".encode("utf-16-le")  # the stream every .doc has (a directory name, UTF-16)
HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis"}


def check(data: bytes, filename: str, settings: UploadSettings) -> Kind:
    """A file sent online, before it is kept: its size, its content against its name, then the virus check.

    Raises:
        InvalidInput: the file is refused; the message says why in words a family reads.
    """
    limit = settings.max_megabytes
    if len(data) > limit * MB:
        shown = f"{len(data) / MB:.1f}"
        size = f"{shown} MB" if float(shown) > limit else f"more than {limit} MB"
        raise InvalidInput(f"The file ‘{_shown(filename)}’ is {size}: the largest we accept is {limit} MB")
    kind = identify(data, filename)
    scan(data, settings)
    return kind


def identify(data: bytes, filename: str) -> Kind:
    """What a file is, from its content; the extension of its name must agree (.jpg and .jpeg alike).

    Raises:
        InvalidInput: empty, a kind we do not accept, or a name that says something its content is not.
    """
    name = _shown(filename)
    if not data:
        raise InvalidInput(f"The file ‘{name}’ is empty: choose it again, or send another file")
    _, dot, extension = filename.strip().replace("\\", "/").rsplit("/", 1)[-1].rpartition(".")
    extension = extension.lower() if dot else ""
    kind = _sniff(data)
    if not extension:
        hint = f": it looks like {kind.words}, so rename it to end in .{kind.extension}" if kind else ""
        raise InvalidInput(f"The file ‘{name}’ has no type at the end of its name (like .pdf or .jpg){hint}")
    if extension not in EXTENSIONS:
        raise InvalidInput(f"The file ‘{name}’ is not a type we accept. {ACCEPTED}")
    expected = next(k for k in KINDS if _same(k.extension, extension))
    if kind is None:
        raise InvalidInput(f"The file ‘{name}’ is not {expected.words}: its content is {_refused(data)}")
    if not _same(kind.extension, extension):
        raise InvalidInput(f"The file ‘{name}’ is not {expected.words}: its content is {kind.words}")
    if kind is PDF and any(marker in data for marker in ACTIVE_PDF):
        raise InvalidInput(
            f"The file ‘{name}’ has a script or a program inside it, so we cannot accept it. "
            "Save or print it as a PDF again, or send it as a Word document"
        )
    return kind


# What makes a PDF run something when opened (a script, or launching a program): such a file is refused.
# Long names only: a short one (/JS) turns up by chance in compressed data.
ACTIVE_PDF = (b"/JavaScript", b"/Launch")


def scan(data: bytes, settings: UploadSettings) -> None:
    """Ask clamd whether the file carries a virus, with its INSTREAM command; nothing when no clamd is set.

    Fails closed: a file that cannot be scanned is refused, never kept unscanned.
    The protocol: https://docs.clamav.net/manual/Usage/Scanning.html#clamd (INSTREAM)

    Raises:
        InvalidInput: clamd found a virus, or could not be reached, or answered something else.
    """
    address = settings.clamd
    if address is None:
        return
    view = memoryview(data)
    try:
        with _connect(address, settings.clamd_timeout_seconds) as conn:
            conn.sendall(b"zINSTREAM\0")
            for start in range(0, len(view), CHUNK):
                chunk = view[start : start + CHUNK]
                conn.sendall(struct.pack(">I", len(chunk)))
                conn.sendall(chunk)
            conn.sendall(struct.pack(">I", 0))
            reply = _reply(conn)
    except OSError as exc:  # refused, reset, unreachable, or timed out (socket.timeout is an OSError)
        log.warning("virus check unreachable", extra={"clamd": address, "error": type(exc).__name__})
        raise _unscanned(address, "could not be reached") from exc
    if reply == b"stream: OK":
        return
    said = reply[:200].decode("ascii", "replace")
    if reply.startswith(b"stream: ") and reply.endswith(b" FOUND"):  # the virus's name is for the log, not the family
        log.warning("upload refused by the virus check", extra={"clamd": address, "reply": said})
        raise InvalidInput("The file was refused by the virus check: send a clean copy of it, or ask the council")
    log.error("virus check answered unexpectedly", extra={"clamd": address, "reply": said})
    raise _unscanned(address, "gave an answer we could not read" if reply else "did not answer")


def store(data: bytes, folder: Path) -> tuple[str, str]:
    """Keep the bytes at folder/uploads/<first 2 of the hash>/<SHA-256>: no extension, no name a family gave.

    Written whole or not at all (a temporary file, then os.replace), 0600 in 0700 folders. The same bytes
    twice are one file; a damaged copy is written again. Returns (sha256, absolute path).
    """
    sha256 = hashlib.sha256(data).hexdigest()
    root = Path(folder).absolute()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    shard = root / "uploads" / sha256[:2]
    for directory in (shard.parent, shard):
        directory.mkdir(exist_ok=True, mode=0o700)
    path = shard / sha256
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
        return sha256, str(path)
    write_atomically(path, data)  # through a temporary file made 0600 whatever the process's umask
    return sha256, str(path)


def read(path: str, sha256: str) -> bytes:
    """A kept file's bytes, once they are shown to be the ones kept (their SHA-256 is the one recorded).

    Raises:
        DamagedFile: the file is missing, or has been changed or replaced since it was kept.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DamagedFile(f"the uploaded file {sha256[:12]} is missing: restore it from backup") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise DamagedFile(
            f"the uploaded file {sha256[:12]} has been changed or damaged since it was kept (its hash differs): "
            "restore it from backup"
        )
    return data


def safe_download_name(case_id: int, n: int, kind: Kind | str) -> str:
    """The name a kept file is downloaded under, "case-12-upload-3.pdf": never the name it was sent with."""
    extension = kind.extension if isinstance(kind, Kind) else kind.lower().lstrip(".")
    if extension not in EXTENSIONS:
        raise ValueError(f"'{extension}' is not the extension of a kind of file we keep")
    return f"case-{int(case_id)}-upload-{int(n)}.{extension}"


def _sniff(data: bytes) -> Kind | None:
    head = data[:1024]
    signatures = ((b"\x89PNG\r\n\x1a\n", PNG), (b"\xff\xd8\xff", JPEG), (b"GIF87a", GIF), (b"GIF89a", GIF),
                  (b"OggS", OGG), (b"ID3", MP3))  # fmt: skip
    for signature, kind in signatures:
        if head.startswith(signature):
            return kind
    if head.startswith(b"RIFF") and head[8:12] in (b"WEBP", b"WAVE"):
        return WEBP if head[8:12] == b"WEBP" else WAV
    if head[4:8] == b"ftyp":
        return _iso_media(head)
    if _mpeg_audio_frame(head):
        return MP3
    if head.startswith(OLE2):
        return DOC if WORD_STREAM in data else None
    if head.startswith(b"PK\x03\x04"):
        return DOCX if _is_docx(data) else None
    at = head.find(b"%PDF-")
    # A reader skips what comes before %PDF-; markup there would make the file a web page as well.
    return PDF if at >= 0 and b"<" not in head[:at] else None


def _iso_media(head: bytes) -> Kind | None:
    """HEIC, HEIF or M4A from an ISO base media file's ftyp box: its major brand, then its compatible ones."""
    major, end = head[8:12], min(int.from_bytes(head[:4], "big"), len(head))
    brands = {major} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & HEIC_BRANDS:
        return HEIC
    if major in (b"mif1", b"heif"):
        return HEIF
    return M4A if major in (b"M4A ", b"mp42", b"isom") else None


def _mpeg_audio_frame(head: bytes) -> bool:
    """An MP3 with no ID3 tag starts with a frame: 11 bits of sync, a version, layer III, a real bitrate."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer, bitrate, rate = (head[1] >> 3) & 3, (head[1] >> 1) & 3, head[2] >> 4, (head[2] >> 2) & 3
    return version != 1 and layer == 1 and bitrate not in (0, 15) and rate != 3


def _is_docx(data: bytes) -> bool:
    """A Word document: the zip's list of names and its [Content_Types].xml, read with a limit, nothing else
    decompressed (so a zip bomb costs nothing). One with macros (a .docm renamed) is refused."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if not {"[Content_Types].xml", "word/document.xml"} <= names:
                return False
            with archive.open("[Content_Types].xml") as member:
                types = member.read(MB)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError):
        return False  # damaged, encrypted, or compressed in a way Word does not use
    return b"wordprocessingml.document.main+xml" in types and b"macroenabled" not in types.lower()


def _refused(data: bytes) -> str:
    """What a file we do not accept seems to be, in words."""
    head = data[:1024]
    lowered = head.lower()
    if b"<svg" in lowered:
        return "an SVG picture, which we do not accept because it can carry a script"
    if any(tag in lowered for tag in (b"<html", b"<!doctype html", b"<script", b"<body")):
        return "a web page (HTML)"
    if head.startswith((b"MZ", b"\x7fELF", b"\xcf\xfa\xed\xfe", b"#!")):
        return "a program"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive that is not a Word document"
    if head.startswith(OLE2):
        return "an older Office file that is not a Word document"
    if all(byte >= 32 or byte in b"\t\n\r\f" for byte in head):
        return "plain text"
    return "not a type we accept"


def _unscanned(address: str, problem: str) -> InvalidInput:
    """A file not kept because the scan could not run: the address and the problem go to the log for the
    council's administrators; the person sending it is told what to do, not where the scanner is."""
    log.warning("an uploaded file was refused unscanned: the virus check at %s %s", address, problem)
    return InvalidInput("The file could not be checked for viruses, so it was not kept. Try again later")


def _same(extension: str, other: str) -> bool:
    return ALIASES.get(extension, extension) == ALIASES.get(other, other)


def _shown(filename: str) -> str:
    """A file's name as a message quotes it: its last part, printable, not too long."""
    name = "".join(c for c in filename.replace("\\", "/").rsplit("/", 1)[-1].strip() if c.isprintable())
    return name if len(name) <= 80 else f"{name[:50]}…{name[-25:]}"


def _connect(address: str, timeout_seconds: float) -> socket.socket:
    if address.startswith("unix://"):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(timeout_seconds)
        try:
            conn.connect(address.removeprefix("unix://"))
        except OSError:
            conn.close()
            raise
        return conn
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    return socket.create_connection((host, int(port)), timeout=timeout_seconds)


def _reply(conn: socket.socket) -> bytes:
    """clamd's answer, up to the NUL that ends it (the z in zINSTREAM asks for one)."""
    reply = b""
    while b"\0" not in reply and len(reply) < REPLY_LIMIT:
        part = conn.recv(REPLY_LIMIT)
        if not part:
            break
        reply += part
    return reply.split(b"\0", 1)[0].strip()
