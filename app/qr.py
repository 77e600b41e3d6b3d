"""QR codes drawn by the gateway itself: an inline SVG from a QRIS payload (`qr_string`), so a
page shows the code without loading an image from anywhere else (segno, no network)."""

from __future__ import annotations

import segno
from markupsafe import Markup

QR_TEXT_MAX = 2048  # a QRIS payload is a few hundred characters


def qr_svg(text: str | None, *, scale: int = 4) -> Markup:
    """`text` as an inline `<svg>` QR code (error correction M, as Midtrans's own); empty
    when there is nothing (or too much) to draw."""
    if not text or not isinstance(text, str) or len(text) > QR_TEXT_MAX:
        return Markup("")
    code = segno.make(text, error="m", boost_error=False)
    svg = code.svg_inline(scale=scale, dark="#000", light="#fff", title="QR code")
    return Markup(svg)  # segno escapes what it writes; the payload itself is not in the SVG
