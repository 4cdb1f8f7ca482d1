"""The example's problems (issue 13 item 9): each ``type`` is ``/problems/#<code>``, a page the
example serves, with a section for every code the example can answer."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.helpers import DRF_EXCEPTIONS, configure, documented_codes, emittable_codes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def example_problem_types(settings: Any) -> None:
    """As example_project/settings.py sets it."""
    configure(settings, PROBLEM_TYPE_BASE="/problems/")


def anchors(page: str) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', page))


def test_every_code_the_example_can_answer_is_documented() -> None:
    example = emittable_codes("example_project")
    assert "unsupported_authorization_scheme" in example  # the collector sees the codes
    drf = {cls.default_code for cls in DRF_EXCEPTIONS.values()}
    assert sorted((example | drf) - documented_codes()) == []


def test_the_problems_page_has_a_section_for_every_documented_code() -> None:
    response = APIClient().get("/problems/")
    assert response.status_code == 200
    assert sorted(documented_codes() - anchors(response.content.decode())) == []


@pytest.mark.parametrize(
    "authorization", ["Token mrk_nope", "mrk_nope", "Bearer mrk_nope", ""], ids=str
)
def test_the_type_of_an_example_problem_resolves_to_its_section(authorization: str) -> None:
    api = APIClient()
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    problem = json.loads(api.get("/v1/subscribers", **headers).content)
    path, _, code = problem["type"].partition("#")
    assert (path, code) == ("/problems/", problem["code"])
    page = api.get(path)
    assert page.status_code == 200
    assert code in anchors(page.content.decode())


def test_the_problems_page_answers_get_only() -> None:
    response = APIClient().post("/problems/")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert json.loads(response.content)["code"] == "method_not_allowed"
