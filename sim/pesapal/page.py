"""The stand-in's hosted payment page: what ``redirect_url`` points at (the real one is Pesapal's iframe)."""

from __future__ import annotations

from html import escape

_STYLE = (
    "body{font-family:sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}"
    "form{display:inline-block;margin-right:.5rem}button{font-size:1rem;padding:.4rem 1.2rem}"
    "dt{font-weight:bold}dd{margin:0 0 .5rem}"
)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def payment_page(
    *,
    merchant_reference: str,
    currency: str,
    amount: float,
    description: str,
    status: str,
    pay_action: str,
    cancel_action: str,
    return_url: str,
) -> str:
    details = (
        "<dl>"
        f"<dt>Merchant reference</dt><dd>{escape(merchant_reference)}</dd>"
        f"<dt>Description</dt><dd>{escape(description)}</dd>"
        f'<dt>Status</dt><dd id="status">{escape(status)}</dd>'
        "</dl>"
    )
    heading = f"<h1>Pay {escape(currency)} {amount:,.2f}</h1>"
    if status != "INVALID":
        back = f'<p><a id="return" href="{escape(return_url)}">Return to the merchant</a></p>'
        return _page(f"Pesapal stand-in — {merchant_reference}", heading + details + back)
    forms = (
        f'<form method="post" action="{escape(pay_action)}"><button type="submit">Pay</button></form>'
        f'<form method="post" action="{escape(cancel_action)}"><button type="submit">Cancel</button></form>'
    )
    return _page(f"Pesapal stand-in — pay {merchant_reference}", heading + details + forms)


def message_page(title: str, text: str) -> str:
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>")
