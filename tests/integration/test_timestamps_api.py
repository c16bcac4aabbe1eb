"""Every timestamp the API returns has one fixed form, whatever its microseconds are."""

from __future__ import annotations

import re

from tests.conftest import AppHarness

FIXED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
ALICE = {"X-User-Id": "alice"}


async def test_a_whole_second_keeps_its_fraction_in_every_resource(harness: AppHarness) -> None:
    sent = (await harness.chat(message="hello")).json()
    # A row written before the fixed format (isoformat() of a whole second) and one written after.
    harness.backend.execute(
        "UPDATE parley_messages SET created_at = '2026-01-01T00:00:13+00:00', "
        "updated_at = '2026-01-01T00:00:14.000000Z'"
    )
    harness.backend.execute("UPDATE parley_sessions SET created_at = '2026-01-01T00:00:12+00:00'")
    harness.backend.execute("UPDATE parley_transcript SET created_at = '2026-01-01T00:00:13+00:00'")

    message = (await harness.client.get(f"/v1/messages/{sent['message_id']}", headers=ALICE)).json()
    assert message["created_at"] == "2026-01-01T00:00:13.000000Z"
    assert message["updated_at"] == "2026-01-01T00:00:14.000000Z"
    session = (await harness.client.get(f"/v1/sessions/{sent['session_id']}", headers=ALICE)).json()
    assert session["created_at"] == "2026-01-01T00:00:12.000000Z"
    assert FIXED.match(session["updated_at"])
    transcript = (
        await harness.client.get(f"/v1/sessions/{sent['session_id']}/messages", headers=ALICE)
    ).json()
    assert [item["created_at"] for item in transcript["items"]] == ["2026-01-01T00:00:13.000000Z"] * 2


async def test_fresh_timestamps_have_the_fixed_form(harness: AppHarness) -> None:
    sent = (await harness.chat(message="hello")).json()
    assert FIXED.match(sent["created_at"]), sent
    assert FIXED.match(sent["updated_at"]), sent
