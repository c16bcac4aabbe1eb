"""The suite's own rule for tests that need an external service (tests/conftest.py): skipped and listed at
the end of the run, or failed when PARLEY_REQUIRE_SERVICES=1. Checked on a tiny suite run by pytest."""

from __future__ import annotations

import pytest

SAMPLE = """
import pytest

from tests.conftest import SERVICE_MISSING, require_service


def test_needs_a_missing_service():
    require_service("nothing-here", False, "a self-test")


def test_needs_a_service_that_is_there():
    require_service("always-here", True)


@pytest.mark.skipif(True, reason=SERVICE_MISSING + "marked")
def test_marked_as_needing_a_missing_service():
    pass


@pytest.mark.skip(reason="for another reason")
def test_skipped_for_another_reason():
    pass
"""


def _run_sample(pytester: pytest.Pytester) -> pytest.RunResult:
    pytester.makepyfile(test_sample=SAMPLE)
    return pytester.runpytest_inprocess("-p", "tests.conftest", "-p", "no:cacheprovider", "-p", "no:asyncio")


def _listed(result: pytest.RunResult) -> list[str]:
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "tests that need a service not running here" in line)
    return lines[start + 1 : start + 4]


def test_a_missing_service_skips_the_test_and_the_run_ends_with_the_list(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PARLEY_REQUIRE_SERVICES", raising=False)
    result = _run_sample(pytester)
    result.assert_outcomes(passed=1, skipped=3)
    assert _listed(result) == [
        "test_sample.py::test_needs_a_missing_service: nothing-here (a self-test)",
        "test_sample.py::test_marked_as_needing_a_missing_service: marked",
        "2 skipped; start the services to run them (PARLEY_REQUIRE_SERVICES=1 fails them).",
    ]


def test_parley_require_services_turns_those_skips_into_failures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_REQUIRE_SERVICES", "1")
    result = _run_sample(pytester)
    # The marker's skip happens in setup, so pytest reports that one as an error.
    result.assert_outcomes(failed=1, passed=1, skipped=1, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*service not available: nothing-here (a self-test); PARLEY_REQUIRE_SERVICES=1*"]
    )
    assert _listed(result)[-1] == "2 not run: PARLEY_REQUIRE_SERVICES=1 makes each a failure."
