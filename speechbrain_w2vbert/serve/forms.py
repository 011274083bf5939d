"""Reading ``multipart/form-data`` uploads as they stream in: form fields
into memory (small, counted), the uploaded file straight into a file of the
request's private folder, the size limit enforced while the bytes arrive
(a 413 before the rest of an oversize upload is read).

Starlette's own form parser keeps uploads in spooled temporary files of the
process' temporary folder; here they go only where the service says.

Nothing here needs torch.

Example
-------
>>> import asyncio, tempfile
>>> body = (b'--b\\r\\nContent-Disposition: form-data; name="model"\\r\\n\\r\\nm\\r\\n'
...         b'--b\\r\\nContent-Disposition: form-data; name="file"; filename="a.wav"\\r\\n\\r\\nRIFF\\r\\n--b--\\r\\n')
>>> async def chunks():
...     yield body
>>> form = asyncio.run(read_form(chunks(), "multipart/form-data; boundary=b", tempfile.mkdtemp(), 1000))
>>> form.value("model"), form.file("file").filename, form.file("file").size
('m', 'a.wav', 4)

Authors: speechbrain-w2vbert contributors
"""

import os
import re
from dataclasses import dataclass, field
from typing import AsyncIterator, Dict, List, Optional

from speechbrain_w2vbert.serve.errors import APIError

__all__ = ["UploadedFile", "Form", "read_form", "MAX_FIELD_BYTES", "MAX_PARTS"]

#: Bytes of one form field (a prompt, a transcript to align) at most.
MAX_FIELD_BYTES = 256 * 1024
#: Parts of one form at most.
MAX_PARTS = 64


@dataclass
class UploadedFile:
    """An uploaded file, written to ``path``."""

    name: str  #: the form field
    filename: str  #: the name the client gave (never used as a path)
    content_type: Optional[str]
    path: str
    size: int = 0


@dataclass
class Form:
    """The fields (each name with its values, in order) and files of a form."""

    fields: Dict[str, List[str]] = field(default_factory=dict)
    files: Dict[str, List[UploadedFile]] = field(default_factory=dict)

    def names(self) -> List[str]:
        """Every field and file name, ``name[]`` written ``name``."""
        return [name[:-2] if name.endswith("[]") else name for name in [*self.fields, *self.files]]

    def values(self, name: str) -> List[str]:
        """Values of field ``name``, sent as ``name`` or as ``name[]``."""
        return self.fields.get(name, []) + self.fields.get(name + "[]", [])

    def value(self, name: str) -> Optional[str]:
        """The value of a single-valued field (None when absent).

        Raises
        ------
        APIError
            400 when the field is sent more than once.
        """
        values = self.values(name)
        if len(values) > 1:
            raise APIError(400, f"{name}: given {len(values)} times, expected once", param=name)
        return values[0] if values else None

    def file(self, name: str) -> Optional[UploadedFile]:
        """The file of field ``name`` (None when absent; 400 when several)."""
        files = self.files.get(name, [])
        if len(files) > 1:
            raise APIError(400, f"{name}: {len(files)} files sent, expected one", param=name)
        return files[0] if files else None


def _suffix(filename: str) -> str:
    """The file name's extension when it is a plain one (``.wav``), else ''
    (libsndfile mostly tells formats by their content)."""
    suffix = os.path.splitext(filename)[1]
    return suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix) else ""


async def read_form(chunks: AsyncIterator[bytes], content_type: Optional[str], folder: str, max_file_bytes: int,
                    max_field_bytes: int = MAX_FIELD_BYTES, max_parts: int = MAX_PARTS) -> Form:
    """Parses a ``multipart/form-data`` body as it arrives.

    Arguments
    ---------
    chunks : async iterator of bytes
        The request body (``request.stream()``).
    content_type : str
        The request's ``Content-Type`` header, with its boundary.
    folder : str
        Where uploaded files are written (the request's private folder).
    max_file_bytes : int
        Bytes of one uploaded file at most.
    max_field_bytes : int
        Bytes of one field at most (and of all fields, eight times that).
    max_parts : int
        Parts at most.

    Returns
    -------
    Form

    Raises
    ------
    APIError
        400: not a multipart form, or a malformed one; 413: a file or a
        field over its limit (the file's field named).
    """
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, options = parse_options_header(content_type or "")
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise APIError(400, f"expected a multipart/form-data body (with the audio in a 'file' field), got "
                            f"Content-Type {content_type or 'none'}")
    form = Form()
    part: Dict = {}
    state = {"parts": 0, "field_bytes": 0}

    def on_part_begin():
        """A new part: counted, its state reset."""
        state["parts"] += 1
        if state["parts"] > max_parts:
            raise APIError(400, f"more than {max_parts} form parts")
        part.clear()
        part.update(headers={}, header_field=b"", header_value=b"", data=bytearray(), out=None, upload=None)

    def on_header_field(data, start, end):
        """A header name's bytes."""
        part["header_field"] += data[start:end]

    def on_header_value(data, start, end):
        """A header value's bytes."""
        part["header_value"] += data[start:end]

    def on_header_end():
        """One header complete."""
        part["headers"][part["header_field"].lower()] = part["header_value"]
        part["header_field"], part["header_value"] = b"", b""

    def on_headers_finished():
        """The part's name; a file part gets its file in ``folder``."""
        disposition, params = parse_options_header(part["headers"].get(b"content-disposition", b""))
        name = params.get(b"name")
        if disposition != b"form-data" or name is None:
            raise APIError(400, "a form part without a Content-Disposition: form-data name")
        part["name"] = name.decode("utf-8", "replace")
        if b"filename" in params:
            filename = params[b"filename"].decode("utf-8", "replace")
            fd, path = _mkstemp(folder, _suffix(filename))
            part["out"] = os.fdopen(fd, "wb")
            content = part["headers"].get(b"content-type")
            part["upload"] = UploadedFile(part["name"], filename, content.decode("latin-1") if content else None, path)
            form.files.setdefault(part["name"], []).append(part["upload"])

    def on_part_data(data, start, end):
        """Bytes of the part: to its file or its field, within the limits."""
        size = end - start
        upload = part["upload"]
        if upload is not None:
            upload.size += size
            if upload.size > max_file_bytes:
                raise APIError(413, f"{upload.name}: upload over the limit of {max_file_bytes / 1e6:g} MB",
                               param=upload.name, code="file_too_large")
            part["out"].write(data[start:end])
            return
        state["field_bytes"] += size
        if len(part["data"]) + size > max_field_bytes or state["field_bytes"] > 8 * max_field_bytes:
            raise APIError(413, f"{part['name']}: form field over {max_field_bytes // 1024} KiB",
                           param=part["name"], code="field_too_large")
        part["data"] += data[start:end]

    def on_part_end():
        """The part complete: its file closed or its field's value kept."""
        if part.get("out") is not None:
            part["out"].close()
            part["out"] = None
        elif "name" in part:
            try:
                value = bytes(part["data"]).decode("utf-8")
            except UnicodeDecodeError:
                raise APIError(400, f"{part['name']}: not UTF-8 text", param=part["name"]) from None
            form.fields.setdefault(part["name"], []).append(value)

    parser = MultipartParser(options[b"boundary"], {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end})
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as error:
        raise APIError(400, f"malformed multipart/form-data body: {error}") from None
    finally:
        if part.get("out") is not None:
            part["out"].close()
    if state["parts"] and not _finished(parser):
        raise APIError(400, "multipart/form-data body ends before its closing boundary (truncated upload)")
    return form


def _finished(parser) -> bool:
    """Whether the parser reached the closing boundary."""
    from python_multipart.multipart import MultipartState

    return parser.state == MultipartState.END


def _mkstemp(folder: str, suffix: str):
    """A new private file in ``folder``: ``(fd, path)``."""
    import tempfile

    return tempfile.mkstemp(prefix="upload-", suffix=suffix, dir=folder)
