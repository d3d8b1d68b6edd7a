// The console's conveniences. Every page works without this script.
(function () {
  "use strict";

  // The raise form: show the priority the matrix gives for the chosen impact and urgency.
  var form = document.querySelector("form[data-matrix]");
  if (form) {
    var cells = form.getAttribute("data-matrix").split(",");
    var impact = document.getElementById("raise-impact");
    var urgency = document.getElementById("raise-urgency");
    var out = document.getElementById("priority-preview");
    var show = function () {
      var i = parseInt(impact.value, 10), u = parseInt(urgency.value, 10);
      if (i >= 1 && i <= 3 && u >= 1 && u <= 3) out.textContent = "P" + cells[(i - 1) * 3 + (u - 1)];
    };
    impact.addEventListener("change", show);
    urgency.addEventListener("change", show);
    // One submit per form: a second click while the first is on its way does nothing (the
    // form's idempotency key makes a repeated submit land on the same incident anyway).
    form.addEventListener("submit", function (e) {
      if (form.getAttribute("data-sent")) { e.preventDefault(); return; }
      form.setAttribute("data-sent", "1");
    });
  }

  // A record page follows the supplier: when the record changes, the page reloads, unless
  // the user is typing in one of its forms, when it says so instead.
  var record = document.getElementById("record");
  if (record) {
    var ref = record.getAttribute("data-ref");
    var seen = record.getAttribute("data-fingerprint");
    var typing = function () {
      var fields = record.querySelectorAll("textarea, input[type=text], input[type=file]");
      for (var k = 0; k < fields.length; k++) { if (fields[k].value) return true; }
      return false;
    };
    var notice = null;
    var poll = function () {
      fetch("/console/incidents/" + encodeURIComponent(ref) + "/fingerprint", { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (now) {
          if (!now || now === seen) return;
          if (!typing()) { window.location.replace(window.location.pathname); return; }
          if (!notice) {
            notice = document.createElement("p");
            notice.className = "done";
            notice.setAttribute("role", "status");
            notice.innerHTML = 'This ticket has changed. <a href="">Reload to see it</a>';
            record.insertBefore(notice, record.firstChild);
          }
        })
        .catch(function () {});
    };
    setInterval(poll, 3000);
  }
})();
