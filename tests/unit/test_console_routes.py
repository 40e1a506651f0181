"""Every console route says who may see it, and the table below is what it says: a page moved from
staff to customers (or to anyone) fails here before any request is made."""

from __future__ import annotations

import pytest
from starlette.routing import Mount

from console.app import ROUTES
from console.commands import listen_address
from console.guard import Page

EXPECTED = {
    ("GET", "/"): "anyone",
    ("GET", "/login"): "anyone",
    ("POST", "/login"): "anyone",
    ("GET", "/login/totp"): "second_factor",
    ("POST", "/login/totp"): "second_factor",
    ("GET", "/account/totp"): "enrolling",
    ("POST", "/account/totp"): "enrolling",
    ("GET", "/account/password"): "signed_in",
    ("POST", "/account/password"): "signed_in",
    ("POST", "/logout"): "signed_in",
    ("GET", "/numbers"): "customer",
    ("GET", "/numbers/{e164}"): "customer",
    ("GET", "/calls"): "customer",
    ("GET", "/calls.csv"): "customer",
    ("GET", "/fair-use"): "customer",
    ("GET", "/recordings"): "customer",
    ("GET", "/recordings/{kind}/{call_id}"): "customer",
    ("GET", "/greeting"): "customer",
    ("POST", "/greeting"): "customer",
    ("GET", "/staff/customers"): "staff",
    ("GET", "/staff/customers/{customer_id}"): "staff",
    ("GET", "/staff/audit"): "staff",
    ("GET", "/invoices"): "customer",
    ("GET", "/invoices/{month}.csv"): "customer",
    ("GET", "/invoices/{month}"): "customer",
    ("GET", "/staff/contacts"): "staff",
    ("GET", "/staff/contacts/{customer_id}"): "staff",
    ("POST", "/staff/contacts/{customer_id}"): "staff",
    ("GET", "/staff/customers/{customer_id}/heavy-user"): "staff",
    ("POST", "/staff/customers/{customer_id}/heavy-user"): "staff",
    ("GET", "/staff/customers/{customer_id}/queues"): "staff",
    ("GET", "/staff/customers/{customer_id}/invoices"): "staff",
    ("GET", "/staff/customers/{customer_id}/invoices/{month}.csv"): "staff",
    ("GET", "/staff/customers/{customer_id}/invoices/{month}"): "staff",
    ("GET", "/numbers/{e164}/edit"): "customer",
    ("POST", "/numbers/{e164}/edit"): "customer",
    ("GET", "/numbers/{e164}/history"): "customer",
    ("GET", "/history"): "customer",
    ("GET", "/staff/customers/{customer_id}/numbers/{e164}/edit"): "staff",
    ("POST", "/staff/customers/{customer_id}/numbers/{e164}/edit"): "staff",
    ("GET", "/staff/customers/{customer_id}/numbers/{e164}/history"): "staff",
    ("GET", "/staff/customers/{customer_id}/history"): "staff",
    ("GET", "/queues"): "customer",
    ("GET", "/queues/{name}/edit"): "customer",
    ("POST", "/queues/{name}/edit"): "customer",
    ("GET", "/queues/{name}/history"): "customer",
    ("GET", "/staff/customers/{customer_id}/queue-settings"): "staff",
    ("GET", "/staff/customers/{customer_id}/queues/{name}/edit"): "staff",
    ("POST", "/staff/customers/{customer_id}/queues/{name}/edit"): "staff",
    ("GET", "/staff/customers/{customer_id}/queues/{name}/history"): "staff",
}


class TestRoutes:
    def test_every_route_is_a_guarded_page_but_the_static_files(self) -> None:
        assert [r.path for r in ROUTES if not isinstance(r, Page)] == ["/static"]
        assert all(isinstance(r, Page) or isinstance(r, Mount) for r in ROUTES)

    def test_who_may_see_each_page(self) -> None:
        declared = {(m, r.path): r.who for r in ROUTES if isinstance(r, Page) for m in (r.methods or ()) if m != "HEAD"}
        assert declared == EXPECTED


class TestListen:
    def test_loopback_by_default_and_plain_http_only_there(self) -> None:
        assert listen_address("127.0.0.1:8091", plain_http=True) == ("127.0.0.1", 8091)
        assert listen_address("[::1]:8091", plain_http=True) == ("::1", 8091)
        assert listen_address("localhost:8091", plain_http=True) == ("localhost", 8091)
        assert listen_address("0.0.0.0:8091", plain_http=False) == ("0.0.0.0", 8091)

    @pytest.mark.parametrize(("text", "plain", "message"), [
        ("0.0.0.0:8091", True, "--plain-http with --listen 0.0.0.0:8091: cookies without Secure are allowed on a "
                               "loopback address only"),
        ("8091", False, "--listen 8091: expected HOST:PORT, e.g. 127.0.0.1:8091"),
        ("127.0.0.1:99999", False, "--listen 127.0.0.1:99999: expected HOST:PORT, e.g. 127.0.0.1:8091"),
    ])
    def test_a_bad_listen_address_is_refused_saying_why(self, text: str, plain: bool, message: str) -> None:
        with pytest.raises(ValueError) as bad:
            listen_address(text, plain_http=plain)
        assert str(bad.value) == message
