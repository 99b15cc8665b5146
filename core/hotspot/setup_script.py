"""The RouterOS script (`.rsc`) that sets a provider's router up for lipapush: one user profile per
speed/device combination its plans sell, the walled garden for the portal, a least-privilege API
group, PAP login (so the portal can log a buyer in with the voucher code) and a `login.html` that
sends buyers to our portal, keeping a voucher box that works even when the portal is unreachable.

The API user's password is not written into the file (a downloaded script lingers in Downloads
folders): the script asks for it to be set by hand, to the value lipapush was given.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from core.hotspot.models import Plan, Router, profile_name


def _q(value: str) -> str:
    """A RouterOS double-quoted string: backslash, quote and $ escaped, newlines as \\n."""
    return (
        '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("\n", "\\n") + '"'
    )


def _line(text: str) -> str:
    """Text for a comment line: a newline in a router's name must not start a command."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def login_page(*, portal_url: str) -> str:
    # $(…) are the router's own variables, filled in when it serves the page.
    target = (
        f"{portal_url}?mac=$(mac-esc)&ip=$(ip)&login=$(link-login-only)"
        "&dst=$(link-orig-esc)&err=$(error-orig)"
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f'<meta http-equiv=refresh content="0;url={target}"><title>WiFi</title></head>'
        "<body style='font-family:sans-serif;max-width:24em;margin:2em auto'>"
        f"<p><a href='{target}'>Buy WiFi with M-Pesa</a></p>"
        "<form action='$(link-login-only)' method=post><p>Have a voucher?</p>"
        "<input name=username placeholder=Code autocapitalize=characters>"
        "<input type=hidden name=password id=p><input type=hidden name=dst value='$(link-orig)'>"
        '<button onclick="p.value=this.form.username.value.toUpperCase();'
        'this.form.username.value=p.value">Connect</button></form></body></html>'
    )


def setup_script(*, router: Router, plans: list[Plan], base_url: str, provider_slug: str) -> str:
    host = urlsplit(base_url).hostname or "localhost"
    portal = f"{base_url}/portal/{provider_slug}/{router.id}"
    server = router.hotspot_server
    user = _q(router.username)
    lines = [
        f"# lipapush setup for router {_line(router.name)} ({provider_slug}). Review before running:",
        "#   /import file-name=lipapush.rsc",
        f"# The API user is {router.username}: set its password to the one you gave lipapush,",
        f"#   /user set {router.username} password=...",
        "",
        "# A group that can use the API and change hotspot users, nothing else.",
        "/user group",
        ':if ([:len [find name="lipapush"]] = 0) do={ add name=lipapush '
        "policy=read,write,api,!local,!telnet,!ssh,!ftp,!reboot,!policy,!test,!winbox,!password,!web,!sniff,"
        "!sensitive,!romon comment=lipapush }",
        "/user",
        f":if ([:len [find name={user}]] = 0) do={{ add name={user} group=lipapush "
        f'password="CHANGE-ME" comment=lipapush }} else={{ set [find name={user}] group=lipapush }}',
        "",
        "# Buyers are logged in with the voucher code as username and password (PAP) by the portal.",
        "/ip hotspot profile",
        "set [find] login-by=http-chap,http-pap,cookie,mac-cookie",
        "",
        "# One user profile per speed and device limit the plans sell (vouchers name theirs).",
        "/ip hotspot user profile",
    ]
    seen: set[str] = set()
    for plan in plans:
        name = profile_name(plan.rate_limit, plan.devices)
        if name in seen:
            continue
        seen.add(name)
        rate = f" rate-limit={_q(plan.rate_limit)}" if plan.rate_limit else ""
        lines.append(
            f":if ([:len [find name={name}]] = 0) do={{ add name={name} }}\n"
            f"set [find name={name}]{rate} shared-users={plan.devices} add-mac-cookie=yes "
            f"comment={_q('lipapush: ' + plan.name)}"
        )
    lines += [
        "",
        "# The portal must be reachable before login (HTTP and HTTPS).",
        "/ip hotspot walled-garden",
        f":if ([:len [find comment=lipapush]] = 0) do={{ add dst-host={_q(host)} server={_q(server)} "
        "comment=lipapush }",
        "/ip hotspot walled-garden ip",
        f":if ([:len [find comment=lipapush]] = 0) do={{ add action=accept dst-host={_q(host)} protocol=tcp "
        f"dst-port=443 server={_q(server)} comment=lipapush }}",
        "",
        "# The login page sends buyers to the lipapush portal, with a voucher box that works offline.",
        "/file",
        ":if ([:len [find name=hotspot/login.html]] = 0) do={ add name=hotspot/login.html }",
        f"set hotspot/login.html contents={_q(login_page(portal_url=portal))}",
    ]
    return "\n".join(lines) + "\n"
