// The console's only script: it reloads the page every data-refresh
// seconds, as the <noscript> meta refresh does without JavaScript, but
// waits while someone types in a form (a reload would wipe a job id half
// typed). The pages work the same without it.
(function () {
  "use strict";
  var seconds = Number(document.documentElement.getAttribute("data-refresh"));
  if (!(seconds > 0)) {
    return;
  }
  function typing() {
    var a = document.activeElement;
    if (a && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT")) {
      return true;
    }
    var inputs = document.querySelectorAll("input:not([type=hidden])");
    for (var i = 0; i < inputs.length; i++) {
      if (inputs[i].value !== "") {
        return true;
      }
    }
    return false;
  }
  function tick() {
    if (typing()) {
      setTimeout(tick, seconds * 1000);
    } else {
      location.reload();
    }
  }
  setTimeout(tick, seconds * 1000);
})();
