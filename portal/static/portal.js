// Small progressive enhancements. The portal works without this file.
(function () {
  "use strict";
  // Grey out a submit button after the first click: the server already makes a
  // resubmitted referral a no-op, this only tells the user their click was taken.
  document.addEventListener("submit", function (event) {
    var button = event.target.querySelector("[data-disable-on-submit]");
    if (button) {
      window.setTimeout(function () { button.disabled = true; button.textContent = "Sending…"; }, 0);
    }
  });

  // A "Print" button (the referral packet) needs script: it stays hidden without it.
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });

  // An htmx request that failed (a 4xx other than a form's 422, or a 5xx) answers with
  // a short fragment from the portal's error handler: show it where it will be read.
  // A poll that cannot reach the server at all says so in the same place.
  document.addEventListener("htmx:responseError", function (event) {
    var region = document.getElementById("request-problem");
    var xhr = event.detail.xhr;
    if (!region || !xhr) { return; }
    var type = xhr.getResponseHeader("Content-Type") || "";
    if (type.indexOf("text/html") === 0 && xhr.responseText.trim().indexOf("<div") === 0) {
      region.innerHTML = xhr.responseText;
    } else {
      region.textContent = "Sorry, the page could not be updated (error " + xhr.status + "). Reload it to try again.";
    }
  });
  document.addEventListener("htmx:sendError", function () {
    var region = document.getElementById("request-problem");
    if (region) {
      region.textContent = "The portal cannot be reached just now. Check your connection; the page will update when it can.";
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var region = document.getElementById("request-problem");
    if (region && event.detail.successful && region.firstChild) { region.textContent = ""; }
  });
})();
