"""A plain A4 billing document as PDF (statements, credit notes): title, the two parties,
key facts, tables and notes, in the bundled DejaVu Sans (static/fonts).

DejaVu covers Latin, Greek, Cyrillic and more but not CJK: a character the font lacks is
printed as "?" rather than silently dropped, so the gap shows (the HTML version prints it).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.translation import gettext as _

from billing.documents import party_lines

if TYPE_CHECKING:
    from fpdf import FPDF

# fpdf2 (with fontTools and Pillow, about 20 MB) is imported when a document is drawn,
# not with the URLs: relay workers never draw one.

FONT_DIR = Path(settings.BASE_DIR) / "static" / "fonts"
FONT = "DejaVu"
MISSING = "?"

Table = tuple[str, list[str], list[list[str]]]


@cache
def _font_codepoints() -> frozenset[int]:
    from fpdf import FPDF
    from fpdf.fonts import TTFFont

    probe = FPDF()
    probe.add_font(FONT, "", FONT_DIR / "DejaVuSans.ttf")
    font = probe.fonts[FONT.lower()]
    if not isinstance(font, TTFFont):  # pragma: no cover - add_font always makes a TTFFont
        raise TypeError(font)
    try:
        return frozenset(font.cmap)
    finally:
        _close_fonts(probe)


def _close_fonts(pdf: FPDF) -> None:
    from fpdf.fonts import TTFFont

    # fontTools keeps each font file open (lazy loading) until told otherwise.
    for font in pdf.fonts.values():
        if isinstance(font, TTFFont):
            font.close()


def printable(text: str) -> str:
    """TEXT with each character the font cannot draw replaced by "?"."""
    codepoints = _font_codepoints()
    return "".join(char if ord(char) in codepoints or char in "\n\t" else MISSING for char in text)


def pdf_document(
    *,
    title: str,
    issuer: dict[str, str],
    billed_to: dict[str, str],
    meta: list[tuple[str, str]],
    tables: list[Table],
    notes: list[str],
) -> bytes:
    """Render one document. In each table the first column is left-aligned and the others
    right-aligned (amounts); rows are strings already formatted by the caller."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    try:
        _render(pdf, title, issuer, billed_to, meta, tables, notes)
        return bytes(pdf.output())
    finally:
        _close_fonts(pdf)


def _render(
    pdf: FPDF,
    title: str,
    issuer: dict[str, str],
    billed_to: dict[str, str],
    meta: list[tuple[str, str]],
    tables: list[Table],
    notes: list[str],
) -> None:
    from fpdf.fonts import FontFace

    pdf.set_title(printable(title))
    pdf.set_creator("TokenHub")
    pdf.add_font(FONT, "", FONT_DIR / "DejaVuSans.ttf")
    pdf.add_font(FONT, "B", FONT_DIR / "DejaVuSans-Bold.ttf")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()

    pdf.set_font(FONT, "B", 16)
    pdf.cell(text=printable(title), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    _parties(pdf, issuer=issuer, billed_to=billed_to)

    if meta:
        pdf.set_font(FONT, "", 10)
        with pdf.table(
            col_widths=(1, 2),
            width=pdf.epw * 0.6,
            align="LEFT",
            first_row_as_headings=False,
            borders_layout="NONE",
            text_align="LEFT",
        ) as table:
            for label, value in meta:
                row = table.row()
                row.cell(printable(label), style=FontFace(emphasis="BOLD"))
                row.cell(printable(value))
        pdf.ln(4)

    for heading, header, rows in tables:
        pdf.set_font(FONT, "B", 11)
        pdf.cell(text=printable(heading), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
        pdf.set_font(FONT, "", 9)
        align = ("LEFT",) + ("RIGHT",) * (len(header) - 1)
        with pdf.table(
            text_align=align,
            borders_layout="HORIZONTAL_LINES",
            headings_style=FontFace(emphasis="BOLD"),
            line_height=pdf.font_size * 1.8,
        ) as table:
            head = table.row()
            for text in header:
                head.cell(printable(text))
            for values in rows:
                row = table.row()
                for text in values:
                    row.cell(printable(text))
        pdf.ln(5)

    if notes:
        pdf.set_font(FONT, "", 8)
        for note in notes:
            pdf.multi_cell(0, 4, printable(note), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)


def _parties(pdf: FPDF, *, issuer: dict[str, str], billed_to: dict[str, str]) -> None:
    """The issuer on the left, the billed party on the right, under their labels."""
    top = pdf.get_y()
    half = pdf.epw / 2
    bottom = top
    for column, (label, details) in enumerate(((_("From"), issuer), (_("Billed to"), billed_to))):
        x = pdf.l_margin + column * half
        pdf.set_xy(x, top)
        pdf.set_font(FONT, "B", 10)
        pdf.cell(half - 4, 5, printable(label), new_x="LEFT", new_y="NEXT")
        pdf.set_font(FONT, "", 10)
        for line in party_lines(details):
            pdf.set_x(x)
            pdf.multi_cell(half - 4, 5, printable(line), new_x="LEFT", new_y="NEXT")
        bottom = max(bottom, pdf.get_y())
    pdf.set_xy(pdf.l_margin, bottom + 6)
