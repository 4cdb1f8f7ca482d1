import pytest

from tests.testapp.models import Widget

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"name": "w", "payload": {"a": 1}}


def post(api, path="/widgets/", key="key-0000000001", user="alice", body=BODY, **extra):
    headers = {"HTTP_X_USER": user}
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return api.post(path, body, format="json", **headers, **extra)


@pytest.mark.parametrize("path", ["/widgets/", "/fn-widgets", "/view-widgets"])
def test_replay(api, store, path):
    first = post(api, path)
    assert first.status_code == 201, first.content
    second = post(api, path)
    assert second.status_code == 201
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert second["Location"] == first["Location"]
    assert not second.has_header("Set-Cookie") or "secret" not in second["Set-Cookie"]
    assert Widget.objects.count() == 1
    mismatch = post(api, path, body={"name": "other"})
    assert mismatch.status_code == 422
    assert mismatch["Content-Type"] == "application/problem+json"
    assert Widget.objects.count() == 1
