// Sortable tables: click a heading; numeric cells sort by their data-v value.
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var desc = !th.classList.contains("sorted-desc");
      Array.prototype.forEach.call(heads, function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(desc ? "sorted-desc" : "sorted-asc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        var vx = x.dataset.v, vy = y.dataset.v;
        var c = (vx !== undefined && vy !== undefined) ? Number(vx) - Number(vy)
          : x.textContent.localeCompare(y.textContent);
        return desc ? -c : c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
// A link to a waterfall opens it (the waterfalls are closed <details>), and so does a URL
// that names one.
function openTarget(id) {
  var el = id && document.getElementById(id);
  if (el && el.tagName === "DETAILS") { el.open = true; }
}
document.querySelectorAll("a.trace").forEach(function (a) {
  a.addEventListener("click", function () { openTarget(a.getAttribute("href").slice(1)); });
});
openTarget(decodeURIComponent(location.hash.slice(1)));
// How long the page took to become usable, for tests and the curious.
document.body.dataset.renderMs = Math.round(performance.now());
