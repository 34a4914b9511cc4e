"""A small Tk app for the desktop tests. Every user-visible effect is appended to EVENTS (a JSON line
each), so tests check the application's own state, not the calls pixelpilot made.

    python tk_app.py EVENTS [--geometry 600x420+0+0] [--title T] [--crash-after SECONDS]
"""

import argparse
import json
import sys
import tkinter as tk


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("events")
    ap.add_argument("--geometry", default="600x420+0+0")
    ap.add_argument("--title", default="pixelpilot test app")
    ap.add_argument("--crash-after", type=float, default=None)
    args = ap.parse_args()
    out = open(args.events, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the app

    def log(event: str, **data: object) -> None:
        out.write(json.dumps({"event": event, **data}, ensure_ascii=False) + "\n")
        out.flush()

    root = tk.Tk()
    root.title(args.title)
    root.geometry(args.geometry)
    font = ("DejaVu Sans", 14)

    top = tk.Frame(root)
    top.pack(fill="x", padx=10, pady=8)
    entry = tk.Entry(top, font=font, width=22)
    entry.pack(side="left")
    tk.Button(top, text="Submit", font=font, command=lambda: log("submit", text=entry.get())).pack(
        side="left", padx=8
    )
    enabled = tk.BooleanVar()
    tk.Checkbutton(
        top, text="Enable", font=font, variable=enabled, command=lambda: log("check", value=enabled.get())
    ).pack(side="left")

    mid = tk.Frame(root)
    mid.pack(fill="both", expand=True, padx=10)
    listbox = tk.Listbox(mid, font=font, height=6, width=14, exportselection=False)
    for i in range(1, 41):
        listbox.insert("end", f"Item {i}")
    listbox.pack(side="left", fill="y")

    def scrolled(_e: object = None) -> None:
        root.after(
            50,
            lambda: log(
                "list_scroll", first=round(listbox.yview()[0], 3), top=listbox.get(listbox.nearest(0))
            ),
        )

    for seq in ("<Button-4>", "<Button-5>", "<MouseWheel>"):
        listbox.bind(seq, scrolled, add="+")
    listbox.bind("<Double-Button-1>", lambda e: log("list_open", item=listbox.get(listbox.nearest(e.y))))

    canvas = tk.Canvas(
        mid, width=300, height=200, bg="#f4f4f4", highlightthickness=1, highlightbackground="#888"
    )
    canvas.pack(side="left", padx=10)
    canvas.create_text(150, 20, text="Canvas", font=font)
    drag: dict[str, tuple[int, int]] = {}
    canvas.bind("<ButtonPress-1>", lambda e: drag.__setitem__("start", (e.x, e.y)))
    canvas.bind("<ButtonRelease-1>", lambda e: log("drag", start=drag.get("start"), end=(e.x, e.y)))
    menu = tk.Menu(root, tearoff=0, font=font)
    menu.add_command(label="Rename", command=lambda: log("menu", item="Rename"))
    menu.add_command(label="Delete", command=lambda: log("menu", item="Delete"))
    canvas.bind("<Button-3>", lambda e: menu.tk_popup(e.x_root, e.y_root))
    canvas.bind("<Button-2>", lambda e: log("middle", at=(e.x, e.y)))
    canvas.bind("<Enter>", lambda e: log("pointer_enter", at=(e.x, e.y)))
    entry.bind("<Triple-Button-1>", lambda e: log("triple", text=entry.get()))

    status = tk.Label(root, text="Ready", font=font)
    status.pack(pady=6)
    root.bind_all(
        "<Control-Shift-K>",
        lambda e: (log("combo", keys="ctrl+shift+k"), status.config(text="Combo pressed")),
    )

    if args.crash_after is not None:
        root.after(int(args.crash_after * 1000), root.destroy)  # then exits with code 3 below
    root.after(100, lambda: log("ready"))
    root.mainloop()
    if args.crash_after is not None:
        sys.exit(3)


if __name__ == "__main__":
    main()
