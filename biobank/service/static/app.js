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
