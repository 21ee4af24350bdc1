"""Page bodies of the web interface. Every function returns :class:`Safe` markup built with
:mod:`artifactd.web.html`, so all values (names, summaries, properties, advisory texts) are
escaped. No function here reads the request: :mod:`artifactd.web.routes` gathers the data.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import urlsplit

from artifactd.model import Artifact
from artifactd.web import reports
from artifactd.web.html import Node, Safe, a, badge, code_block, dl, el, esc, hidden, size, table, url, when

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


# --- layout ------------------------------------------------------------------------------------

def layout(title: str, body: Node, *, user: str | None, csrf: str | None, crumbs: Sequence[tuple[str, str]] = (),
           login_next: str = "") -> bytes:
    nav = el("nav", {"class": "top"},
             a(url(), "artifactd", class_="brand"),
             a(url(), "Repositories"), a(url("health"), "Health"), a(url("cleanup"), "Cleanup"),
             a(url("builds"), "Builds"),
             el("span", {"class": "who"},
                [esc(user), " ", el("form", {"method": "post", "action": url("logout", folder=False), "class": "inline"},
                                    hidden("csrf", csrf or ""), el("button", {"type": "submit"}, "Log out"))]
                if user else a(url("login", query={"next": login_next} if login_next else None), "Log in")))
    trail = None
    if crumbs:
        trail = el("p", {"class": "crumbs"},
                   [[a(href, label) if href else esc(label), " / " if i < len(crumbs) - 1 else ""]
                    for i, (label, href) in enumerate(crumbs)])
    doc = Safe("<!DOCTYPE html>") + el(
        "html", {"lang": "en"},
        el("head", None,
           el("meta", {"charset": "utf-8"}),
           el("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
           el("title", None, f"{title} · artifactd"),
           el("link", {"rel": "stylesheet", "href": "/ui/static/app.css"})),
        el("body", None, el("header", None, nav), el("main", None, trail, el("h1", None, title), body),
           el("footer", None, "artifactd · pages work without JavaScript")))
    return doc.encode("utf-8")


def message(text: str, kind: str = "info") -> Safe:
    return el("p", {"class": f"msg msg-{kind}"}, text)


def error_page(status: int, text: str, *, anonymous: bool) -> Node:
    hint = None
    if anonymous and status in (401, 403, 404):
        hint = el("p", None, "Some repositories are visible only after you ",
                  a(url("login"), "log in"), ".")
    return [message(text, "error"), hint, el("p", None, a(url(), "Back to the repositories"))]


def pager(page: int, per_page: int, total: int, make: Callable[[int], str]) -> Safe:
    pages = max(1, (total + per_page - 1) // per_page)
    if pages <= 1:
        return Safe("")
    items: list[Node] = []
    if page > 1:
        items.append(a(make(page - 1), "« previous", rel="prev"))
    items.append(el("span", None, f"page {page} of {pages} ({total} in all)"))
    if page < pages:
        items.append(a(make(page + 1), "next »", rel="next"))
    return el("nav", {"class": "pager", "aria-label": "pages"}, items)


def safe_href(link: str) -> str | None:
    """Only http(s) links from advisories and metadata become hrefs (never javascript:, data:...)."""
    try:
        scheme = urlsplit(link.strip()).scheme.lower()
    except ValueError:
        return None
    return link.strip() if scheme in ("http", "https") else None


def ext_link(link: str) -> Safe:
    href = safe_href(link)
    return a(href, link, rel="noreferrer noopener") if href else esc(link)


# --- home ----------------------------------------------------------------------------------------

def upstream_cell(status: dict[str, Any] | None) -> Node:
    """A proxy's ``status()``: its health (ok, failing, offline, unknown), last success and error."""
    if not status:
        return "-"
    health = status.get("health")
    if health is None:
        ok = next((status[k] for k in ("healthy", "ok", "upstream_ok", "available") if k in status), None)
        health = None if ok is None else ("ok" if ok else "failing")
    parts: list[Node] = []
    if health is not None:
        kind = {"ok": "allow", "failing": "deny", "offline": "review"}.get(str(health), "none")
        parts.append(badge("healthy" if health == "ok" else str(health), kind))
    for k in ("last_success", "last_error", "error", "cached_pages"):
        v = status.get(k)
        if v not in (None, ""):
            parts.append(el("span", {"class": "small"}, f" {k.replace('_', ' ')}: {v}"))
    return parts


def _count(n: int, label: str) -> str:
    return f"{n} {label[:-1] if n == 1 and label.endswith('s') else label}"


def findings_cell(summary: dict[str, int] | None) -> Node:
    if summary is None:
        return "-"
    if not summary:
        return badge("clean", "allow")
    return [[badge(f"{n} {k}", _sev_kind(k)), " "] for k, n in summary.items()]


def _sev_kind(k: str | None) -> str:
    k = k or "unknown"
    return {"malicious": "critical", "license-denied": "deny", "license-review": "review"}.get(k, k)


def home(rows: list[dict[str, Any]], anonymous: bool) -> Node:
    body = table(
        ["Repository", "Type", "Format", "Items", "Files", "Stored", "Deduplicated", "Upstream", "Findings"],
        [[a(url("repo", r["name"]), r["name"]), r["type"], r["format"], _count(r["items"], r["items_label"]),
          r["files"], size(r["stored"]), size(r["dedup"]), upstream_cell(r["upstream"]),
          findings_cell(r["findings"])] for r in rows],
        cls="wide", empty="No repositories you may read.")
    note = el("p", {"class": "small"}, "Logged out: only anonymously readable repositories are listed.") if anonymous else None
    return [body, note]


# --- repositories --------------------------------------------------------------------------------

def search_form(action: str, q: str, prop: str, *, name_label: str = "Name") -> Safe:
    return el("form", {"method": "get", "action": action, "class": "search", "role": "search"},
              el("label", None, name_label, " ", el("input", {"type": "search", "name": "q", "value": q})),
              el("label", None, "Property ", el("input", {"type": "text", "name": "prop", "value": prop,
                                                             "placeholder": "key=value"})),
              el("button", {"type": "submit"}, "Search"))


def snippets_pypi(base: str, repo: str, project: str | None = None, version: str | None = None,
                  hosted: bool = True) -> Safe:
    index = f"{base}/repository/{repo}/simple/"
    req = f"{project}=={version}" if project and version else (project or "PACKAGE")
    blocks: list[Node] = [
        el("h3", None, "pip.conf"), code_block(f"[global]\nindex-url = {index}\n"),
        el("h3", None, "pip"), code_block(f"pip install --index-url {index} '{req}'\n"),
    ]
    if hosted:
        blocks += [el("h3", None, "twine"),
                   code_block(f"twine upload --repository-url {base}/repository/{repo}/ -u __token__ -p \"$TOKEN\" dist/*\n")]
    blocks += [el("h3", None, "curl"),
               code_block(f"curl -H 'Accept: application/vnd.pypi.simple.v1+json' {index}"
                          f"{(project + '/') if project else ''}\n")]
    return el("section", {"class": "snippets"}, el("h2", None, "Use it"), blocks)


def repo_header(info: dict[str, Any]) -> Safe:
    items: list[tuple[Node, Node]] = [("Type", info["type"]), ("Format", info["format"])]
    if info.get("members"):
        items.append(("Members", [[a(url("repo", m), m), " "] for m in info["members"]]))
    if info.get("url"):
        items.append(("Upstream", info["url"]))
    if info.get("upstream"):
        items.append(("Upstream health", upstream_cell(info["upstream"])))
    if info["type"] == "proxy" and info["format"] == "pypi":
        items.append(("Listed here", "projects with cached files; any other project opens at its own page"))
    items.append(("Files", f"{info['files']} ({size(info['stored'])} stored, {size(info['dedup'])} deduplicated)"))
    return dl(items)


def pypi_repo(name: str, info: dict[str, Any], rows: Sequence[Any], total: int, page: int, per_page: int,
              q: str, prop: str, results: list[tuple[Artifact, dict[str, list[str]]]] | None, base: str) -> Node:
    out: list[Node] = [repo_header(info), search_form(url("repo", name), q, prop)]
    if results is not None:
        out.append(el("h2", None, f"Files with property {prop}"))
        out.append(prop_results(results))
    else:
        out.append(el("h2", None, "Projects"))
        out.append(table(["Project", "Versions", "Files", "Size", "Updated"] + (["Repository"] if info["type"] == "group" else []),
                         [[a(url("repo", name, "project", r.normalized), r.name or r.normalized), r.versions, r.files,
                           size(r.size), when(r.updated)] + ([r.repo] if info["type"] == "group" else []) for r in rows],
                         cls="wide", empty="No projects match." if q else "No projects yet."))
        out.append(pager(page, per_page, total, lambda p: url("repo", name, query={"q": q, "page": p})))
    out.append(snippets_pypi(base, name, hosted=info["type"] == "hosted"))
    return out


def prop_results(results: list[tuple[Artifact, dict[str, list[str]]]]) -> Safe:
    rows = []
    for art, props in results:
        if art.kind == "pypi":
            link = a(url("repo", art.repo, "project", art.project or "", art.version or ""), art.filename or art.path)
        else:
            link = a(url("repo", art.repo, "browse", *art.path.split("/"), folder=False), art.path)
        rows.append([link, art.repo, size(art.size), props_list(props), when(art.created)])
    return table(["File", "Repository", "Size", "Properties", "Created"], rows, cls="wide", empty="Nothing matches.")


def props_list(props: dict[str, list[str]]) -> Node:
    if not props:
        return "-"
    return el("ul", {"class": "props"}, [el("li", None, el("code", None, f"{k}={v}")) for k, vs in sorted(props.items())
                                          for v in vs])


def generic_repo(name: str, info: dict[str, Any], path: str, listing: dict[str, Any] | None, q: str, prop: str,
                 results: list[tuple[Artifact, dict[str, list[str]]]] | None, page: int, per_page: int,
                 base: str) -> Node:
    out: list[Node] = [repo_header(info), search_form(url("repo", name), q, prop)]
    if results is not None:
        out += [el("h2", None, "Search results"), prop_results(results[(page - 1) * per_page: page * per_page]),
                pager(page, per_page, len(results), lambda p: url("repo", name, query={"q": q, "prop": prop, "page": p}))]
    elif listing is not None:
        children = listing["children"]
        crumbs: list[Node] = [a(url("repo", name), name)]
        acc: list[str] = []
        for part in [p for p in path.split("/") if p]:
            acc.append(part)
            crumbs += [" / ", a(url("repo", name, "browse", *acc), part)]
        rows = []
        for c in children[(page - 1) * per_page: page * per_page]:
            segs = c["path"].rstrip("/").split("/")
            if c["type"] == "folder":
                rows.append([a(url("repo", name, "browse", *segs), c["name"] + "/"), "folder", "", "", ""])
            else:
                rows.append([a(url("repo", name, "browse", *segs, folder=False), c["name"]), "file", size(c["size"]),
                             el("code", {"class": "hash"}, c["sha256"][:12]), when(c["created"])])
        out += [el("h2", None, "Folder ", crumbs),
                table(["Name", "Type", "Size", "sha256", "Created"], rows, cls="wide", empty="Empty folder."),
                pager(page, per_page, len(children),
                      lambda p: url("repo", name, *(["browse"] + [s for s in path.split("/") if s]), query={"page": p}))]
    out.append(el("section", {"class": "snippets"}, el("h2", None, "Use it"),
                  el("h3", None, "upload with properties"),
                  code_block(f"curl -u \"$USER:$PASSWORD\" -T model.pkl '{base}/repository/{name}/models/model.pkl;accuracy=0.94'\n"),
                  el("h3", None, "download"),
                  code_block(f"curl -O {base}/repository/{name}/models/model.pkl\n")))
    return out


def generic_file(art: Artifact, props: dict[str, list[str]], promotions: list[dict[str, Any]],
                 builds: list[tuple[str, str]], base: str) -> Node:
    dl_url = f"{base}/repository/{art.repo}/{art.path}"
    return [
        dl([("Repository", a(url("repo", art.repo), art.repo)), ("Path", art.path), ("Size", size(art.size)),
            ("sha256", el("code", {"class": "hash"}, art.sha256)), ("Created", when(art.created)),
            ("Created by", art.created_by or "-"), ("Downloads", art.downloads),
            ("Last download", when(art.last_download))]),
        el("p", None, a(f"/repository/{_q(art.repo)}/{_qpath(art.path)}", "Download", class_="button")),
        el("h2", None, "Properties"), props_list(props),
        el("h2", None, "Builds"),
        table(["Build"], [[a(url("builds", n, num), f"{n} #{num}")] for n, num in builds], empty="Not part of a build."),
        el("h2", None, "Promotion history"), promotions_table(promotions),
        el("section", {"class": "snippets"}, el("h2", None, "Use it"),
           code_block(f"curl -O {dl_url}\ncurl -s {dl_url} | sha256sum   # {art.sha256}\n")),
    ]


def _q(s: str) -> str:
    from urllib.parse import quote
    return quote(s, safe="")


def _qpath(p: str) -> str:
    from urllib.parse import quote
    return "/".join(quote(s, safe="") for s in p.split("/"))


def promotions_table(rows: list[dict[str, Any]]) -> Safe:
    return table(["When", "Who", "From", "To", "Path", "Move", "Forced", "Comment"],
                 [[when(p["time"]), p["user"] or "-", p["source"], p["target"], p["path"], "yes" if p["move"] else "no",
                   "yes" if p["forced"] else "no", p["comment"] or ""] for p in rows],
                 empty="Never promoted.")


# --- projects and versions ----------------------------------------------------------------------

def project(repo: str, page: Any, arts: list[Artifact], reps: dict[str, dict[str, Any]]) -> Node:
    by_version: dict[str, list[Artifact]] = {}
    for art in arts:
        by_version.setdefault(art.version or "", []).append(art)
    rows: list[list[Node]] = []
    for v in reversed(page.versions):
        files = by_version.get(v, [])
        rep = reps.get(v) or {}
        adv = rep.get("advisories") or []
        w = reports.worst(adv)
        lic = rep.get("license") or {}
        rows.append([a(url("repo", repo, "project", page.normalized, v), v), len(files),
                     size(sum(f.size for f in files)), when(min((f.created for f in files), default=None)),
                     sum(f.downloads for f in files),
                     badge("yanked", "review") if files and all(f.yanked for f in files) else "",
                     badge(f"{len(adv)} advisories, worst {w}", _sev_kind(w)) if adv else badge("none", "allow"),
                     badge(lic.get("decision", "-"), lic.get("decision", "none")) if lic else "-"])
    latest = next((a_ for a_ in reversed(arts) if a_.metadata), None)
    meta_items: list[tuple[Node, Node]] = []
    if latest is not None:
        meta_items.append(("Summary", latest.metadata.get("summary") or "-"))
    if page.owner and page.owner != repo:
        meta_items.append(("Served by", a(url("repo", page.owner, "project", page.normalized), page.owner)))
    if page.hidden:
        meta_items.append(("Hidden members", ", ".join(page.hidden) + " (first member owns the name)"))
    return [dl(meta_items) if meta_items else None, el("h2", None, "Versions"),
            table(["Version", "Files", "Size", "Uploaded", "Downloads", "Yanked", "Advisories", "License"], rows, cls="wide")]


def version(repo: str, name: str, normalized: str, ver: str, arts: list[Artifact], rep: dict[str, Any],
            props: dict[int, dict[str, list[str]]], promotions: list[dict[str, Any]], builds: list[tuple[str, str]],
            can_yank: Callable[[str], bool], csrf: str | None, base: str, hosted: bool) -> Node:
    meta = next((x.metadata for x in arts if x.metadata), {})
    yanked = [x for x in arts if x.yanked]
    lic = rep.get("license") or {}
    info: list[tuple[Node, Node]] = [
        ("Summary", meta.get("summary") or "-"),
        ("Requires-Python", meta.get("requires_python") or "-"),
        ("Dependencies", el("ul", {"class": "deps"}, [el("li", None, el("code", None, d)) for d in meta.get("requires_dist") or []])
         if meta.get("requires_dist") else "none"),
        ("License", [badge(lic.get("decision", "-"), lic.get("decision", "none")), " ",
                     el("code", None, lic.get("expression") or "no expression"), " ",
                     el("span", {"class": "small"}, lic.get("reason") or "")]),
    ]
    if meta.get("author"):
        info.append(("Author", meta["author"]))
    urls = [u.split(",", 1) for u in meta.get("project_urls") or []]
    if urls:
        info.append(("Links", el("ul", None, [el("li", None, lbl.strip(), ": ", ext_link(u.strip()))
                                             for lbl, u in (x if len(x) == 2 else ["", x[0]] for x in urls)])))
    if any(x.pinned for x in arts):
        info.append(("Pinned", [badge("pinned", "info"), " cleanup never deletes it"]))
    if rep.get("quarantined"):
        info.append(("Quarantined", [badge("quarantined", "deny"), " an advisory is at or above [plugins.health] block-on"]))
    if yanked:
        info.append(("Yanked", [badge("yanked", "review"), " ", yanked[0].yanked_reason or "no reason given"]))
    files = table(
        ["File", "Type", "Size", "sha256", "Uploaded", "Downloads", "Yanked", "Properties"],
        [[a(f"/repository/{_q(x.repo)}/packages/{_q(normalized)}/{_q(x.version or '')}/{_q(x.filename or '')}",
            x.filename or x.path), x.packagetype or "-", size(x.size), el("code", {"class": "hash"}, x.sha256),
          when(x.created), x.downloads, badge("yanked", "review") if x.yanked else "no", props_list(props.get(x.id, {}))]
         for x in arts], cls="wide")
    actions: list[Node] = []
    writable = sorted({x.repo for x in arts if can_yank(x.repo)})
    for r in writable:
        pin = "unpin" if all(x.pinned for x in arts if x.repo == r) else "pin"
        actions.append(el("form", {"method": "post", "action": url("repo", r, "project", normalized, ver, pin, folder=False),
                                   "class": "action"},
                          hidden("csrf", csrf or ""),
                          el("button", {"type": "submit"}, f"{pin.capitalize()} {ver} in {r}")))
        action = "unyank" if all(x.yanked for x in arts if x.repo == r) else "yank"
        target = url("repo", r, "project", normalized, ver, action, folder=False)
        actions.append(el("form", {"method": "post", "action": target, "class": "action"},
                          hidden("csrf", csrf or ""),
                          el("label", None, "Reason ", el("input", {"type": "text", "name": "reason", "maxlength": "200"}))
                          if action == "yank" else None,
                          el("button", {"type": "submit"}, f"{action.capitalize()} {ver} in {r}")))
    return [
        dl(info),
        el("h2", None, "Files"), files,
        actions and el("section", {"class": "actions"}, el("h2", None, "Actions"), actions),
        el("h2", {"id": "advisories"}, "Advisories"), advisories(rep),
        el("h2", None, "Builds"),
        table(["Build"], [[a(url("builds", n, num), f"{n} #{num}")] for n, num in builds], empty="Not part of a build."),
        el("h2", None, "Promotion history"), promotions_table(promotions),
        snippets_pypi(base, repo, name, ver, hosted),
    ]


def advisories(rep: dict[str, Any]) -> Node:
    if rep.get("error"):
        return message(f"Advisory database unusable: {rep['error']}", "error")
    if not rep.get("database"):
        return el("p", {"class": "empty"}, "No advisory database configured ([plugins.health] advisories).")
    adv = rep.get("advisories") or []
    if not adv:
        return el("p", None, badge("no known advisories", "allow"))
    rows = []
    for f in adv:
        sev = "malicious" if f["malicious"] else f["severity"]
        rows.append([el("strong", None, ", ".join(f["ids"])), badge(sev, _sev_kind(sev)), f["status"],
                     f["fixed_in"] or "no fix known", f["summary"],
                     el("span", {"class": "small"}, ", ".join(f["aliases"])) if f["aliases"] else "",
                     el("ul", {"class": "refs"}, [el("li", None, ext_link(r)) for r in f["references"][:5]])])
    return table(["Advisory", "Severity", "Status", "Fixed in", "Summary", "Aliases", "References"], rows,
                 cls="wide advisories")


# --- health ----------------------------------------------------------------------------------------

COLORS = {"malicious": "critical", "critical": "critical", "high": "high", "medium": "medium", "low": "low",
          "unknown": "unknown", "deny": "deny", "review": "review", "allow": "allow"}


def bar_chart(title: str, data: Sequence[tuple[str, int]]) -> Safe:
    """A horizontal bar chart as inline SVG (no scripts, colors from the stylesheet's classes)."""
    width, bar_h, gap, label_w = 360, 18, 6, 90
    top = max((v for _, v in data), default=0) or 1
    height = len(data) * (bar_h + gap) + gap
    bars: list[Node] = [el("title", None, title)]
    for i, (label, value) in enumerate(data):
        y = gap + i * (bar_h + gap)
        w = int((width - label_w - 40) * value / top)
        bars += [
            el("text", {"x": 0, "y": y + bar_h - 5, "class": "chart-label"}, label),
            el("rect", {"x": label_w, "y": y, "width": max(w, 1) if value else 0, "height": bar_h,
                        "class": f"bar bar-{COLORS.get(label, 'unknown')}"}),
            el("text", {"x": label_w + w + 4, "y": y + bar_h - 5, "class": "chart-value"}, value),
        ]
    return el("figure", {"class": "chart"},
              el("svg", {"xmlns": "http://www.w3.org/2000/svg", "viewbox": f"0 0 {width} {height}",
                         "width": width, "height": height, "role": "img", "aria-label": title}, bars),
              el("figcaption", None, title))


def health(repos: list[dict[str, Any]], limit: int = 100) -> Node:
    out: list[Node] = []
    db_info = next((r["database"] for r in repos if r.get("database")), None)
    error = next((r["error"] for r in repos if r.get("error")), None)
    if db_info:
        out.append(el("p", {"class": "small"}, f"Advisory database: {db_info['count']} advisories from {db_info['source']}, "
                                               f"latest change {db_info['latest_modified'] or 'unknown'}."))
    elif error:
        out.append(message(f"Advisory database unusable: {error}", "error"))
    elif not any(r.get("health") for r in repos):
        out.append(message("No advisory database configured: set [plugins.health] advisories "
                           "to a folder of OSV files or an OSV zip.", "info"))
    if repos and not any(r.get("license") for r in repos):
        out.append(message("No license policy configured ([plugins.license] allow/deny).", "info"))
    if not repos:
        out.append(el("p", {"class": "empty"}, "No Python repositories you may read."))
    for rep in repos:
        name = rep["repo"]
        pk = rep["packages"]
        out.append(el("section", {"class": "repo-health", "id": f"repo-{name}"},
                      el("h2", None, a(url("repo", name), name), f" — {rep['releases']} releases, {len(pk)} with findings"),
                      el("div", {"class": "charts"},
                         bar_chart(f"Advisories by severity in {name}", list(rep["counts"].items())),
                         bar_chart(f"License verdicts in {name}", list(rep["licenses"].items()))),
                      table(["Package", "Version", "Worst", "Advisories", "Fixed in", "License", "Last download"],
                            [[a(url("repo", name, "project", p["project"]), p["name"]),
                              a(url("repo", name, "project", p["project"], p["version"]), p["version"]),
                              [badge(p["worst"], _sev_kind(p["worst"])) if p["worst"] else badge("none", "allow"),
                               " ", badge("quarantined", "deny") if p["quarantined"] else ""],
                              ", ".join(f["ids"][0] for f in p["advisories"] if f["ids"]) or "-",
                              ", ".join(sorted({f["fixed_in"] for f in p["advisories"] if f["fixed_in"]})) or "-",
                              badge((p["license"] or {}).get("decision", "allow"), (p["license"] or {}).get("decision", "allow")),
                              when(p["last_download"])] for p in pk[:limit]],
                            cls="wide", empty="No findings: every release is clean."),
                      el("p", {"class": "small"}, f"Showing the worst {limit} of {len(pk)}.") if len(pk) > limit else None))
    return out


# --- cleanup ---------------------------------------------------------------------------------------

def cleanup(preview: dict[str, Any], can_run: bool, csrf: str | None, result: dict[str, Any] | None = None) -> Node:
    out: list[Node] = []
    if result is not None:
        out.append(message(f"Cleanup done: {_count(result['deleted'], 'files')} deleted, {size(result['bytes'])} freed"
                           + (f"; {len(result['skipped'])} skipped (protected since the preview)" if result["skipped"] else "")
                           + ".", "ok"))
    policies = preview["policies"]
    if not policies:
        out.append(el("p", {"class": "empty"}, "No cleanup policies configured ([cleanup.<name>] in artifactd.toml)."))
        return out
    out.append(el("h2", None, "Policies"))
    out.append(table(["Policy", "Repositories", "Rules"],
                     [[n, ", ".join(p.get("repositories", []) or []),
                       ", ".join(f"{k} = {v}" for k, v in p.items() if k != "repositories")] for n, p in policies.items()]))
    if not preview["available"]:
        out.append(message("No retention plugin is installed, so no preview can be computed.", "info"))
        return out
    out.append(el("h2", None, f"Preview: {_count(len(preview['items']), 'files')} ({size(preview['bytes_selected'])}), "
                              f"{size(preview['bytes'])} of storage freed after deduplication"))
    out.append(table(["Repository", "Path", "Policy", "Rule", "Size"],
                     [[i["repo"], i["path"], i["policy"], i["reason"], size(i["size"])] for i in preview["items"]],
                     cls="wide", empty="Nothing to delete."))
    if preview["hidden"]:
        out.append(el("p", {"class": "small"}, f"{preview['hidden']} more in repositories you may not read."))
    if preview["capped"]:
        out.append(el("p", {"class": "small"}, f"{preview['capped']} more past the per-run cap (the next run takes them)."))
    if preview["kept"]:
        out.append(el("h2", None, "Kept although selected"))
        out.append(table(["Repository", "Path", "Policy", "Kept because"],
                         [[i["repo"], i["path"], i["policy"], i["kept"]] for i in preview["kept"]], cls="wide"))
    if preview["items"] and can_run:
        out.append(el("form", {"method": "post", "action": url("cleanup", "run", folder=False), "class": "action"},
                      hidden("csrf", csrf or ""),
                      el("button", {"type": "submit", "class": "danger"},
                         f"Run cleanup: delete these {len(preview['items'])} files")))
    elif preview["items"]:
        out.append(el("p", {"class": "small"}, "Running a cleanup needs the delete permission on these repositories."))
    return out


# --- builds ------------------------------------------------------------------------------------------

def builds(rows: list[dict[str, Any]]) -> Node:
    return table(["Build", "Number", "Created", "By", "Status"],
                 [[a(url("builds", r["name"], r["number"]), r["name"]), r["number"], when(r["created"]),
                   r["created_by"] or "-", badge(r["status"] or "-", "info")] for r in rows],
                 cls="wide", empty="No builds recorded.")


def build(rec: dict[str, Any], hidden_count: int, targets: list[str], csrf: str | None,
          result: dict[str, Any] | None = None) -> Node:
    scan = rec.get("scan")
    out: list[Node] = []
    if result is not None:
        out.append(message(f"Promoted to {result['target']} as {result['status']}: {len(result['items'])} files.", "ok"))
    out.append(dl([("Status", badge(rec["status"] or "-", "info")), ("Created", when(rec["created"])),
                   ("Created by", rec["created_by"] or "-"),
                   ("VCS", props_list({k: [str(v)] for k, v in (rec.get("vcs") or {}).items()})),
                   ("Properties", props_list(rec.get("properties") or {})),
                   ("Scan", [badge(scan["result"], "allow" if scan["result"] == "passed" else "deny"), " ",
                             when(scan.get("time"))] if scan else "not scanned")]))
    if scan and (scan.get("denied") or scan.get("reviews")):
        out.append(el("ul", {"class": "verdicts"}, [el("li", None, badge("denied", "deny"), " ", d) for d in scan.get("denied", [])],
                      [el("li", None, badge("review", "review"), " ", r) for r in scan.get("reviews", [])]))
    out.append(el("h2", None, "Artifacts"))
    out.append(table(["Repository", "Path", "Size", "sha256"],
                     [[a(url("repo", x["repo"]), x["repo"]), _artifact_link(x), size(x["size"]),
                       el("code", {"class": "hash"}, x["sha256"][:16])] for x in rec["artifacts"]], cls="wide"))
    if hidden_count:
        out.append(el("p", {"class": "small"}, f"{hidden_count} artifacts in repositories you may not read are not shown."))
    out.append(el("h2", None, "Dependencies"))
    out.append(table(["Name", "Version", "Hashes"],
                     [[d["name"], d["version"], len(d["hashes"])] for d in rec["dependencies"]], empty="None recorded."))
    out.append(el("h2", None, "Status history"))
    out.append(table(["When", "Who", "Status", "Repository", "Comment", "Forced"],
                     [[when(h["time"]), h["user"] or "-", h["status"], h["repo"] or "", h["comment"] or "",
                       "yes" if h["forced"] else ""] for h in rec["history"]], cls="wide"))
    if targets:
        out.append(el("section", {"class": "actions"}, el("h2", None, "Promote"),
                      el("form", {"method": "post", "action": url("builds", rec["name"], rec["number"], "promote", folder=False),
                                  "class": "action"},
                         hidden("csrf", csrf or ""),
                         el("label", None, "Target ", el("select", {"name": "target"},
                                                         [el("option", {"value": t}, t) for t in targets])),
                         el("label", None, "Status ", el("input", {"type": "text", "name": "status", "value": "promoted",
                                                                    "maxlength": "64"})),
                         el("label", None, "Comment ", el("input", {"type": "text", "name": "comment", "maxlength": "200"})),
                         el("button", {"type": "submit"}, "Promote"))))
    return out


def _artifact_link(x: dict[str, Any]) -> Safe:
    parts = x["path"].split("/")
    return a(url("repo", x["repo"], "browse", *parts, folder=False), x["path"])


# --- images --------------------------------------------------------------------------------------------

def images(repo: str, info: dict[str, Any], names: list[str], page: int, per_page: int, host: str) -> Node:
    return [repo_header(info), el("h2", None, "Images"),
            table(["Image"], [[a(url("repo", repo, "image", query={"name": n}), n)]
                              for n in names[(page - 1) * per_page: page * per_page]], empty="No images yet."),
            pager(page, per_page, len(names), lambda p: url("repo", repo, query={"page": p})),
            el("section", {"class": "snippets"}, el("h2", None, "Use it"),
               code_block(f"docker pull {host}/{repo}/IMAGE:TAG\nskopeo inspect --tls-verify=false docker://{host}/{repo}/IMAGE:TAG\n"))]


def image(repo: str, name: str, tags: list[tuple[str, str, str]], manifests: list[Any], host: str) -> Node:
    return [
        el("h2", None, "Tags"),
        table(["Tag", "Digest", "Updated"],
              [[t, a(url("repo", repo, "image", query={"name": name, "digest": d}), el("code", {"class": "hash"}, d)), when(u)]
               for t, d, u in tags], cls="wide", empty="No tags."),
        el("h2", None, "Manifests"),
        table(["Digest", "Media type", "Size", "Created", "Last pull"],
              [[a(url("repo", repo, "image", query={"name": name, "digest": m.digest}), el("code", {"class": "hash"}, m.digest)),
                m.media_type, size(m.size), when(m.created), when(m.last_pull)] for m in manifests], cls="wide"),
        el("section", {"class": "snippets"}, el("h2", None, "Use it"),
           code_block("".join(f"docker pull {host}/{repo}/{name}:{t}\n" for t, _, _ in tags[:3]) or f"docker pull {host}/{repo}/{name}@DIGEST\n")),
    ]


def manifest(m: Any, body: dict[str, Any] | None) -> Node:
    out: list[Node] = [dl([("Digest", el("code", None, m.digest)), ("Media type", m.media_type), ("Size", size(m.size)),
                           ("Created", when(m.created)), ("Last pull", when(m.last_pull)),
                           ("Annotations", props_list({k: [v] for k, v in (m.annotations or {}).items()}))])]
    if body is None:
        return out + [el("p", {"class": "empty"}, "Manifest body not available.")]
    if isinstance(body.get("config"), dict):
        c = body["config"]
        out += [el("h2", None, "Config"), dl([("Media type", str(c.get("mediaType", "-"))),
                                              ("Digest", el("code", None, str(c.get("digest", "-")))),
                                              ("Size", size(c.get("size") if isinstance(c.get("size"), int) else None))])]
    if isinstance(body.get("layers"), list):
        out += [el("h2", None, f"Layers ({len(body['layers'])})"),
                table(["#", "Media type", "Digest", "Size"],
                      [[i + 1, str(l.get("mediaType", "-")), el("code", {"class": "hash"}, str(l.get("digest", "-"))),
                        size(l.get("size") if isinstance(l.get("size"), int) else None)]
                       for i, l in enumerate(body["layers"]) if isinstance(l, dict)], cls="wide")]
    if isinstance(body.get("manifests"), list):
        out += [el("h2", None, "Platforms"),
                table(["Platform", "Digest", "Size"],
                      [[json.dumps(l.get("platform", {}), sort_keys=True), el("code", {"class": "hash"}, str(l.get("digest", "-"))),
                        size(l.get("size") if isinstance(l.get("size"), int) else None)]
                       for l in body["manifests"] if isinstance(l, dict)], cls="wide")]
    return out


# --- login -----------------------------------------------------------------------------------------------

def login(csrf: str, next_url: str, error: str | None = None) -> Node:
    return [
        message(error, "error") if error else None,
        el("form", {"method": "post", "action": url("login", folder=False), "class": "login"},
           hidden("csrf", csrf), hidden("next", next_url),
           el("label", None, "User ", el("input", {"type": "text", "name": "username", "autocomplete": "username",
                                                    "required": True, "autofocus": True})),
           el("label", None, "Password or token ", el("input", {"type": "password", "name": "password",
                                                                  "autocomplete": "current-password", "required": True})),
           el("button", {"type": "submit"}, "Log in")),
        el("p", {"class": "small"}, "Use your user name and password, or __token__ and an API token."),
    ]


def list_of(items: Iterable[Node]) -> Safe:
    return el("ul", None, [el("li", None, i) for i in items])
