// Sortable tables for the lowlight-bench report. No dependencies, no network.
// Click a header to sort by that column (numbers by their data-sort value, n/a always last);
// rows marked "baseline" (the input / the default variant) stay on top.
(function () {
  "use strict";

  function cellKey(row, index) {
    var cell = row.cells[index];
    if (!cell) return { empty: true };
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (raw === "" || raw === "n/a") return { empty: true };
    var num = Number(raw);
    return isNaN(num) ? { text: raw.toLowerCase() } : { num: num };
  }

  function compare(a, b) {
    if (a.empty || b.empty) return a.empty === b.empty ? 0 : (a.empty ? 1 : -1);
    if (a.num !== undefined && b.num !== undefined) return a.num - b.num;
    var x = a.num !== undefined ? String(a.num) : a.text, y = b.num !== undefined ? String(b.num) : b.text;
    return x < y ? -1 : (x > y ? 1 : 0);
  }

  function sortBy(table, th, index) {
    var body = table.tBodies[0];
    if (!body) return;
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    var pinned = rows.filter(function (r) { return r.classList.contains("baseline"); });
    var rest = rows.filter(function (r) { return !r.classList.contains("baseline"); });
    var keyed = rest.map(function (r, i) { return { row: r, key: cellKey(r, index), pos: i }; });
    keyed.sort(function (p, q) {
      var c = compare(p.key, q.key);
      if (c !== 0 && !p.key.empty && !q.key.empty && !ascending) c = -c;
      return c !== 0 ? c : p.pos - q.pos;
    });
    pinned.concat(keyed.map(function (k) { return k.row; })).forEach(function (r) { body.appendChild(r); });
  }

  function init() {
    var tables = document.querySelectorAll("table.sortable");
    Array.prototype.forEach.call(tables, function (table) {
      var head = table.tHead && table.tHead.rows[0];
      if (!head) return;
      Array.prototype.forEach.call(head.cells, function (th, index) {
        th.setAttribute("title", (th.getAttribute("title") ? th.getAttribute("title") + " — " : "") + "click to sort");
        th.addEventListener("click", function () { sortBy(table, th, index); });
      });
    });
    document.documentElement.setAttribute("data-sortable-ready", String(tables.length));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
