// ExpertBook's only script besides htmx. It runs under a strict CSP: no inline code, no eval.
(function () {
  "use strict";

  function toast(message) {
    var box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    clearTimeout(box._timer);
    box._timer = setTimeout(function () { box.hidden = true; }, 6000);
  }

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status === 429) {
      toast("Too many requests. Please wait a moment and try again.");
    } else if (xhr.status === 400 && /expired/i.test(xhr.responseText)) {
      toast("This page has expired. Please reload it and try again.");
    } else if (xhr.status === 404) {
      toast("That is no longer available.");
    } else if (xhr.status >= 500) {
      toast("Something went wrong on our side. Please try again.");
    }
  });
  document.addEventListener("htmx:sendError", function () {
    toast("You appear to be offline. We will keep trying.");
  });

  // Time zone detection: any input named "tz" that is still empty gets the browser's zone.
  function fillTimeZones(root) {
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    if (!zone) return;
    (root || document).querySelectorAll("input[data-detect-tz]").forEach(function (el) {
      if (!el.value) el.value = zone;
    });
  }
  // Experts: a display-zone picker the viewer has not chosen yet switches once to the browser's zone.
  function adoptBrowserZone(root) {
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    if (!zone) return;
    (root || document).querySelectorAll("form[data-tz-autosubmit='1']").forEach(function (form) {
      var select = form.querySelector("select[data-tz-select]");
      form.dataset.tzAutosubmit = "0";
      if (!select || select.value === zone) return;
      if (!Array.prototype.some.call(select.options, function (o) { return o.value === zone; })) return;
      select.value = zone;
      form.requestSubmit();
    });
  }
  // Changing the zone select re-renders the times at once.
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches && el.matches("select[data-tz-select]") && el.form) el.form.requestSubmit();
  });
  document.addEventListener("DOMContentLoaded", function () { fillTimeZones(document); adoptBrowserZone(document); });
  document.addEventListener("htmx:load", function (event) { fillTimeZones(event.target); adoptBrowserZone(event.target); });
  // Clinic: live lists poll only while the page is visible, and catch up at once when it is shown again.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    // A hidden tab skips its polls; the visibilitychange handler below refreshes it when it is shown.
    if (document.hidden && elt && elt.hasAttribute && elt.hasAttribute("data-poll")) {
      event.preventDefault();
    }
    // Nor does a poll replace a list while someone is typing in it (a cancellation's reason, say).
    if (elt && elt.hasAttribute && elt.hasAttribute("data-poll") && event.detail.requestConfig && event.detail.requestConfig.verb === "get"
        && (elt.contains(document.activeElement) && document.activeElement !== elt || elt.querySelector("details[open]"))) {
      event.preventDefault();
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !window.htmx) return;
    document.querySelectorAll("[data-poll]").forEach(function (el) { window.htmx.trigger(el, "clinicRefresh"); });
  });
  // Clinic front desk: "Print slip" buttons, and a slip opened to be printed prints itself once.
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-print]")) window.print();
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector("[data-autoprint]")) window.print();
  });
  // Clinic slot form: remove a doctor row that was added by mistake.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-remove-closest]");
    if (!button) return;
    var row = button.closest(button.getAttribute("data-remove-closest"));
    if (row) row.remove();
  });
})();
