"""A local test double of GitHub's REST API: the endpoints `mlops comment` calls, on a real HTTP server.

Responses are built from the response schemas of GitHub's own OpenAPI description (tests/data/, copied from the
official description), so every required field is present with its type. It paginates with Link headers, can answer
403 for a read-only token, a secondary rate limit (403 + Retry-After) or 502s (also a 502 *after* creating a
comment, as a proxy does when GitHub was slow), and records every request. `GET /user` answers as GitHub does:
the user of a personal access token, 403 "Resource not accessible by integration" for an installation token
(`ghs_...`, what GITHUB_TOKEN is). Comments are created under the token's identity.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

PREFIX = "/api/v3"  # as GitHub Enterprise serves it: GITHUB_API_URL=https://HOST/api/v3
SPEC_FILE = Path(__file__).parent / "data" / "github-openapi-comments.json"
SPEC: dict[str, Any] = json.loads(SPEC_FILE.read_text())


def response_schema(path: str, method: str, status: str) -> dict[str, Any]:
    return SPEC["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


def sample(schema: dict[str, Any]) -> Any:
    """A minimal value that satisfies SCHEMA: every required property, typed."""
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            merged: dict[str, Any] = {}
            for part in schema[key][:1] if key != "allOf" else schema[key]:
                v = sample(part)
                if isinstance(v, dict):
                    merged.update(v)
                else:
                    return v
            return merged
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if "enum" in schema:
        return schema["enum"][0]
    if t == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: sample(props.get(k, {})) for k in schema.get("required", [])}
    if t == "array":
        return []
    if t == "integer":
        return 1
    if t == "number":
        return 1.0
    if t == "boolean":
        return False
    if t == "string":
        fmt = schema.get("format")
        return {"date-time": "2024-01-01T00:00:00Z", "uri": "https://example.com/x"}.get(fmt, "x")
    return None


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


@dataclass
class GitHubDouble:
    owner: str = "acme"
    repo: str = "churn"
    read_only: bool = False  # writes answer 403 "Resource not accessible by integration"
    secondary_limit: int = 0  # the next N requests answer 403 secondary rate limit with Retry-After
    server_errors: int = 0  # the next N requests answer 502
    status_override: int | None = None  # every request answers this status (401, 404...)
    create_then_fail: int = 0  # the next N comment creations store the comment, then answer 502
    create_fail: int = 0  # the next N comment creations answer 502 without storing anything
    pat_users: dict[str, str] = field(default_factory=dict)  # personal access token -> its user's login
    issue_comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    commit_comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    _next_id: int = 1000
    _lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    # --- data ---
    def login_of(self, token: str) -> str:
        """Who a token writes as: its user for a personal access token, the Actions bot for an installation one."""
        return self.pat_users.get(token, "github-actions[bot]")

    def authenticated_user(self, token: str) -> tuple[int, Any]:
        """GET /user: the token's user (schema `private-user`), or 403 for an installation token."""
        if token not in self.pat_users:
            return 403, {"message": "Resource not accessible by integration",
                         "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user",
                         "status": "403"}
        user = sample(response_schema("/user", "get", "200"))
        user.update(self._user(self.pat_users[token]))
        return 200, user

    def _user(self, login: str) -> dict[str, Any]:
        schema = response_schema("/repos/{owner}/{repo}/issues/{issue_number}/comments", "post", "201")
        user = sample(schema["properties"]["user"])
        user.update(login=login, id=1000 + sum(map(ord, login)), type="Bot" if login.endswith("[bot]") else "User")
        return user

    def add_issue_comment(self, number: int, body: str, login: str = "someone") -> dict[str, Any]:
        c = sample(response_schema("/repos/{owner}/{repo}/issues/{issue_number}/comments", "post", "201"))
        self._next_id += 1
        cid = self._next_id
        base = f"{self.url}/repos/{self.owner}/{self.repo}"
        c.update(id=cid, node_id=f"IC_{cid}", body=body, user=self._user(login),
                 url=f"{base}/issues/comments/{cid}", issue_url=f"{base}/issues/{number}",
                 html_url=f"https://github.example/{self.owner}/{self.repo}/pull/{number}#issuecomment-{cid}",
                 created_at=f"2024-01-01T00:{(cid // 60) % 60:02d}:{cid % 60:02d}Z",
                 updated_at="2024-01-01T00:00:00Z")
        self.issue_comments.setdefault(number, []).append(c)
        return c

    def add_commit_comment(self, sha: str, body: str, login: str = "someone") -> dict[str, Any]:
        c = sample(response_schema("/repos/{owner}/{repo}/commits/{commit_sha}/comments", "post", "201"))
        self._next_id += 1
        cid = self._next_id
        c.update(id=cid, node_id=f"CC_{cid}", body=body, commit_id=sha, user=self._user(login),
                 url=f"{self.url}/repos/{self.owner}/{self.repo}/comments/{cid}",
                 html_url=f"https://github.example/{self.owner}/{self.repo}/commit/{sha}#commitcomment-{cid}",
                 created_at="2024-01-01T00:00:00Z", updated_at="2024-01-01T00:00:00Z")
        self.commit_comments.setdefault(sha, []).append(c)
        return c

    def _pull(self, number: int) -> dict[str, Any]:
        p = sample(response_schema("/repos/{owner}/{repo}/commits/{commit_sha}/pulls", "get", "200")["items"])
        p.update(number=number, id=number, state="open",
                 url=f"{self.url}/repos/{self.owner}/{self.repo}/pulls/{number}")
        return p

    def requests_for(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # --- HTTP ---
    def _create(self, make: Any) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            fail = self.create_fail > 0
            self.create_fail -= fail
            fail_after = not fail and self.create_then_fail > 0
            self.create_then_fail -= fail_after
        if fail:
            return 502, {"message": "Server Error"}, {}
        made = make()
        return (502, {"message": "Server Error"}, {}) if fail_after else (201, made, {})

    def _fault(self, method: str) -> tuple[int, Any, dict[str, str]] | None:
        """The failure a test asked for (status override, 5xx, secondary rate limit, read-only token), else None."""
        with self._lock:
            if self.status_override is not None:
                return self.status_override, {"message": "Not Found" if self.status_override == 404
                                              else "Bad credentials", "documentation_url": "https://docs"}, {}
            if self.server_errors > 0:
                self.server_errors -= 1
                return 502, {"message": "Server Error"}, {}
            if self.secondary_limit > 0:
                self.secondary_limit -= 1
                return 403, {"message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                             "before you try again.", "documentation_url": "https://docs.github.com/rest"}, \
                    {"Retry-After": "1"}
        if self.read_only and method in ("POST", "PATCH", "PUT", "DELETE"):
            return 403, {"message": "Resource not accessible by integration",
                         "documentation_url": "https://docs.github.com/rest", "status": "403"}, {}
        return None

    def handle(self, method: str, raw_path: str, body: Any, token: str = "") -> tuple[int, Any, dict[str, str]]:
        parsed = urlparse(raw_path)
        path, query = parsed.path.removeprefix(PREFIX), parse_qs(parsed.query)
        fault = self._fault(method)
        if fault is not None:
            return fault
        if path == "/user" and method == "GET":
            status, user = self.authenticated_user(token)
            return status, user, {}
        repo = f"/repos/{self.owner}/{self.repo}"
        if not path.startswith(repo + "/"):
            return 404, {"message": "Not Found"}, {}
        rest = path[len(repo):]
        if m := re.fullmatch(r"/issues/(\d+)/comments", rest):
            number = int(m[1])
            if method == "GET":
                return self._page(self.issue_comments.get(number, []), path, query)
            if method == "POST":
                return self._create(lambda: self.add_issue_comment(number, body["body"], self.login_of(token)))
        if (m := re.fullmatch(r"/issues/comments/(\d+)", rest)) and method == "PATCH":
            return self._edit([c for cs in self.issue_comments.values() for c in cs], int(m[1]), body)
        if m := re.fullmatch(r"/commits/([0-9a-f]+)/comments", rest):
            if method == "GET":
                return self._page(self.commit_comments.get(m[1], []), path, query)
            if method == "POST":
                sha = m[1]
                return self._create(lambda: self.add_commit_comment(sha, body["body"], self.login_of(token)))
        if (m := re.fullmatch(r"/comments/(\d+)", rest)) and method == "PATCH":
            return self._edit([c for cs in self.commit_comments.values() for c in cs], int(m[1]), body)
        if (m := re.fullmatch(r"/commits/([0-9a-f]+)/pulls", rest)) and method == "GET":
            return self._page([self._pull(n) for n in self.commit_pulls.get(m[1], [])], path, query)
        return 404, {"message": "Not Found"}, {}

    def _edit(self, comments: list[dict[str, Any]], cid: int, body: Any) -> tuple[int, Any, dict[str, str]]:
        for c in comments:
            if c["id"] == cid:
                c["body"] = body["body"]
                c["updated_at"] = "2024-01-02T00:00:00Z"
                return 200, c, {}
        return 404, {"message": "Not Found"}, {}

    def _page(self, items: list[Any], path: str, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        links = []
        if page < last:
            links.append(f'<{self.url}{path}?per_page={per_page}&page={page + 1}>; rel="next"')
            links.append(f'<{self.url}{path}?per_page={per_page}&page={last}>; rel="last"')
        if page > 1:
            links.append(f'<{self.url}{path}?per_page={per_page}&page=1>; rel="first"')
            links.append(f'<{self.url}{path}?per_page={per_page}&page={page - 1}>; rel="prev"')
        return 200, chunk, ({"Link": ", ".join(links)} if links else {})

    def start(self) -> GitHubDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                double.requests.append(Recorded(self.command, self.path.split("?")[0],
                                                parse_qs(urlparse(self.path).query), body, dict(self.headers)))
                auth = self.headers.get("Authorization") or ""
                token = auth.split(" ", 1)[1] if " " in auth else ""
                status, payload, headers = double.handle(self.command, self.path, body, token)
                data = b"" if status == 204 else json.dumps(payload).encode()  # 204: no body, as GitHub
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-GitHub-Media-Type", "github.v3; format=json")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{PREFIX}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- appended for the workflows' end-to-end tests (tests/e2e): reading a pull request ---

import functools  # noqa: E402

PULLS_SPEC_FILE = Path(__file__).parent / "data" / "github-openapi-pulls.json"


@functools.cache
def _pulls_spec() -> dict[str, Any]:
    return dict(json.loads(PULLS_SPEC_FILE.read_text()))


@dataclass
class GitHubDoubleWithPulls(GitHubDouble):
    """The double, also answering `GET /repos/{owner}/{repo}/pulls/{pull_number}` (schema `pull-request`, from
    GitHub's OpenAPI description) for the pull requests in `pulls`: number -> (head sha, head repository)."""

    pulls: dict[int, tuple[str, str]] = field(default_factory=dict)

    def pull_request(self, number: int) -> dict[str, Any]:
        get = _pulls_spec()["paths"]["/repos/{owner}/{repo}/pulls/{pull_number}"]["get"]
        schema = get["responses"]["200"]["content"]["application/json"]["schema"]
        pr = sample(schema)  # a fresh value each time: sample() builds new dicts
        head_sha, head_repo = self.pulls[number]
        base = f"{self.url}/repos/{self.owner}/{self.repo}"
        pr.update(number=number, id=number, state="open", url=f"{base}/pulls/{number}",
                  html_url=f"https://github.example/{self.owner}/{self.repo}/pull/{number}")
        pr["head"].update(sha=head_sha, ref=f"branch-{number}", label=f"{head_repo.split('/')[0]}:branch-{number}")
        pr["head"]["repo"] = {**(pr["head"].get("repo") or {}), "full_name": head_repo, "name": head_repo.split("/")[1],
                              "fork": head_repo != f"{self.owner}/{self.repo}"}
        pr["base"].update(ref="main", label=f"{self.owner}:main")
        return pr

    def handle(self, method: str, raw_path: str, body: Any, token: str = "") -> tuple[int, Any, dict[str, str]]:
        path = urlparse(raw_path).path.removeprefix(PREFIX)
        m = re.fullmatch(rf"/repos/{re.escape(self.owner)}/{re.escape(self.repo)}/pulls/(\d+)", path)
        if m and method == "GET" and self.status_override is None:
            number = int(m[1])
            if number not in self.pulls:
                return 404, {"message": "Not Found",
                             "documentation_url": "https://docs.github.com/rest/pulls/pulls#get-a-pull-request",
                             "status": "404"}, {}
            return 200, self.pull_request(number), {}
        return super().handle(method, raw_path, body, token)

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in ("POST", "PATCH", "PUT", "DELETE")]


# --- appended for `mlops monitor --retrain` (tests/test_retrain.py): listing and opening pull requests ---

PULL_LIST_SPEC_FILE = Path(__file__).parent / "data" / "github-openapi-pulls-list.json"


@functools.cache
def _pull_list_spec() -> dict[str, Any]:
    return dict(json.loads(PULL_LIST_SPEC_FILE.read_text()))["paths"]["/repos/{owner}/{repo}/pulls"]


@dataclass
class GitHubDoubleWithPullList(GitHubDoubleWithPulls):
    """The double, also answering `GET /repos/{owner}/{repo}/pulls` (schema `pull-request-simple`, paged, `state`
    filter) and `POST /repos/{owner}/{repo}/pulls` (body: title, head, base, body; 201 `pull-request`), from GitHub's
    OpenAPI description. `opened` holds every pull request made or added; `head_exists` (when set) is asked whether
    the head branch exists, as GitHub answers 422 when it does not."""

    opened: dict[int, dict[str, Any]] = field(default_factory=dict)
    head_exists: Any = None
    _next_pull: int = 1

    def add_pull(self, head: str, base: str = "main", state: str = "open", title: str = "t",
                 body: str | None = None) -> dict[str, Any]:
        schema = _pull_list_spec()["post"]["responses"]["201"]["content"]["application/json"]["schema"]
        pr = sample(schema)
        with self._lock:
            number = self._next_pull
            self._next_pull += 1
        base_url = f"{self.url}/repos/{self.owner}/{self.repo}"
        pr.update(number=number, id=number, state=state, title=title, body=body, url=f"{base_url}/pulls/{number}",
                  html_url=f"https://github.example/{self.owner}/{self.repo}/pull/{number}")
        pr["head"].update(ref=head, label=f"{self.owner}:{head}", sha="0" * 40)
        pr["base"].update(ref=base, label=f"{self.owner}:{base}")
        self.opened[number] = pr
        return pr

    def _simple(self, pr: dict[str, Any]) -> dict[str, Any]:
        schema = _pull_list_spec()["get"]["responses"]["200"]["content"]["application/json"]["schema"]["items"]
        out = sample(schema)
        out.update({k: pr[k] for k in ("number", "id", "state", "title", "body", "url", "html_url")})
        out["head"].update(ref=pr["head"]["ref"], label=pr["head"]["label"], sha=pr["head"]["sha"])
        out["base"].update(ref=pr["base"]["ref"], label=pr["base"]["label"])
        return out

    def handle(self, method: str, raw_path: str, body: Any, token: str = "") -> tuple[int, Any, dict[str, str]]:
        parsed = urlparse(raw_path)
        path, query = parsed.path.removeprefix(PREFIX), parse_qs(parsed.query)
        if path == f"/repos/{self.owner}/{self.repo}/pulls" and self.status_override is None:
            if method == "GET":
                state = query.get("state", ["open"])[0]
                items = [self._simple(p) for p in self.opened.values() if state == "all" or p["state"] == state]
                return self._page(items, path, query)
            if method == "POST" and not self.read_only:
                required = _pull_list_spec()["post"]["requestBody"]["content"]["application/json"]["schema"]
                missing = [k for k in required.get("required", []) if not (body or {}).get(k)]
                if missing:
                    return 422, {"message": "Validation Failed", "errors": [{"field": k, "code": "missing_field"}
                                                                             for k in missing]}, {}
                if self.head_exists is not None and not self.head_exists(body["head"]):
                    return 422, {"message": "Validation Failed",
                                 "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}]}, {}
                pr = self.add_pull(body["head"], body["base"], title=body.get("title") or "",
                                   body=body.get("body"))
                return 201, pr, {}
        return super().handle(method, raw_path, body, token)


# --- appended for `mlops monitor`'s alarm issue and `mlops registry stats` (tests/test_alarm_issue.py,
# tests/test_registry_stats.py): issues, and the commits of a pull request ---
#
# The OpenAPI subset in tests/data (and the project's reference subset) has no issues endpoints and no
# `GET /pulls/{n}/commits`: these answer with the shapes GitHub documents for them ("Create an issue", "Get an
# issue", "Update an issue", "List repository issues", "List commits on a pull request"), every field of the
# `issue` and `commit` schemas that PyGithub or a client could read, with GitHub's status codes (201, 200, 404,
# 410 when issues are disabled, 422 when the title is missing or the state is invalid).

import datetime as _dt  # noqa: E402


def _now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class GitHubDoubleWithIssues(GitHubDoubleWithPullList):
    """The double, also answering the issues endpoints (list, create, get, update) and a pull request's commits.

    `issues` holds every issue by number (numbers are shared with pull requests, as on GitHub); `now` (when set)
    is the time the double stamps on what it creates or changes; `pull_commits`: number -> [(sha, author date)],
    oldest first; `issues_disabled` makes creation answer 410."""

    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    labels_made: set[str] = field(default_factory=set)
    pull_commits: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    issues_disabled: bool = False
    now: str | None = None

    def _stamp(self) -> str:
        return self.now or _now_iso()

    def _number(self) -> int:
        with self._lock:
            number = max([self._next_pull - 1, *self.issues, *self.opened], default=0) + 1
            self._next_pull = number + 1
        return number

    def _label(self, name: str) -> dict[str, Any]:
        self.labels_made.add(name)
        return {"id": 1 + sum(map(ord, name)), "node_id": f"LA_{name}", "name": name, "color": "ededed",
                "default": False, "description": None,
                "url": f"{self.url}/repos/{self.owner}/{self.repo}/labels/{name}"}

    def add_issue(self, title: str, body: str | None = None, login: str = "someone", labels: list[str] | None = None,
                  created_at: str | None = None, state: str = "open", closed_at: str | None = None
                  ) -> dict[str, Any]:
        number = self._number()
        base = f"{self.url}/repos/{self.owner}/{self.repo}"
        when = created_at or self._stamp()
        issue = {
            "id": 5000 + number, "node_id": f"I_{number}", "url": f"{base}/issues/{number}",
            "repository_url": base, "labels_url": f"{base}/issues/{number}/labels{{/name}}",
            "comments_url": f"{base}/issues/{number}/comments", "events_url": f"{base}/issues/{number}/events",
            "html_url": f"https://github.example/{self.owner}/{self.repo}/issues/{number}", "number": number,
            "state": state, "state_reason": "completed" if state == "closed" else None, "title": title,
            "body": body, "user": self._user(login), "labels": [self._label(n) for n in labels or []],
            "assignee": None, "assignees": [], "milestone": None, "locked": False, "active_lock_reason": None,
            "comments": 0, "closed_at": closed_at if state == "closed" else None, "created_at": when,
            "updated_at": closed_at or when, "closed_by": None, "author_association": "NONE",
        }
        self.issues[number] = issue
        return issue

    def _listed(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        state = query.get("state", ["open"])[0]
        wanted = [x for x in query.get("labels", [""])[0].split(",") if x]
        since = query.get("since", [""])[0]
        items = list(self.issues.values())
        items += [{**p, "pull_request": {"url": p["url"], "html_url": p["html_url"]}, "labels": [],
                   "created_at": p.get("created_at") or "2024-01-01T00:00:00Z",
                   "updated_at": p.get("updated_at") or "2024-01-01T00:00:00Z",
                   "user": p.get("user") or self._user("someone")} for p in self.opened.values()]
        out = [i for i in items
               if (state == "all" or i["state"] == state)
               and all(n in {lab["name"] for lab in i["labels"]} for n in wanted)
               and (not since or _when(i["updated_at"]) >= _when(since))]
        desc = query.get("direction", ["desc"])[0] != "asc"
        return sorted(out, key=lambda i: (i["created_at"], i["number"]), reverse=desc)

    def handle(self, method: str, raw_path: str, body: Any, token: str = "") -> tuple[int, Any, dict[str, str]]:
        parsed = urlparse(raw_path)
        path, query = parsed.path.removeprefix(PREFIX), parse_qs(parsed.query)
        repo = f"/repos/{self.owner}/{self.repo}"
        rest = path[len(repo):] if path.startswith(repo + "/") else None
        ours = rest is not None and (rest == "/issues" or re.fullmatch(r"/issues/\d+", rest)
                                     or re.fullmatch(r"/pulls/\d+/commits", rest))
        if not ours:
            return super().handle(method, raw_path, body, token)
        assert rest is not None
        fault = self._fault(method)
        if fault is not None:
            return fault
        if rest == "/issues" and method == "GET":
            return self._page(self._listed(query), path, query)
        if rest == "/issues" and method == "POST":
            if self.issues_disabled:
                return 410, {"message": "Issues are disabled for this repo",
                             "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue",
                             "status": "410"}, {}
            if not isinstance(body, dict) or not body.get("title"):
                return 422, {"message": "Validation Failed",
                             "errors": [{"resource": "Issue", "field": "title", "code": "missing_field"}]}, {}
            names = [x if isinstance(x, str) else x.get("name", "") for x in body.get("labels") or []]
            return self._create(lambda: self.add_issue(str(body["title"]), body.get("body"), self.login_of(token),
                                                       names))
        if m := re.fullmatch(r"/issues/(\d+)", rest):
            issue = self.issues.get(int(m[1]))
            if issue is None:
                return 404, {"message": "Not Found",
                             "documentation_url": "https://docs.github.com/rest/issues/issues#get-an-issue",
                             "status": "404"}, {}
            if method == "GET":
                return 200, issue, {}
            if method == "PATCH":
                state = (body or {}).get("state")
                if state is not None and state not in ("open", "closed"):
                    return 422, {"message": "Validation Failed",
                                 "errors": [{"resource": "Issue", "field": "state", "code": "invalid"}]}, {}
                stamp = self._stamp()
                for key in ("title", "body"):
                    if key in (body or {}):
                        issue[key] = body[key]
                if state == "closed" and issue["state"] != "closed":
                    issue.update(state="closed", closed_at=stamp, closed_by=self._user(self.login_of(token)),
                                 state_reason=(body or {}).get("state_reason") or "completed")
                elif state == "open":
                    issue.update(state="open", closed_at=None, closed_by=None, state_reason="reopened")
                issue["updated_at"] = stamp
                return 200, issue, {}
        if (m := re.fullmatch(r"/pulls/(\d+)/commits", rest)) and method == "GET":
            number = int(m[1])
            if number not in self.pull_commits:
                return 404, {"message": "Not Found", "documentation_url":
                             "https://docs.github.com/rest/pulls/pulls#list-commits-on-a-pull-request",
                             "status": "404"}, {}
            return self._page([self._commit(sha, when) for sha, when in self.pull_commits[number]], path, query)
        return 404, {"message": "Not Found"}, {}

    def _commit(self, sha: str, when: str) -> dict[str, Any]:
        base = f"{self.url}/repos/{self.owner}/{self.repo}"
        person = {"name": "Dev", "email": "dev@example.com", "date": when}
        return {"url": f"{base}/commits/{sha}", "sha": sha, "node_id": f"C_{sha[:8]}",
                "html_url": f"https://github.example/{self.owner}/{self.repo}/commit/{sha}",
                "comments_url": f"{base}/commits/{sha}/comments",
                "commit": {"url": f"{base}/git/commits/{sha}", "author": person, "committer": person,
                           "message": "change", "comment_count": 0,
                           "tree": {"sha": "0" * 40, "url": f"{base}/git/trees/{'0' * 40}"},
                           "verification": {"verified": False, "reason": "unsigned", "signature": None,
                                            "payload": None, "verified_at": None}},
                "author": self._user("dev"), "committer": self._user("dev"), "parents": []}

    def comments_on(self, number: int) -> list[dict[str, Any]]:
        return self.issue_comments.get(number, [])


def _when(text: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- appended for the retraining pull request's workflow (tests/test_retrain.py): workflow dispatches, and a pull
# request opened through the double read back by number ---
#
# `POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches` as GitHub's OpenAPI description has it
# (reference/github-rest/openapi-subset.json): body `ref` (required string), `inputs` (object, at most 25
# properties, values as given), `return_run_details` (boolean); 204 without a body, 200 with the run's ids when
# return_run_details is true; 404 for a workflow that is not there, 422 for a bad body or a ref that does not exist.


@dataclass
class GitHubDoubleWithActions(GitHubDoubleWithIssues):
    """The double, also answering workflow dispatches (each accepted one recorded in `dispatches` as
    {"workflow", "ref", "inputs"}) and `GET /pulls/{n}` for the pull requests in `opened` (those not in `pulls`).
    `workflows`: the workflow files that exist (None: any); `ref_exists`: asked whether a ref exists (None: any)."""

    dispatches: list[dict[str, Any]] = field(default_factory=list)
    workflows: set[str] | None = None
    ref_exists: Any = None

    def handle(self, method: str, raw_path: str, body: Any, token: str = "") -> tuple[int, Any, dict[str, str]]:
        path = urlparse(raw_path).path.removeprefix(PREFIX)
        repo = f"/repos/{re.escape(self.owner)}/{re.escape(self.repo)}"
        m = re.fullmatch(rf"{repo}/actions/workflows/([^/]+)/dispatches", path)
        if m and method == "POST":
            fault = self._fault(method)
            if fault is not None:
                return fault
            if self.workflows is not None and m[1] not in self.workflows:
                return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest/actions/"
                             "workflows#create-a-workflow-dispatch-event", "status": "404"}, {}
            inputs = (body or {}).get("inputs", {}) if isinstance(body, dict) else None
            if not isinstance(body, dict) or not isinstance(body.get("ref"), str) or not isinstance(inputs, dict) \
                    or len(inputs) > 25:
                return 422, {"message": "Invalid request.", "documentation_url": "https://docs.github.com/rest/"
                             "actions/workflows#create-a-workflow-dispatch-event", "status": "422"}, {}
            if self.ref_exists is not None and not self.ref_exists(body["ref"]):
                return 422, {"message": f"No ref found for: {body['ref']}", "documentation_url":
                             "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event",
                             "status": "422"}, {}
            self.dispatches.append({"workflow": m[1], "ref": body["ref"], "inputs": dict(inputs)})
            if body.get("return_run_details") is True:
                run = len(self.dispatches)
                return 200, {"workflow_run_id": run, "run_url": f"{self.url}{repo}/actions/runs/{run}",
                             "html_url": f"https://github.example{repo.removeprefix('/repos')}/actions/runs/{run}"}, {}
            return 204, None, {}
        n = re.fullmatch(rf"{repo}/pulls/(\d+)", path)
        if n and method == "GET" and int(n[1]) not in self.pulls and int(n[1]) in self.opened \
                and self._fault(method) is None:
            return 200, self.opened[int(n[1])], {}
        return super().handle(method, raw_path, body, token)


# --- appended for `mlops sweep` (tests/test_sweep.py): a collaborator's permission ---
#
# `GET /repos/{owner}/{repo}/collaborators/{username}/permission` ("Get repository permissions for a user"): 200 with
# `permission` (admin, write, read or none: the legacy base roles), `role_name` (admin, maintain, write, triage,
# read) and `user` (a collaborator). GitHub answers 404 for a login that is no user at all.


@dataclass
class GitHubDoubleWithPermissions(GitHubDoubleWithIssues):
    """The double, also answering a user's permission on the repository from `roles` (login -> admin, maintain,
    write, triage or read); users it does not list are no collaborators ("none"), logins in `unknown_users` 404."""

    roles: dict[str, str] = field(default_factory=dict)
    unknown_users: set[str] = field(default_factory=set)

    def handle(self, method: str, raw_path: str, body: Any, token: str = "") -> tuple[int, Any, dict[str, str]]:
        path = urlparse(raw_path).path.removeprefix(PREFIX)
        m = re.fullmatch(rf"/repos/{re.escape(self.owner)}/{re.escape(self.repo)}/collaborators/([^/]+)/permission",
                         path)
        if m and method == "GET":
            fault = self._fault(method)
            if fault is not None:
                return fault
            login = m[1]
            if login in self.unknown_users:
                return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest/"
                             "collaborators/collaborators#get-repository-permissions-for-a-user", "status": "404"}, {}
            role = self.roles.get(login)
            # the legacy base role GitHub puts in `permission`: maintain reads as write, triage as read
            legacy = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}
            user = {**self._user(login), "permissions": {"admin": role == "admin", "maintain": role in ("admin",
                    "maintain"), "push": role in ("admin", "maintain", "write"), "triage": role is not None and
                    role != "read", "pull": role is not None}, "role_name": role or "none"}
            return 200, {"permission": legacy.get(role or "", "none"), "role_name": role or "none",
                         "user": user}, {}
        return super().handle(method, raw_path, body, token)
