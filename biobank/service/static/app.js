// The resident ID check as it is typed: POST the number (never in a URL) to the
// check endpoint and show its message. The form works without this script.
(function () {
  "use strict";
  var input = document.querySelector("input[data-check]");
  if (!input) { return; }
  var out = document.getElementById(input.name + "-check");
  var token = input.form.querySelector("input[name=csrftoken]").value;
  var timer = null;
  function check() {
    var value = input.value.trim();
    if (value.length < 18) { out.textContent = ""; return; }
    var body = new URLSearchParams({ csrftoken: token, national_id: value });
    fetch(input.dataset.check, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        out.textContent = data.message || (data.error && data.error.detail) || "";
        out.className = data.valid ? "ok" : "error";
      });
  }
  input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(check, 250); });
})();

// The box grid: a click on a free cell adds its position to the move form (and the
// box to the target); the form works without this script.
(function () {
  "use strict";
  var grid = document.getElementById("grid");
  var positions = document.getElementById("m-positions");
  if (!grid || !positions) { return; }
  grid.addEventListener("click", function (event) {
    var cell = event.target.closest("td.free");
    if (!cell) { return; }
    var parts = grid.dataset.box.split("/");
    document.getElementById("m-freezer").value = parts[0];
    document.getElementById("m-rack").value = parts[1];
    document.getElementById("m-box").value = parts[2];
    var list = positions.value.split(/[\s,;]+/).filter(Boolean);
    var at = list.indexOf(cell.dataset.position);
    if (at < 0) { list.push(cell.dataset.position); cell.classList.add("picked"); }
    else { list.splice(at, 1); cell.classList.remove("picked"); }
    positions.value = list.join(", ");
  });
})();

// The scanner's box in the header: a barcode scanner types the label and Enter
// wherever the focus is, so the box takes the focus on pages with no field of
// their own to type into (the specimen page asks for it with autofocus).
(function () {
  "use strict";
  var scan = document.getElementById("scan");
  if (!scan || document.activeElement === scan) { return; }
  var fields = document.querySelectorAll(
    "main input:not([type=hidden]):not([type=submit]), main textarea");
  if (fields.length === 0) { scan.focus(); }
})();
