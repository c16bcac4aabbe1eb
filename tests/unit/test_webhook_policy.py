"""Where a webhook may go (``webhooks/destinations.py``), how it is signed (``webhooks/signing.py``), and
the settings that configure both. Nothing here opens a connection: refusals happen before one."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from parley.settings import Settings
from parley.webhooks.destinations import DestinationPolicy, RefusedDestination
from parley.webhooks.signing import Signer
from tests.webhook_receiver import OLD_SECRET, SECRET


def _refused(policy: DestinationPolicy, url: str) -> str:
    with pytest.raises(RefusedDestination) as refused:
        policy.check_url(url)
    return str(refused.value)


def test_names_are_allowed_by_name_and_subdomains_by_wildcard() -> None:
    policy = DestinationPolicy.parse(["hooks.example.com", "*.corp.example"])
    assert policy.check_url("https://hooks.example.com/parley").host == "hooks.example.com"
    assert policy.check_url("https://HOOKS.example.com./x").host == "hooks.example.com"
    assert policy.check_url("https://a.b.corp.example/x").port == 443
    assert policy.check_url("http://a.corp.example:8080/x").port == 8080
    assert "not in PARLEY_WEBHOOK_ALLOWED_HOSTS" in _refused(policy, "https://corp.example/x")
    assert "not in" in _refused(policy, "https://hooks.example.com.evil.net/x")
    assert "not in" in _refused(policy, "https://evilhooks.example.com/x")


def test_address_literals_need_a_listed_network_unless_public_with_star() -> None:
    cidr = DestinationPolicy.parse(["127.0.0.1/32", "2001:db8::/32"])
    assert cidr.check_url("http://127.0.0.1:9000/x").literal == ipaddress.ip_address("127.0.0.1")
    assert cidr.check_url("http://[2001:db8::5]/x").literal is not None
    assert "internal address" in _refused(cidr, "http://127.0.0.2/x")
    star = DestinationPolicy.parse(["*"])
    assert star.check_url("https://8.8.8.8/x").literal is not None
    assert star.check_url("https://anything.example/x").literal is None
    for internal in (
        "http://127.0.0.1/x",
        "http://10.0.0.1/x",
        "http://192.168.1.1/x",
        "http://172.16.0.1/x",
        "http://169.254.169.254/x",
        "http://100.64.0.1/x",
        "http://0.0.0.0/x",
        "http://[::1]/x",
        "http://[fe80::1]/x",
        "http://[fd00::1]/x",
        "http://[::ffff:10.0.0.1]/x",
        "http://224.0.0.1/x",
    ):
        assert "internal address" in _refused(star, internal), internal


def test_an_ipv4_mapped_address_is_judged_as_the_ipv4_address_it_carries() -> None:
    policy = DestinationPolicy.parse(["10.0.0.0/8"])
    assert policy.check_url("http://[::ffff:10.1.2.3]/x").literal == ipaddress.ip_address("10.1.2.3")
    policy.check_address(ipaddress.ip_address("::ffff:10.1.2.3"))
    with pytest.raises(RefusedDestination):
        DestinationPolicy.parse(["*"]).check_address(ipaddress.ip_address("::ffff:127.0.0.1"))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hooks.example.com/x", "absolute http or https URL"),
        ("hooks.example.com/x", "absolute http or https URL"),
        ("http:///x", "absolute http or https URL"),
        ("https://u:p@hooks.example.com/x", "user name or password"),
        ("https://hooks.example.com/x#frag", "fragment"),
        ("https://hooks.example.com/" + "x" * 2100, "at most 2048"),
        ("https://hooks.example.com:99999/x", "port from 1 to 65535"),
    ],
)
def test_malformed_urls_are_refused_with_the_reason(url: str, why: str) -> None:
    assert why in _refused(DestinationPolicy.parse(["*"]), url)


def test_an_empty_list_turns_webhooks_off() -> None:
    policy = DestinationPolicy.parse([])
    assert not policy.enabled
    assert "webhooks are off" in _refused(policy, "https://hooks.example.com/x")


@pytest.mark.parametrize("entry", ["not a host", "http://x.example", "*.", "a..b", "10.0.0.0/33"])
def test_entries_that_are_neither_names_nor_networks_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="neither a host name"):
        DestinationPolicy.parse([entry])


async def test_a_name_is_resolved_and_every_address_checked() -> None:
    # /etc/hosts answers for localhost: no query leaves the machine.
    by_name = DestinationPolicy.parse(["localhost"])
    with pytest.raises(RefusedDestination, match=r"localhost resolves to 127\.0\.0\.1"):
        await by_name.resolve("localhost", 9)
    listed = DestinationPolicy.parse(["localhost", "127.0.0.0/8", "::1/128"])
    addresses = await listed.resolve("localhost.", 9)
    assert addresses
    assert all(address.is_loopback for address in addresses)


def test_each_secret_signs_and_the_reference_implementation_verifies() -> None:
    body = b'{"message_id": "m1", "status": "completed"}'
    headers = Signer([SECRET, OLD_SECRET]).headers(webhook_id="msg_1", body=body, at=datetime.now(UTC))
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"].isdigit()
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(SECRET).verify(body, headers) == {"message_id": "m1", "status": "completed"}
    assert Webhook(OLD_SECRET).verify(body, headers) is not None
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers)


def test_settings_refuse_hosts_without_a_secret_and_malformed_secrets() -> None:
    with pytest.raises(ValidationError, match="needs webhook_secret"):
        Settings(webhook_allowed_hosts=["hooks.example.com"])
    with pytest.raises(ValidationError, match="start with whsec_"):
        Settings(webhook_allowed_hosts=["*"], webhook_secret=["plain"])
    with pytest.raises(ValidationError, match="24 to 64 bytes"):
        Settings(webhook_allowed_hosts=["*"], webhook_secret=["whsec_c2hvcnQ="])
    with pytest.raises(ValidationError, match="neither a host name"):
        Settings(webhook_allowed_hosts=["not a host"], webhook_secret=[SECRET])


def test_settings_read_comma_separated_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_WEBHOOK_ALLOWED_HOSTS", "hooks.example.com, 10.0.0.0/8")
    monkeypatch.setenv("PARLEY_WEBHOOK_SECRET", f"{SECRET},{OLD_SECRET}")
    settings = Settings()
    assert settings.webhook_allowed_hosts == ["hooks.example.com", "10.0.0.0/8"]
    assert [s.get_secret_value() for s in settings.webhook_secret] == [SECRET, OLD_SECRET]
    assert SECRET not in repr(settings)
