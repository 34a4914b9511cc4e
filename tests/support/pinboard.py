"""Pinboard: a server-rendered multi-page web app on Flask (with Flask-WTF's CSRF protection and SQLite)
that the browser tests drive as a user would drive any ordinary site. Everything it does is written to
its own database, so a test proves what happened — and how many times — from the app's state.

- ``/login``: a form (CSRF token) posted, then a redirect and a session cookie;
- ``/notes?page=N``: the notes, five a page, with "Next page"/"Previous page" and numbered links; each
  note's Delete button asks ``confirm()`` first, then posts (CSRF) and redirects;
- ``/notes/new``: a form with a file upload; ``/notes/<id>`` links its attachment as a download;
- ``Help`` opens in a new tab (``target=_blank``);
- ``/board``: pointer gestures — a menu shown on hover, a title renamed on double-click, a context menu
  on right-click, cards dragged between two columns (each posts what it did);
- ``/widgets``: a same-origin iframe (a form that posts inside the frame), an iframe from another origin
  (the second server: a button that fetches and updates the frame's own DOM) and a canvas that draws
  where it is clicked and reports the click (no DOM change anywhere).

``serve_pinboard(db)`` starts it on two loopback ports (``127.0.0.1:A`` and ``localhost:B``, another
site) and yields a :class:`Pinboard` with both URLs and queries over the database."""

from __future__ import annotations

import contextlib
import io
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, abort, flash, redirect, render_template_string, request, send_file, session, url_for
from flask_wtf import CSRFProtect, FlaskForm
from flask_wtf.file import FileField
from werkzeug.serving import make_server
from wtforms import PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired

__all__ = ["Pinboard", "create_app", "serve_pinboard"]

USERS = {"alice": "wonderland"}
PER_PAGE = 5

SCHEMA = """
create table if not exists notes (id integer primary key, title text not null, body text not null default '',
                                  attachment_name text, attachment blob, author text not null);
create table if not exists events (id integer primary key, kind text not null, detail text not null default '');
"""

LAYOUT = """<!doctype html><html><head><meta charset=utf-8><title>{{ title }} · Pinboard</title>
<style>body{font-family:sans-serif;margin:24px} nav a{margin-right:14px} li{margin:6px 0}
.flash{background:#efe;padding:6px} form.inline{display:inline}</style></head><body>
<nav>{% if user %}<a href="{{ url_for('notes') }}">Notes</a><a href="{{ url_for('new_note') }}">New note</a>
<a href="{{ url_for('board') }}">Board</a><a href="{{ url_for('widgets') }}">Widgets</a><a href="{{ url_for('help_page') }}" target="_blank">Help</a>
<span>Signed in as {{ user }}</span>{% endif %}</nav>
{% for m in get_flashed_messages() %}<p class=flash>{{ m }}</p>{% endfor %}
<h1>{{ title }}</h1>
{{ body|safe }}
</body></html>"""


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


class NoteForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired()])
    body = TextAreaField("Text")
    attachment = FileField("Attachment")


def create_app(db: Path, *, other_origin: str = "") -> Flask:
    """The app over the SQLite database ``db`` (created and seeded with twelve notes when new);
    ``other_origin``: where the widgets page's cross-origin frame comes from."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="pinboard-test-secret", WTF_CSRF_TIME_LIMIT=None, MAX_CONTENT_LENGTH=4 << 20)
    csrf = CSRFProtect(app)

    def connect() -> sqlite3.Connection:
        con = sqlite3.connect(db)
        con.row_factory = sqlite3.Row
        return con

    with contextlib.closing(connect()) as con, con:
        con.executescript(SCHEMA)
        if not con.execute("select count(*) from notes").fetchone()[0]:
            con.executemany(
                "insert into notes (title, body, author) values (?, ?, 'alice')",
                [(f"Note {i:02d}", f"Body of note {i}") for i in range(1, 13)],
            )

    def event(kind: str, detail: str = "") -> None:
        with contextlib.closing(connect()) as con, con:
            con.execute("insert into events (kind, detail) values (?, ?)", (kind, detail))

    def page(title: str, body: str, **context: object) -> str:
        inner = render_template_string(body, **context)
        return render_template_string(LAYOUT, title=title, body=inner, user=session.get("user"))

    @app.before_request
    def require_login() -> object:
        public = {"login", "static", "votes", "vote"}
        if request.endpoint not in public and "user" not in session:
            return redirect(url_for("login", next=request.path))
        return None

    @app.route("/")
    def home() -> object:
        return redirect(url_for("notes"))

    @app.route("/login", methods=["GET", "POST"])
    def login() -> object:
        form = LoginForm()
        error = ""
        if form.validate_on_submit():
            if USERS.get(form.username.data or "") == form.password.data:
                session["user"] = form.username.data
                event("login", form.username.data or "")
                flash(f"Welcome, {form.username.data}")
                target = request.args.get("next", "")
                return redirect(
                    target if target.startswith("/") and not target.startswith("//") else "/notes"
                )
            error = "Wrong username or password"
        elif request.method == "POST":
            error = "The form expired: " + "; ".join(e for errs in form.errors.values() for e in errs)
        return page(
            "Sign in",
            """<form method=post>{{ form.csrf_token }}<p class=error>{{ error }}</p>
            <p>{{ form.username.label }} {{ form.username(size=20) }}</p>
            <p>{{ form.password.label }} {{ form.password(size=20) }}</p>
            <button type=submit>Sign in</button></form>""",
            form=form,
            error=error,
        )

    @app.route("/logout")
    def logout() -> object:
        session.clear()
        return redirect(url_for("login"))

    @app.route("/notes")
    def notes() -> object:
        n = request.args.get("page", 1, type=int) or 1
        with contextlib.closing(connect()) as con:
            total = con.execute("select count(*) from notes").fetchone()[0]
            rows = con.execute(
                "select id, title from notes order by id limit ? offset ?", (PER_PAGE, (n - 1) * PER_PAGE)
            ).fetchall()
        pages = max(1, -(-total // PER_PAGE))
        return page(
            "Notes",
            """<p>Page {{ n }} of {{ pages }}</p><ul>
            {% for r in rows %}<li><a href="{{ url_for('note', note_id=r['id']) }}">{{ r['title'] }}</a>
              <form class=inline method=post action="{{ url_for('delete_note', note_id=r['id']) }}"
                    onsubmit="return confirm('Delete the note {{ r['title'] }}?')">
                <input type=hidden name=csrf_token value="{{ csrf_token() }}">
                <button type=submit aria-label="Delete {{ r['title'] }}">Delete</button></form></li>{% endfor %}
            </ul><p>{% if n > 1 %}<a href="?page={{ n - 1 }}">Previous page</a>{% endif %}
            {% for k in range(1, pages + 1) %}<a href="?page={{ k }}">{{ k }}</a> {% endfor %}
            {% if n < pages %}<a href="?page={{ n + 1 }}">Next page</a>{% endif %}</p>""",
            n=n,
            pages=pages,
            rows=rows,
        )

    @app.route("/notes/new", methods=["GET", "POST"])
    def new_note() -> object:
        form = NoteForm()
        if form.validate_on_submit():
            upload = form.attachment.data
            name = upload.filename if upload and upload.filename else None
            blob = upload.read() if name else None
            with contextlib.closing(connect()) as con, con:
                cur = con.execute(
                    "insert into notes (title, body, attachment_name, attachment, author) values (?, ?, ?, ?, ?)",
                    (form.title.data, form.body.data or "", name, blob, session["user"]),
                )
            flash("Note saved")
            return redirect(url_for("note", note_id=cur.lastrowid))
        return page(
            "New note",
            """<form method=post enctype=multipart/form-data>{{ form.csrf_token }}
            <p>{{ form.title.label }} {{ form.title(size=40) }}</p>
            <p>{{ form.body.label }} {{ form.body(rows=4, cols=40) }}</p>
            <p>{{ form.attachment.label }} {{ form.attachment() }}</p>
            <button type=submit>Save note</button></form>""",
            form=form,
        )

    def load(note_id: int) -> sqlite3.Row:
        with contextlib.closing(connect()) as con:
            row = con.execute("select * from notes where id = ?", (note_id,)).fetchone()
        if row is None:
            abort(404)
        return row

    @app.route("/notes/<int:note_id>")
    def note(note_id: int) -> object:
        row = load(note_id)
        return page(
            row["title"],
            """<p>{{ r['body'] }}</p>{% if r['attachment_name'] %}<p><a
            href="{{ url_for('attachment', note_id=r['id']) }}">Download {{ r['attachment_name'] }}</a></p>{% endif %}""",
            r=row,
        )

    @app.route("/notes/<int:note_id>/attachment")
    def attachment(note_id: int) -> object:
        row = load(note_id)
        if not row["attachment_name"]:
            abort(404)
        event("download", row["attachment_name"])
        return send_file(
            io.BytesIO(row["attachment"]),
            as_attachment=True,
            download_name=row["attachment_name"],
        )

    @app.route("/notes/<int:note_id>/delete", methods=["POST"])
    def delete_note(note_id: int) -> object:
        row = load(note_id)
        with contextlib.closing(connect()) as con, con:
            con.execute("delete from notes where id = ?", (note_id,))
        event("delete", row["title"])
        flash(f"Deleted {row['title']}")
        return redirect(url_for("notes"))

    @app.route("/help")
    def help_page() -> object:
        event("help")
        return page("Help", "<p>Pinboard keeps short notes. Ask your administrator for an account.</p>")

    @app.route("/widgets")
    def widgets() -> object:
        return page(
            "Widgets",
            """<p><iframe title="Stars" src="{{ url_for('stars') }}" style="width:360px;height:110px"></iframe>
            <iframe title="Votes" src="{{ other }}/frame/votes" style="width:360px;height:110px"></iframe></p>
            <canvas id=pad role=img aria-label="Drawing pad" width=360 height=160 style="border:1px solid #888"></canvas>
            <script>
            const pad = document.getElementById('pad'), g = pad.getContext('2d');
            g.font = '20px sans-serif'; g.fillText('Click to draw', 110, 85);
            pad.addEventListener('click', (e) => {
              g.fillStyle = 'blue'; g.beginPath(); g.arc(e.offsetX, e.offsetY, 10, 0, 7); g.fill();
              fetch('{{ url_for("canvas_click") }}', {method: 'POST', headers: {'X-CSRFToken': '{{ csrf_token() }}',
                'Content-Type': 'application/json'}, body: JSON.stringify({x: e.offsetX, y: e.offsetY})});
            });
            </script>""",
            other=other_origin,
        )

    @app.route("/board")
    def board() -> object:
        with contextlib.closing(connect()) as con:
            cards = con.execute("select id, title, body from notes order by id limit 3").fetchall()
            done = {r[0] for r in con.execute("select detail from events where kind = 'done'")}
        return page(
            "Board",
            """<style>.col{display:inline-block;vertical-align:top;width:260px;min-height:200px;border:1px solid #aaa;
            margin-right:20px;padding:8px}.card{border:1px solid #666;margin:6px 0;padding:6px;background:#fff;
            cursor:grab;user-select:none}.menu{display:none}.more:hover .menu{display:block}
            #ctx{position:fixed;display:none;border:1px solid #333;background:#ffd;padding:4px}</style>
            <div class=more><span>Board actions ▾</span><div class=menu><button id=archive>Archive the board</button></div></div>
            <h2 id=heading title="Double-click to rename">{{ name }}</h2>
            <div class=col id=todo><b>To do</b>{% for c in cards if c['title'] not in done %}
              <div class=card data-title="{{ c['title'] }}">{{ c['title'] }}</div>{% endfor %}</div>
            <div class=col id=done><b>Done</b>{% for c in cards if c['title'] in done %}
              <div class=card data-title="{{ c['title'] }}">{{ c['title'] }}</div>{% endfor %}</div>
            <div id=ctx><button id=pin>Pin to top</button></div><p id=status></p>
            <script>
            const post = (what, detail) => fetch('{{ url_for("board_event") }}', {method: 'POST',
              headers: {'X-CSRFToken': '{{ csrf_token() }}', 'Content-Type': 'application/json'},
              body: JSON.stringify({what, detail})}).then(() => { document.getElementById('status').textContent = what + ': ' + detail; });
            document.getElementById('archive').onclick = () => post('archive', 'board');
            const h = document.getElementById('heading');
            h.ondblclick = () => {
              const i = document.createElement('input'); i.value = h.textContent; i.setAttribute('aria-label', 'Board name');
              h.replaceWith(i); i.focus(); i.select();
              i.onkeydown = (e) => { if (e.key === 'Enter') { h.textContent = i.value; i.replaceWith(h); post('rename', i.value); } };
            };
            let target = null;
            for (const c of document.querySelectorAll('.card')) c.oncontextmenu = (e) => {
              e.preventDefault(); target = c.dataset.title; const m = document.getElementById('ctx');
              m.style.left = e.clientX + 'px'; m.style.top = e.clientY + 'px'; m.style.display = 'block';
            };
            document.getElementById('pin').onclick = () => { document.getElementById('ctx').style.display = 'none'; post('pin', target); };
            let dragged = null;
            for (const c of document.querySelectorAll('.card')) c.onmousedown = (e) => { dragged = c; e.preventDefault(); };
            document.onmouseup = (e) => {
              if (!dragged) return;
              const col = document.elementFromPoint(e.clientX, e.clientY)?.closest('.col');
              if (col && col !== dragged.parentElement) { col.appendChild(dragged); post(col.id, dragged.dataset.title); }
              dragged = null;
            };
            </script>""",
            name="My board",
            cards=cards,
            done=done,
        )

    @app.route("/board/event", methods=["POST"])
    def board_event() -> object:
        data = request.get_json(silent=True) or {}
        what, detail = str(data.get("what", "")), str(data.get("detail", ""))
        if what not in {"archive", "rename", "pin", "done", "todo"}:
            abort(400)
        event(what, detail)
        return "", 204

    @app.route("/canvas", methods=["POST"])
    def canvas_click() -> object:
        data = request.get_json(silent=True) or {}
        event("canvas", f"{data.get('x')},{data.get('y')}")
        return "", 204

    @app.route("/frame/stars", methods=["GET", "POST"])
    def stars() -> object:
        if request.method == "POST":  # a form post inside the frame: the frame navigates
            event("star")
            return redirect(url_for("stars"))
        with contextlib.closing(connect()) as con:
            count = con.execute("select count(*) from events where kind = 'star'").fetchone()[0]
        return render_template_string(
            """<!doctype html><body style="font-family:sans-serif"><p>Stars: {{ count }}</p>
            <form method=post><input type=hidden name=csrf_token value="{{ csrf_token() }}">
            <button type=submit>Add a star</button></form></body>""",
            count=count,
        )

    @app.route("/frame/votes")
    def votes() -> object:  # served from the other origin: the button fetches and updates the frame
        with contextlib.closing(connect()) as con:
            count = con.execute("select count(*) from events where kind = 'vote'").fetchone()[0]
        return render_template_string(
            """<!doctype html><body style="font-family:sans-serif"><p id=count>Votes: {{ count }}</p>
            <button onclick="fetch('vote', {method: 'POST'}).then(r => r.text()).then(t => {
              document.getElementById('count').textContent = 'Votes: ' + t; })">Vote</button></body>""",
            count=count,
        )

    @app.route("/frame/vote", methods=["POST"])
    @csrf.exempt
    def vote() -> object:
        event("vote")
        with contextlib.closing(connect()) as con:
            return str(con.execute("select count(*) from events where kind = 'vote'").fetchone()[0])

    return app


@dataclass
class Pinboard:
    url: str
    """The app, ``http://127.0.0.1:PORT``."""
    other: str
    """The same app on another origin (another site): ``http://localhost:PORT``."""
    db: Path

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with contextlib.closing(sqlite3.connect(self.db)) as con:
            return [tuple(r) for r in con.execute(sql, args).fetchall()]

    def events(self, kind: str) -> list[str]:
        return [str(r[0]) for r in self.query("select detail from events where kind = ? order by id", kind)]

    def titles(self) -> list[str]:
        return [str(r[0]) for r in self.query("select title from notes order by id")]


@contextlib.contextmanager
def serve_pinboard(db: Path) -> Iterator[Pinboard]:
    """Serve the app on two loopback ports while the block runs (threads of this process)."""
    second = make_server("127.0.0.1", 0, create_app(db), threaded=True)
    other = f"http://localhost:{second.server_port}"
    first = make_server("127.0.0.1", 0, create_app(db, other_origin=other), threaded=True)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (first, second)]
    for t in threads:
        t.start()
    try:
        yield Pinboard(f"http://127.0.0.1:{first.server_port}", other, db)
    finally:
        for s in (first, second):
            s.shutdown()
            s.server_close()
