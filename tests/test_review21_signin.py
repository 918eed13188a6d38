"""Review of issue 21: another site's form cannot sign a browser in (with a token of the
attacker's choosing: what the browser then does is done as the attacker's token)."""

from __future__ import annotations


def test_a_cross_site_sign_in_is_refused_and_sets_no_cookie(serve_web):
    web = serve_web()
    token = web.token("read")
    browser = web.client(headers={"Sec-Fetch-Site": "cross-site"})
    refused = browser.post("/ui/signin", data={"token": token})
    assert refused.status_code == 403
    assert "br_session" not in refused.headers.get("set-cookie", "")
    # The same form from the page itself (or a client that sends no such header) signs in.
    same = web.client(headers={"Sec-Fetch-Site": "same-origin"})
    assert same.post("/ui/signin", data={"token": token}).status_code == 303
    assert web.client().post("/ui/signin", data={"token": token}).status_code == 303
