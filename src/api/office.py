"""What the deck and the workbook share as Office Open XML files: media types, file names,
and a package dated by the moment it reports rather than the moment it was written.

python-pptx, openpyxl and XlsxWriter (which python-pptx uses for a chart's data) date each
zip member and the package's core properties with the clock, so two renderings of one
report would differ in their bytes. ``stamped`` dates them all with the report's as-of: the
same ledger at the same moment gives the same file.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import UTC, datetime

PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
AUTHOR = "Release Ledger"
CORE_PROPERTIES = "docProps/core.xml"
ZIP_FIRST = datetime(1980, 1, 1, tzinfo=UTC)
ZIP_LAST = datetime(2107, 12, 31, 23, 59, 58, tzinfo=UTC)
"""The moments a zip member can carry (MS-DOS time); a report's as-of may lie outside."""
_CORE_DATE = re.compile(rb"(<dcterms:(created|modified)\b[^>]*>)[^<]*(</dcterms:\2>)")


def utc_naive(moment: datetime) -> datetime:
    """``moment`` in UTC without its offset, as both libraries take document dates."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def stamped(package: bytes, moment: datetime) -> bytes:
    """The zip ``package`` with every member, and every package inside it, dated ``moment``.

    Members keep their order and content; only ``docProps/core.xml``'s created and
    modified dates change, to ``moment``.
    """
    when = moment.astimezone(UTC).replace(microsecond=0)
    zipped = min(max(when, ZIP_FIRST), ZIP_LAST)
    stamp = (zipped.year, zipped.month, zipped.day, zipped.hour, zipped.minute, zipped.second)
    w3c = f"{when:%Y-%m-%dT%H:%M:%S}Z".encode()
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(package)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for member in source.infolist():
            content = source.read(member)
            if member.filename == CORE_PROPERTIES:
                content = _CORE_DATE.sub(rb"\g<1>" + w3c + rb"\g<3>", content)
            elif member.filename.endswith((".xlsx", ".pptx")):
                content = stamped(content, moment)  # a chart's embedded data
            info = zipfile.ZipInfo(member.filename, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, content)
    return out.getvalue()


def download_name(train: str, extension: str, moment: datetime) -> str:
    """``train-5.5-report-2026-12-08.pptx``: the train and the as-of day (UTC)."""
    return f"train-{train}-report-{moment.astimezone(UTC).date().isoformat()}.{extension}"
