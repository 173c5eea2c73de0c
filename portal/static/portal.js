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
})();
