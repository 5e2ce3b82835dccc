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

  // The waiting-room wall screen reports its own connection (below), never with toasts.
  function onWall(event) {
    var elt = event.detail && event.detail.elt;
    return !!(elt && elt.closest && elt.closest("[data-wall]"));
  }

  document.addEventListener("htmx:responseError", function (event) {
    if (onWall(event)) return;
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
  document.addEventListener("htmx:sendError", function (event) {
    if (onWall(event)) return;
    toast("You appear to be offline. We will keep trying.");
  });

  // Wall screen: a failed or timed-out poll, or none answered for 2.5 intervals, shows "Connection lost"
  // and greys the numbers; the next fragment that arrives replaces all of it.
  var wallLastAnswer = Date.now(), wallSeen = null;
  function wallLost() {
    var wall = document.querySelector("[data-wall]");
    if (!wall) return;
    wall.classList.add("stale");
    var note = wall.querySelector(".connection-lost");
    if (note) note.hidden = false;
  }
  ["htmx:sendError", "htmx:responseError", "htmx:timeout"].forEach(function (name) {
    document.addEventListener(name, function (event) { if (onWall(event)) wallLost(); });
  });
  setInterval(function () {
    var wall = document.querySelector("[data-wall]");
    if (!wall) return;
    if (wall !== wallSeen) { wallSeen = wall; wallLastAnswer = Date.now(); }  // a fresh fragment arrived
    var seconds = parseFloat(wall.getAttribute("data-poll-seconds")) || 10;
    if (Date.now() - wallLastAnswer > seconds * 2500) wallLost();
  }, 2000);

  // Clinic times carry the hospital zone's abbreviation; it is hidden where the browser's clock reads the
  // same at that moment (same UTC offset), so it shows only where the time could be misread.
  function settleZoneNotes(root) {
    (root || document).querySelectorAll("abbr.zone-note[data-utc-offset]").forEach(function (el) {
      var at = new Date(el.getAttribute("data-at"));
      if (isNaN(at.getTime())) return;
      el.hidden = -at.getTimezoneOffset() === parseInt(el.getAttribute("data-utc-offset"), 10);
    });
  }

  // Time zone detection: any input named "tz" that is still empty gets the browser's zone.
  function fillTimeZones(root) {
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    if (!zone) return;
    (root || document).querySelectorAll("input[data-detect-tz]").forEach(function (el) {
      if (el.value) return;
      // Show the readable name when the suggestions know the zone ("India (Kolkata)"); else the name itself,
      // which the server maps (aliases included).
      var known = el.list && Array.prototype.find.call(el.list.options, function (o) { return o.textContent.indexOf(zone + " ·") === 0; });
      el.value = known ? known.value : zone;
    });
  }
  // Experts: a display-zone picker the viewer has not chosen yet switches once to the browser's zone
  // (the server maps aliases such as Asia/Calcutta to the canonical name and marks the zone as chosen).
  function adoptBrowserZone(root) {
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    if (!zone) return;
    (root || document).querySelectorAll("form[data-tz-autosubmit='1']").forEach(function (form) {
      var input = form.querySelector("input[data-tz-input]");
      form.dataset.tzAutosubmit = "0";
      if (!input || input.getAttribute("data-zone") === zone) return;
      input.value = zone;
      form.requestSubmit();
    });
  }
  // Picking a suggestion from the zone field shows the times at once; free text waits for Enter or the button.
  function submitPickedZone(event) {
    var el = event.target;
    if (!el.matches || !el.matches("input[data-tz-input]") || !el.form || !el.list) return;
    if (event.type === "input" && event.inputType && event.inputType !== "insertReplacementText") return;
    if (el.value === el.defaultValue) return;
    var picked = Array.prototype.some.call(el.list.options, function (o) { return o.value === el.value; });
    if (picked) el.form.requestSubmit();
  }
  document.addEventListener("input", submitPickedZone);
  document.addEventListener("change", submitPickedZone);
  document.addEventListener("DOMContentLoaded", function () { fillTimeZones(document); adoptBrowserZone(document); settleZoneNotes(document); });
  document.addEventListener("htmx:load", function (event) { fillTimeZones(event.target); adoptBrowserZone(event.target); settleZoneNotes(event.target); });
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
  // Navigation: on narrow screens the links fold behind the "Menu" button (app.css hides them there).
  function setUpMenu() {
    var header = document.querySelector(".site-header");
    var button = header && header.querySelector(".menu-toggle");
    var links = header && document.getElementById(button ? button.getAttribute("aria-controls") : "");
    if (!button || !links) return;
    function setOpen(open) {
      button.setAttribute("aria-expanded", open ? "true" : "false");
      links.classList.toggle("open", open);
    }
    button.hidden = false;
    header.classList.add("js-menu");
    button.addEventListener("click", function () { setOpen(button.getAttribute("aria-expanded") !== "true"); });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && links.classList.contains("open")) { setOpen(false); button.focus(); }
    });
  }
  document.addEventListener("DOMContentLoaded", setUpMenu);
  // "Print" buttons (the token slip, the patient's and the desk's), and a slip opened to be printed prints itself once.
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
