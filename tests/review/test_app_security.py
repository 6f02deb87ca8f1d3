"""Who may do what on the bench's web app, through FastAPI's TestClient: sessions, one-time
login links, CSRF, writing in one's own name, viewers, cross-origin writes, untrusted text
rendered inert, the security headers, and the bind check."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tasks.core.errors import CharterError
from tasks.review.app import SESSION_COOKIE, create_app
from tasks.review.bench import Bench
from tasks.review.serve import check_host
from tasks.review.settings import ReviewSettings
from tests.review.conftest import CASES, Case, copy_store, make_bench, snapshot_template

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
# Margin 0.01: the first item of `uncertain`, before close (0.02).
HOSTILE = Case(
    "hostile",
    "travel",
    f"Which is safer? {SCRIPT}",
    (f"Take the train. {SCRIPT}", f"Take the bus. {IMG}"),
    logprob=(0.51, 0.51),
)
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
ESCAPED_IMG = "&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture(scope="module")
def _hostile_template(tmp_path_factory: pytest.TempPathFactory, _bench_template: Path) -> Path:
    return snapshot_template(
        _bench_template, tmp_path_factory.mktemp("hostile-template") / "store", [HOSTILE]
    )


@pytest.fixture
def bench(tmp_path: Path, _hostile_template: Path) -> Bench:
    """The fixture store plus HOSTILE, its queues' items already in the bench database."""
    return make_bench(copy_store(_hostile_template, tmp_path / "store"), rerun=[], overlap=1)


@pytest.fixture
def app(bench: Bench):
    return create_app(bench)


def anonymous(app) -> TestClient:
    return TestClient(app, follow_redirects=False)


def signed_in(bench: Bench, app, name: str, role: str = "annotator") -> TestClient:
    client = anonymous(app)
    response = client.post("/login", data={"token": bench.state.add_annotator(name, role)})
    assert response.status_code == 303 and response.headers["location"] == "/"
    return client


def review_form(client: TestClient, queue: str = "uncertain") -> dict[str, str]:
    """The hidden fields of the queue's next review page."""
    page = client.get(f"/queue/{queue}")
    assert page.status_code == 200, page.text
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))


def csrf_of(client: TestClient) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)


def labels(bench: Bench) -> list[tuple[str, str]]:
    rows = bench.state._connection().execute("select annotator, pair_id from labels order by seq")
    return rows.fetchall()


# -- sessions ---------------------------------------------------------------------------------------

PAGES = ["/", "/queue/uncertain", f"/queue/uncertain/pair/{CASES['close'].pair_id}", "/labels", "/audit"]


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("cookie", [None, "forged-session-id"])
def test_every_page_needs_a_session(app, path: str, cookie: str | None) -> None:
    client = anonymous(app)
    if cookie:
        client.cookies.set(SESSION_COOKIE, cookie)
    response = client.get(path)
    assert response.status_code == 401
    assert 'id="error" data-status="401"' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_every_write_needs_a_session(app, bench: Bench) -> None:
    client = anonymous(app)
    form = {"queue": "uncertain", "pair_id": CASES["close"].pair_id, "choice": "left", "submission": "k" * 16}
    assert client.post("/label", data={**form, "csrf": "anything"}).status_code == 401
    assert client.post("/label", data={}).status_code == 401  # refused before the form is even read
    assert client.post("/logout", data={"csrf": "anything"}).status_code == 401
    assert labels(bench) == []


def test_get_login_never_spends_the_token_and_post_spends_it_once(app, bench: Bench) -> None:
    token = bench.state.add_annotator("ana")
    first = anonymous(app)
    for _ in range(2):  # a link preview, then the person
        page = first.get(f"/login?token={token}")
        assert page.status_code == 200 and f'name="token" value="{token}"' in page.text
        assert SESSION_COOKIE not in page.headers.get("set-cookie", "")
    signed = first.post("/login", data={"token": token})
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    cookie = signed.headers["set-cookie"].lower()
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "httponly" in cookie and "samesite=strict" in cookie
    assert first.get("/").status_code == 200
    again = anonymous(app).post("/login", data={"token": token})
    assert again.status_code == 403 and "unknown or already used" in again.text
    assert anonymous(app).post("/login", data={"token": "guessed"}).status_code == 403


def test_a_login_posted_from_another_site_is_refused_and_the_token_kept(app, bench: Bench) -> None:
    # Login CSRF: a foreign page must not sign this browser in (as the attacker, say).
    token = bench.state.add_annotator("ana")
    refused = anonymous(app).post("/login", data={"token": token}, headers={"origin": "http://evil.example"})
    assert refused.status_code == 403
    assert anonymous(app).post("/login", data={"token": token}).status_code == 303  # still good


def test_log_out_needs_the_csrf_token_and_ends_the_session(app, bench: Bench) -> None:
    client = signed_in(bench, app, "ana")
    assert client.post("/logout", data={"csrf": "wrong"}).status_code == 403
    assert client.get("/").status_code == 200
    out = client.post("/logout", data={"csrf": csrf_of(client)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert bench.state.count("sessions") == 0


# -- writes -----------------------------------------------------------------------------------------


def test_a_label_is_stored_in_the_session_s_name_and_a_resubmission_adds_nothing(app, bench: Bench) -> None:
    client = signed_in(bench, app, "ana")
    form = review_form(client)
    for _ in range(2):  # the browser resubmits the same form
        response = client.post("/label", data={**form, "choice": "left"})
        assert response.status_code == 303 and response.headers["location"] == "/queue/uncertain"
    assert labels(bench) == [("ana", HOSTILE.pair_id)]
    assert review_form(client)["pair_id"] == CASES["close"].pair_id  # on to the next item


@pytest.mark.parametrize("csrf", [None, "", "wrong-token", "ünïcode-tökén"])
@pytest.mark.parametrize("choice", ["left", "skip"])
def test_a_write_without_the_session_s_csrf_token_is_refused_and_stores_nothing(
    app, bench: Bench, csrf: str | None, choice: str
) -> None:
    client = signed_in(bench, app, "ana")
    form = review_form(client)
    form.pop("csrf")
    if csrf is not None:
        form["csrf"] = csrf
    response = client.post("/label", data={**form, "choice": choice})
    assert response.status_code == 403 and "CSRF" in response.text
    assert (bench.state.count("labels"), bench.state.count("skips")) == (0, 0)


def test_another_annotator_s_csrf_token_does_not_work(app, bench: Bench) -> None:
    ana, ben = signed_in(bench, app, "ana"), signed_in(bench, app, "ben")
    form = review_form(ana)
    response = ana.post("/label", data={**form, "csrf": csrf_of(ben), "choice": "left"})
    assert response.status_code == 403
    assert labels(bench) == []


def test_a_form_naming_another_annotator_is_refused(app, bench: Bench) -> None:
    client = signed_in(bench, app, "ana")
    signed_in(bench, app, "ben")
    form = review_form(client)
    refused = client.post("/label", data={**form, "choice": "left", "annotator": "ben"})
    assert refused.status_code == 403 and "signed in as ana" in refused.text
    assert labels(bench) == []
    named = client.post("/label", data={**form, "choice": "left", "annotator": "ana"})
    assert named.status_code == 303
    assert labels(bench) == [("ana", HOSTILE.pair_id)]


def test_a_viewer_sees_progress_and_the_audit_but_cannot_label(app, bench: Bench) -> None:
    viewer = signed_in(bench, app, "vera", role="viewer")
    home = viewer.get("/")
    assert home.status_code == 200 and "vera (viewer)" in home.text
    assert 'href="/queue/uncertain"' not in home.text  # no way in to label
    assert viewer.get("/audit").status_code == 200
    assert viewer.get("/queue/uncertain").status_code == 403
    assert viewer.get(f"/queue/uncertain/pair/{HOSTILE.pair_id}").status_code == 403
    form = {"queue": "uncertain", "pair_id": HOSTILE.pair_id, "submission": "v" * 16, "csrf": csrf_of(viewer)}
    for choice in ("left", "skip"):
        response = viewer.post("/label", data={**form, "choice": choice})
        assert response.status_code == 403 and "viewers cannot label" in response.text
    assert (bench.state.count("labels"), bench.state.count("skips"), bench.state.count("leases")) == (0, 0, 0)


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://testserver.evil.example"])
def test_a_write_from_another_origin_is_refused(app, bench: Bench, origin: str) -> None:
    client = signed_in(bench, app, "ana")
    form = {**review_form(client), "choice": "left"}
    assert client.post("/label", data=form, headers={"origin": origin}).status_code == 403
    assert labels(bench) == []
    assert client.post("/label", data=form, headers={"origin": "http://testserver"}).status_code == 303
    assert len(labels(bench)) == 1


def test_bad_form_values_are_refused_without_a_label(app, bench: Bench) -> None:
    client = signed_in(bench, app, "ana")
    form = review_form(client)
    assert client.post("/label", data={**form, "choice": "left", "confidence": "1.5"}).status_code == 400
    assert client.post("/label", data={**form, "choice": "left", "confidence": "sure"}).status_code == 400
    assert client.post("/label", data={**form, "choice": "best"}).status_code == 400
    other = {**form, "choice": "left", "pair_id": CASES["split"].pair_id}  # not in this queue
    assert client.post("/label", data=other).status_code == 400
    assert labels(bench) == []


# -- untrusted text ---------------------------------------------------------------------------------


def assert_inert(page: str) -> None:
    """No tag but the bench's own script, and no inline event handler, in the page."""
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/bench.js" defer>']
    assert "<img" not in page
    assert re.search(r"<[^>]*\son\w+\s*=", page) is None


def test_model_output_renders_as_text(app, bench: Bench) -> None:
    client = signed_in(bench, app, "ana")
    page = client.get("/queue/uncertain")
    assert 'data-pair="' + HOSTILE.pair_id + '"' in page.text
    assert_inert(page.text)
    assert page.text.count(ESCAPED_SCRIPT) == 2  # in the conversation and the train response
    assert page.text.count(ESCAPED_IMG) == 1
    shown = re.findall(r'<pre id="response-(?:left|right)">([^<]*)</pre>', page.text)
    assert sorted(shown) == sorted(html.escape(text, quote=False) for text in HOSTILE.texts)
    assert client.get(f"/queue/uncertain/pair/{HOSTILE.pair_id}").text.count(ESCAPED_IMG) == 1


def test_a_hostile_comment_queue_name_or_token_renders_as_text(app, bench: Bench) -> None:
    client = signed_in(bench, app, "ana")
    form = review_form(client)
    assert client.post("/label", data={**form, "choice": "right", "comment": IMG}).status_code == 303
    mine = client.get("/labels")
    assert_inert(mine.text)
    assert ESCAPED_IMG in mine.text
    missing = client.get("/queue/%3Cimg%20src=x%20onerror=alert(1)%3E")
    assert missing.status_code == 404 and 'data-status="404"' in missing.text
    assert_inert(missing.text)
    assert "no queue &#39;&lt;img src=x onerror=alert(1)&gt;&#39;" in missing.text
    login = anonymous(app).get('/login?token="><script>alert(1)</script>')
    assert_inert(login.text)
    assert 'value="&#34;&gt;&lt;script&gt;' in login.text


# -- headers and binding ----------------------------------------------------------------------------


def test_every_response_carries_a_csp_without_inline_script(app, bench: Bench) -> None:
    client = signed_in(bench, app, "ana")
    for response in (client.get("/"), client.get("/queue/uncertain"), anonymous(app).get("/audit")):
        policy = dict(
            [*directive.split(" ", 1), ""][:2]
            for directive in (d.strip() for d in response.headers["content-security-policy"].split(";"))
        )
        assert policy["default-src"] == "'none'"
        assert policy["script-src"] == "'self'"
        assert policy["frame-ancestors"] == "'none'"
        assert "unsafe" not in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        # Login links carry a token: the URL must never reach another site.
        assert response.headers["referrer-policy"] in ("no-referrer", "same-origin")
    script = client.get("/static/bench.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.org"])
def test_binding_beyond_loopback_needs_allow_remote(host: str) -> None:
    with pytest.raises(CharterError, match=f"--host {re.escape(host)} would open the bench to the network"):
        check_host(ReviewSettings(host=host))
    check_host(ReviewSettings(host=host, allow_remote=True))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_binds_without_a_flag(host: str) -> None:
    check_host(ReviewSettings(host=host))


def test_a_host_header_other_than_the_served_names_is_refused(bench: Bench) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example."""
    guarded = create_app(bench, allowed_hosts=["127.0.0.1", "localhost"])
    token = bench.state.add_annotator("rebound")
    rebound = TestClient(guarded, base_url="http://evil.example", follow_redirects=False)
    assert rebound.post("/login", data={"token": token}).status_code == 400
    local = TestClient(guarded, base_url="http://127.0.0.1", follow_redirects=False)
    assert local.post("/login", data={"token": token}).status_code == 303  # the token was not spent
