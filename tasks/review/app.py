"""The review bench as a web app: FastAPI pages rendered by Jinja2, no CDN, no network.

Who may do what: a login link (good once) opens a session (an HttpOnly, SameSite=Strict
cookie); every page needs a session; every write needs the session *and* the session's CSRF
token in the form, and an ``Origin`` header, when the browser sends one, naming this server.
A label is always written in the session's annotator's name (a form that names someone else
is refused), and viewers may read progress and the audit but not write. Model output and
imported text are untrusted: Jinja2 escapes every value (autoescape), responses are shown
as text, and a Content-Security-Policy allows only this server's own script and style.
"""

import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.trustedhost import TrustedHostMiddleware

from tasks.core.errors import CharterError
from tasks.review.audit import bench_audit
from tasks.review.bench import Bench
from tasks.review.state import Session

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "charter_review_session"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Login links carry a token in the URL: never send it to another site. Not "no-referrer":
    # under that policy Chromium sends `Origin: null` with the page's own form posts, which
    # the cross-origin check below must refuse.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
MAX_COMMENT = 2000


def create_app(bench: Bench, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The app; ``allowed_hosts`` (the names it is served under) refuses any other ``Host``
    header, so a DNS-rebinding page cannot pass the Origin check as "this server"."""
    app = FastAPI(title="charter review", docs_url=None, redoc_url=None, openapi_url=None)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def current(request: Request) -> Session:
        session = bench.state.session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise HTTPException(
                401, "sign in with your login link (ask for one: charter review add-annotator)"
            )
        return session

    def same_origin(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise HTTPException(403, "cross-origin write refused")

    def writer(request: Request, session: Session, csrf: str | None, annotator: str | None) -> None:
        same_origin(request)
        if not session.csrf_matches(csrf):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        if session.role != "annotator":
            raise HTTPException(403, f"{session.annotator} is a viewer: viewers cannot label")
        if annotator is not None and annotator != session.annotator:
            raise HTTPException(403, f"signed in as {session.annotator}: labels are written in your own name")

    SessionDep = Annotated[Session, Depends(current)]

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> HTMLResponse:
        return render(request, "error.html", status=exc.status_code, message=exc.detail, code=exc.status_code)

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, token: str = "") -> HTMLResponse:
        # A GET never spends the token: link previews and prefetchers must not sign anyone in.
        return render(request, "login.html", token=token)

    @app.post("/login")
    def login(request: Request, token: Annotated[str, Form(max_length=200)]) -> Response:
        # A sign-in posted from another site (login CSRF: the attacker's own link) is refused
        # before the token is spent, or this browser would label in the attacker's name.
        same_origin(request)
        opened = bench.state.log_in(token)
        if opened is None:
            raise HTTPException(403, "this login link is unknown or already used: ask for a new one")
        session_id, _ = opened
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="strict", path="/")
        return response

    @app.post("/logout")
    def logout(request: Request, session: SessionDep, csrf: Annotated[str, Form()] = "") -> Response:
        if not session.csrf_matches(csrf):
            raise HTTPException(403, "missing or wrong CSRF token")
        bench.state.log_out(request.cookies[SESSION_COOKIE])
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, session: SessionDep) -> HTMLResponse:
        return render(request, "home.html", session=session, progress=bench.progress())

    @app.get("/queue/{name}", response_class=HTMLResponse)
    def next_item(request: Request, name: str, session: SessionDep) -> HTMLResponse:
        queue = _queue(name)
        if session.role != "annotator":
            raise HTTPException(403, f"{session.annotator} is a viewer: viewers cannot label")
        page = bench.next_page(name, session.annotator)
        return _review(request, session, queue.name, page)

    @app.get("/queue/{name}/pair/{pair_id}", response_class=HTMLResponse)
    def one_item(request: Request, name: str, pair_id: str, session: SessionDep) -> HTMLResponse:
        queue = _queue(name)
        if session.role != "annotator":
            raise HTTPException(403, f"{session.annotator} is a viewer: viewers cannot label")
        page = bench.page(queue, pair_id, session.annotator)
        if page is None:
            raise HTTPException(404, f"no item {pair_id[:12]} in this bench")
        return _review(request, session, name, page)

    def _review(request: Request, session: Session, name: str, page: Any) -> HTMLResponse:
        progress = bench.progress(name)[0]
        last = bench.state.labels_of(session.annotator, limit=1)
        return render(
            request,
            "review.html",
            session=session,
            queue=bench.queue(name),
            page=page,
            progress=progress,
            last=last[0] if last else None,
            submission=secrets.token_urlsafe(16),
        )

    @app.post("/label")
    def label(
        request: Request,
        session: SessionDep,
        queue: Annotated[str, Form(max_length=40)],
        pair_id: Annotated[str, Form(max_length=64)],
        choice: Annotated[str, Form(max_length=8)],
        submission: Annotated[str, Form(min_length=8, max_length=64)],
        csrf: Annotated[str | None, Form()] = None,
        annotator: Annotated[str | None, Form(max_length=200)] = None,
        confidence: Annotated[str, Form(max_length=8)] = "",
        comment: Annotated[str, Form(max_length=MAX_COMMENT)] = "",
    ) -> Response:
        writer(request, session, csrf, annotator)
        try:
            bench.submit(
                queue_name=queue,
                pair_id=pair_id,
                annotator=session.annotator,
                choice=choice,
                submission=submission,
                confidence=_confidence(confidence),
                comment=comment.strip() or None,
            )
        except CharterError as exc:
            raise HTTPException(400, str(exc)) from None
        return RedirectResponse(f"/queue/{queue}", status_code=303)

    @app.get("/labels", response_class=HTMLResponse)
    def my_labels(request: Request, session: SessionDep) -> HTMLResponse:
        return render(
            request, "labels.html", session=session, labels=bench.state.labels_of(session.annotator)
        )

    @app.get("/audit", response_class=HTMLResponse)
    def audit(request: Request, session: SessionDep) -> HTMLResponse:
        return render(request, "audit.html", session=session, sections=bench_audit(bench.store))

    def _queue(name: str) -> Any:
        try:
            return bench.queue(name)
        except CharterError as exc:
            raise HTTPException(404, str(exc)) from None

    return app


def _confidence(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise HTTPException(400, f"confidence must be a number from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise HTTPException(400, f"confidence must be from 0 to 1, got {value}")
    return value
