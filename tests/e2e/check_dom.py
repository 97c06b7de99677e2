#!/usr/bin/env python3
"""Check a report's DOM as a browser rendered it (chromium --dump-dom).

    check_dom.py DOM_FILE [--tables N] [--charts N] [--require ID ...]

Passes when the page has at least N tables, each with a header and at least
one data row with a non-empty cell; at least N charts (<svg class="chart">),
each non-empty: its data-marks attribute equals the number of elements with
class "mark" inside it and is > 0; and every required element id exists.
Prints what it found; exits 1 on the first failure.
"""
import sys
from html.parser import HTMLParser


class Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables = []       # [rows with data cells, header cells]
        self.charts = []       # [declared marks, counted marks, kind]
        self.ids = set()
        self.stack = []
        self.cell_text = None
        self.row_cells = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        cls = (a.get("class") or "").split()
        if tag == "table":
            self.tables.append([0, 0])
        elif tag == "tr":
            self.row_cells = 0
        elif tag in ("td", "th"):
            self.cell_text = ""
            if tag == "th" and self.tables:
                self.tables[-1][1] += 1
        elif tag == "svg" and "chart" in cls:
            self.charts.append([int(a.get("data-marks", "-1")), 0, a.get("data-chart", "?")])
            self.stack.append("chart")
            return
        if "mark" in cls and self.charts and "chart" in self.stack:
            self.charts[-1][1] += 1
        if tag not in ("circle", "rect", "line", "path", "br", "meta", "img", "input", "hr"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag == "svg" and "chart" in self.stack:
            while self.stack and self.stack.pop() != "chart":
                pass
            return
        if tag in ("td",) and self.cell_text is not None:
            if self.cell_text.strip():
                self.row_cells += 1
            self.cell_text = None
        if tag == "tr" and self.tables and self.row_cells > 0:
            self.tables[-1][0] += 1
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()

    def handle_data(self, data):
        if self.cell_text is not None:
            self.cell_text += data


def main():
    args = sys.argv[1:]
    path = args.pop(0)
    want_tables = want_charts = 0
    required = []
    while args:
        a = args.pop(0)
        if a == "--tables":
            want_tables = int(args.pop(0))
        elif a == "--charts":
            want_charts = int(args.pop(0))
        elif a == "--require":
            while args and not args[0].startswith("--"):
                required.append(args.pop(0))
    d = Dom()
    d.feed(open(path, encoding="utf-8").read())
    print("tables: %d (data rows %s)" % (len(d.tables), [t[0] for t in d.tables]))
    print("charts: %d (%s)" % (len(d.charts), ", ".join("%s:%d" % (c[2], c[1]) for c in d.charts)))
    ok = True
    if len(d.tables) < want_tables:
        print("FAIL: %d tables, expected at least %d" % (len(d.tables), want_tables)); ok = False
    for i, (rows, heads) in enumerate(d.tables):
        if rows == 0 or heads == 0:
            print("FAIL: table %d has %d header cells and %d data rows" % (i, heads, rows)); ok = False
    if len(d.charts) < want_charts:
        print("FAIL: %d charts, expected at least %d" % (len(d.charts), want_charts)); ok = False
    for i, (declared, counted, kind) in enumerate(d.charts):
        if counted == 0 or declared != counted:
            print("FAIL: chart %d (%s) declares %d marks and has %d" % (i, kind, declared, counted)); ok = False
    for r in required:
        if r not in d.ids:
            print("FAIL: no element with id '%s'" % r); ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
